"""A loop that LISTENs notices when its listening connection is lost, against the real
PostgreSQL: its body stops with a transient error and, supervised, it listens anew.

Seen before: after a PostgreSQL restart notify's delivery worker, which claims on other pooled
connections and only waits on its listening one, went on deaf, delivering on its one-second
poll until the service was restarted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.common.db import create_pool, listening
from services.common.faults import is_transient
from services.common.kafka import make_broker
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.supervision import Background, Health, Loop, supervise
from tests.support import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url.get_secret_value(), "public")
    try:
        yield pool
    finally:
        await pool.close()


async def kill_listener(settings: Settings, channel: str) -> None:
    """Terminate the backend that LISTENs on ``channel`` (as a PostgreSQL restart would)."""
    admin = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE query = $1 AND pid <> pg_backend_pid()",
            f'LISTEN "{channel}"',
        )
        assert killed == 1
    finally:
        await admin.close()


async def waiting_on_a_listener(pool: asyncpg.Pool) -> tuple[asyncio.Task[None], str]:
    """A body inside ``listening`` that only waits (it works elsewhere, never on that
    connection), once it listens; and its channel."""
    channel = f"test_listening_{uuid.uuid4().hex[:8]}"
    listened = asyncio.Event()

    async def wait() -> None:
        async with listening(pool, channel, lambda *_: None):
            listened.set()
            await asyncio.sleep(60)

    body = asyncio.create_task(wait())
    await asyncio.wait_for(listened.wait(), 10)
    return body, channel


async def test_a_body_that_only_waits_is_stopped_when_its_connection_is_lost(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    body, channel = await waiting_on_a_listener(pool)
    await kill_listener(settings, channel)
    with pytest.raises(asyncpg.ConnectionDoesNotExistError) as raised:
        await asyncio.wait_for(body, 5)
    assert is_transient(raised.value)
    # The pool hands out working connections afterwards.
    assert await pool.fetchval("SELECT 1") == 1


async def test_a_shutdown_still_cancels_the_body(pool: asyncpg.Pool) -> None:
    body, _ = await waiting_on_a_listener(pool)
    body.cancel()
    with pytest.raises(asyncio.CancelledError):
        await body
    assert await pool.fetchval("SELECT 1") == 1


async def test_a_supervised_loop_is_woken_again_after_its_connection_was_lost(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    channel = f"test_listening_{uuid.uuid4().hex[:8]}"
    woken: list[str] = []
    wake = asyncio.Event()

    async def worker(rt: Runtime, loop: Loop) -> None:
        async with listening(rt.pool, channel, lambda *args: (woken.append(args[-1]), wake.set())):
            while not rt.stopping.is_set():
                loop.beat()
                wake.clear()
                # Waits far longer than the test: only a NOTIFY wakes it in time.
                await asyncio.wait({asyncio.create_task(wake.wait())}, timeout=60)

    rt = Runtime(
        settings=settings, pool=pool, broker=make_broker(settings, "test"), health=Health("test")
    )
    supervised = asyncio.create_task(supervise(rt, Background("worker", worker)))
    try:
        listeners = f"SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN \"{channel}\"'"
        await eventually(lambda: pool.fetchval(listeners), within=10)
        await pool.execute(f"NOTIFY {channel}, 'before'")
        await eventually(lambda: woken == ["before"], within=5)

        await kill_listener(settings, channel)
        await eventually(lambda: rt.health.loops["worker"].restarts == 1, within=5)
        await eventually(lambda: pool.fetchval(listeners), within=10)
        await pool.execute(f"NOTIFY {channel}, 'after'")
        await eventually(lambda: woken == ["before", "after"], within=5)
        assert "ConnectionDoesNotExistError" in (rt.health.loops["worker"].last_error or "")
    finally:
        rt.stopping.set()
        wake.set()
        await asyncio.wait_for(supervised, 10)
