"""The outbox relay under faults, against the real broker and database: leadership is fenced,
a handover keeps the order per incident, and a relay whose database connection is killed
starts again by itself."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import uuid
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator

import asyncpg
import pytest

from schemas.topics import INCIDENT_EVENTS
from services.common import outbox
from services.common.db import create_pool, release
from services.common.kafka import make_broker
from services.common.migrations import load_migrations, migrate
from services.common.outbox import OutgoingMessage, enqueue, outbox_lag, relay
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.supervision import Background, Health, supervise
from services.common.topics import apply_topics
from services.intake.service import SPEC as INTAKE
from tests.support import eventually, header, read_topic

pytestmark = pytest.mark.integration

INCIDENTS = [uuid.uuid4() for _ in range(6)]


async def runtime(settings: Settings) -> Runtime:
    pool = await create_pool(settings.database_url.get_secret_value(), "intake")
    return Runtime(
        settings=settings,
        pool=pool,
        broker=make_broker(settings, "intake"),
        health=Health("intake"),
    )


@pytest.fixture
async def relays(settings: Settings) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two replicas of intake's relay on one outbox (as two intake processes would have)."""
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    await migrate(conn, "intake", load_migrations(INTAKE.migrations))
    await conn.close()
    await apply_topics(settings)
    a, b = await runtime(settings), await runtime(settings)
    tasks = [asyncio.create_task(supervise(rt, Background("outbox-relay", relay))) for rt in (a, b)]
    try:
        yield a, b
    finally:
        for rt in (a, b):
            rt.stopping.set()
        await asyncio.wait(tasks, timeout=20)
        for rt in (a, b):
            await rt.pool.close()


def message(settings: Settings, incident: uuid.UUID, seq: int) -> OutgoingMessage:
    return OutgoingMessage(
        topic=settings.topic(INCIDENT_EVENTS.name),
        key=str(incident).encode(),
        headers=[("ce_id", str(uuid.uuid4()).encode())],
        value=json.dumps({"incident": str(incident), "seq": seq}).encode(),
    )


async def leader_pid(conn: asyncpg.Connection) -> int | None:
    return await conn.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )


async def test_a_relay_handover_keeps_the_order_per_incident(
    settings: Settings, relays: tuple[Runtime, Runtime]
) -> None:
    a, _ = relays
    total = 1200
    admin = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    try:
        await eventually(lambda: leader_pid(admin), within=10)
        first_leader = await leader_pid(admin)

        async def write() -> None:
            for seq in range(total):
                async with a.pool.acquire() as conn, conn.transaction():
                    await enqueue(conn, [message(settings, INCIDENTS[seq % 6], seq)])
                await asyncio.sleep(0.002)

        writer = asyncio.create_task(write())
        # Kill the leader's session twice while rows flow: its lock and its claims go with it.
        for _ in range(2):
            await asyncio.sleep(0.6)
            pid = await leader_pid(admin)
            assert pid is not None
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        await writer
        await eventually(
            lambda: admin.fetchval("SELECT count(*) = 0 FROM outbox"), within=30, every=0.2
        )
        assert await leader_pid(admin) not in (None, first_leader)
    finally:
        await admin.close()

    records = await read_topic(
        settings,
        settings.topic(INCIDENT_EVENTS.name),
        until=lambda rs: len({header(r, "ce_id") for r in rs}) >= total,
    )
    first_seen: dict[str, list[int]] = defaultdict(list)
    ids: set[str | None] = set()
    for record in records:
        event_id = header(record, "ce_id")
        if event_id in ids:
            continue  # a copy: every consumer's inbox drops it
        ids.add(event_id)
        body = json.loads(record.value)
        first_seen[body["incident"]].append(body["seq"])
    assert len(ids) == total
    for incident, seqs in first_seen.items():
        assert seqs == sorted(seqs), f"order broken for {incident}"
    # Both relays were restarted by their supervisor or stood by: neither is dead.
    assert all(rt.health.loops["outbox-relay"].alive() for rt in relays)
    assert sum(rt.health.loops["outbox-relay"].restarts for rt in relays) >= 2


async def test_the_lag_probe_sees_the_oldest_unpublished_row(settings: Settings) -> None:
    rt = await runtime(settings)
    try:
        async with rt.pool.acquire() as conn:
            await migrate(conn, "intake", load_migrations(INTAKE.migrations))
            assert await outbox_lag(rt) == 0.0
            await conn.execute(
                "INSERT INTO outbox (topic, key, headers, value, created_at) "
                "VALUES ('t', 'k', '[]', 'v', now() - interval '90 seconds')"
            )
        assert 89 <= await outbox_lag(rt) <= 120
    finally:
        await rt.pool.close()


async def test_a_row_committed_as_a_round_ends_is_published_at_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wake-up of a row committed while the relay finishes a round is kept: the row goes
    out at once, not at the next idle poll (60 s here). Lost, it cost a report up to a second
    on each hop at 10 reports/s."""
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    await migrate(conn, "intake", load_migrations(INTAKE.migrations))
    await apply_topics(settings)
    rt = await runtime(settings)
    finish_round = outbox._record_backlog
    committed: list[bool] = []

    async def a_row_arrives_meanwhile(leader: asyncpg.Connection, schema: str) -> None:
        if not committed:
            async with conn.transaction():
                await enqueue(conn, [message(settings, INCIDENTS[0], 1)])
            committed.append(True)
            await asyncio.sleep(0.5)  # its NOTIFY reaches the relay's listener meanwhile
        await finish_round(leader, schema)

    monkeypatch.setattr(outbox, "_record_backlog", a_row_arrives_meanwhile)
    body = functools.partial(relay, idle_poll_seconds=60.0)
    task = asyncio.create_task(supervise(rt, Background("outbox-relay", body)))
    try:

        async def published() -> bool:
            return bool(committed) and await conn.fetchval("SELECT count(*) FROM outbox") == 0

        await eventually(published, within=10)
    finally:
        rt.stopping.set()
        await asyncio.wait([task], timeout=20)
        await rt.pool.close()
        await conn.close()


async def test_the_urgent_relay_never_counts_the_main_lanes_backlog(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting the backlog scans the whole outbox, the main lane's rows included (thousands
    during a burst). The urgent relay publishes its rows past a main backlog nobody relays
    here, and never counts."""
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    await migrate(conn, "intake", load_migrations(INTAKE.migrations))
    await apply_topics(settings)
    await conn.execute("DELETE FROM outbox")
    rt = await runtime(settings)
    counts: list[str] = []
    count_backlog = outbox._record_backlog

    async def counting(leader: asyncpg.Connection, schema: str) -> None:
        counts.append(schema)
        await count_backlog(leader, schema)

    monkeypatch.setattr(outbox, "_record_backlog", counting)
    async with conn.transaction():
        await enqueue(conn, [message(settings, INCIDENTS[0], n) for n in range(200)])
    body = functools.partial(relay, lane="urgent")
    task = asyncio.create_task(supervise(rt, Background("outbox-relay-urgent", body)))
    try:
        for n in range(3):  # three rounds, each woken by its own row
            urgent = dataclasses.replace(message(settings, INCIDENTS[1], n), urgent=True)
            async with conn.transaction():
                await enqueue(conn, [urgent])

            async def published() -> bool:
                return not await conn.fetchval("SELECT count(*) FROM outbox WHERE urgent")

            await eventually(published, within=10)
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 200  # the main lane's
        assert counts == []
    finally:
        rt.stopping.set()
        await asyncio.wait([task], timeout=20)
        await rt.pool.close()
        await conn.execute("DELETE FROM outbox")
        await conn.close()


async def test_two_consumers_claiming_the_same_events_in_other_orders_never_deadlock(
    settings: Settings,
) -> None:
    """A P1's event reaches a service twice, by the main topic and by the urgent lane's copy,
    and each lane's consumer claims its batch in its own order. Two transactions that insert
    the same inbox keys in opposite orders each wait for the other: PostgreSQL ends one as a
    deadlock after a second. Claimed in one order, the later one only waits."""
    conns = [
        await asyncpg.connect(
            settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
        )
        for _ in range(2)
    ]
    await migrate(conns[0], "intake", load_migrations(INTAKE.migrations))
    ids = [uuid.uuid4() for _ in range(20_000)]

    async def claimed(conn: asyncpg.Connection, order: list[uuid.UUID]) -> set[uuid.UUID]:
        async with conn.transaction():
            return await outbox.claim(conn, order)

    try:
        outcomes = await asyncio.gather(
            claimed(conns[0], ids), claimed(conns[1], ids[::-1]), return_exceptions=True
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, errors
        first, second = outcomes
        assert isinstance(first, set) and isinstance(second, set)
        assert first.isdisjoint(second)
        assert first | second == set(ids)
    finally:
        await conns[0].execute("DELETE FROM inbox WHERE event_id = ANY($1)", ids)
        for conn in conns:
            await conn.close()


async def test_a_listening_connection_whose_server_went_away_is_given_back_quietly(
    settings: Settings,
) -> None:
    """A relay's or a cache's listener connection loses its server mid-operation: asyncpg
    aborts the protocol, the connection is closed before its cleanup has run, and it cannot
    remove a listener from a closed connection, so the pool warned of it on release."""
    pool = await create_pool(settings.database_url.get_secret_value(), "intake")
    try:
        conn = await pool.acquire()
        await conn.add_listener("intake_outbox", lambda *_: None)
        conn._con._abort()  # type: ignore[attr-defined]  # the socket broke mid-operation
        assert conn.is_closed()
        with warnings.catch_warnings():
            warnings.simplefilter("error", asyncpg.InterfaceWarning)
            await release(pool, conn)
        assert await pool.fetchval("SELECT 1") == 1  # its place in the pool is usable again
    finally:
        await pool.close()
