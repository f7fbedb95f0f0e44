"""Notify's delivery worker alone: how fast it drains a backlog of due deliveries.

The end-to-end figures mix every stage; this one isolates the stage the profile named (notify's
claim → sign → POST → record loop). It migrates a schema of its own (``bench_drain``, dropped
first) in ``DATABASE_URL``, points one recipient at the stand-in webhook receiver (a process of
its own, so that its CPU is not counted), inserts N due deliveries with sealed bodies as notify's
consumer would, runs the real :class:`~services.notify.delivery.DeliveryWorker` in this process
and waits until every one is delivered. Figures: deliveries per second, and this process's CPU
milliseconds per delivery (what a profile divides up).

    python -m tools.bench.drain --count 5000 [--concurrency 64]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import typer
from faststream.kafka import KafkaBroker

from services.common.db import create_pool
from services.common.migrations import load_migrations, migrate
from services.common.pii import seal
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.supervision import Health, Loop
from services.notify.delivery import DeliveryWorker
from services.notify.messages import JSON_MEDIA_TYPE
from services.notify.registry import load_registry, set_channel
from services.notify.settings import NotifySettings
from services.notify.store import Notify
from services.notify.targets import TargetPolicy
from services.notify.webhooks import generate_secret
from tools.ports import free_port

SCHEMA = "bench_drain"
RECIPIENT = "handhaving"
MIGRATIONS = Path(__file__).parents[2] / "services" / "notify" / "migrations"


@dataclass(frozen=True, slots=True)
class Drained:
    count: int
    concurrency: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds

    @property
    def cpu_ms_per_delivery(self) -> float:
        return 1000 * self.cpu_seconds / self.count

    def summary(self) -> dict[str, float | int]:
        return {
            "deliveries": self.count,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 2),
            "per_second": round(self.per_second, 1),
            "cpu_ms_per_delivery": round(self.cpu_ms_per_delivery, 3),
        }


async def _prepare(conn: asyncpg.Connection, count: int, url: str, secret: str) -> None:
    await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    await migrate(conn, SCHEMA, load_migrations(MIGRATIONS))
    await conn.execute(f"SET search_path = {SCHEMA}, public")
    await set_channel(
        conn,
        RECIPIENT,
        webhook_url=url,
        secrets=[secret],
        policy=TargetPolicy(local_development=True),
    )
    rows = []
    for _ in range(count):
        incident, message = uuid.uuid4(), uuid.uuid4()
        body = json.dumps({"incident_id": str(incident), "category": "vandalisme"})
        fields = (RECIPIENT, "alert", "webhook", "operational", "P4", JSON_MEDIA_TYPE)
        rows.append((message, incident, *fields, seal(body), message))
    await conn.copy_records_to_table(
        "deliveries",
        schema_name=SCHEMA,
        records=rows,
        columns=[
            "message_id",
            "incident_id",
            "recipient",
            "kind",
            "channel",
            "profile",
            "priority",
            "content_type",
            "body_sealed",
            "first_message_id",
        ],
    )


async def _wait_receiver(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                await client.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"the stand-in receiver did not answer at {url}")


@dataclass(frozen=True, slots=True)
class Backlog:
    """Due deliveries in their own schema, and the real worker ready to send them."""

    pool: asyncpg.Pool
    runtime: Runtime
    worker: DeliveryWorker
    loop: Loop


@contextlib.asynccontextmanager
async def backlog(
    database_url: str, count: int, *, concurrency: int, **config: Any
) -> AsyncIterator[Backlog]:
    """``count`` due deliveries to a stand-in receiver (a process of its own), and a worker
    for them with ``config`` (NotifySettings) that is not started yet."""
    port = free_port()
    secret = generate_secret()
    receiver_dir = Path(tempfile.mkdtemp(prefix="veilig-drain-"))
    env = os.environ | {
        "STANDIN_WEBHOOK_PORT": str(port),
        "STANDIN_SMTP_PORT": str(free_port()),
        "STANDIN_SECRET": secret,
        "STANDIN_DIR": str(receiver_dir),
    }
    receiver = await asyncio.create_subprocess_exec(sys.executable, "-m", "tools.standins", env=env)
    try:
        await _wait_receiver(f"http://127.0.0.1:{port}/")
        conn = await asyncpg.connect(database_url)
        try:
            await _prepare(conn, count, f"http://127.0.0.1:{port}/hooks/{RECIPIENT}", secret)
        finally:
            await conn.close()
        settings = Settings(database_url=database_url, local_development=True)
        notify = NotifySettings(worker_concurrency=concurrency, **config)
        pool = await create_pool(database_url, SCHEMA, max_size=10)
        try:
            health = Health("notify")
            rt = Runtime(settings, pool, KafkaBroker(settings.kafka_bootstrap_servers), health)
            worker = DeliveryWorker(Notify(settings, notify, load_registry(notify.registry_file)))
            yield Backlog(pool, rt, worker, health.loop("delivery-worker", stale_after=60))
        finally:
            await pool.close()
    finally:
        receiver.terminate()
        await receiver.wait()


async def delivered(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'delivered'"))


async def drain(database_url: str, count: int, *, concurrency: int) -> Drained:
    """Insert ``count`` due deliveries and time the worker delivering them all."""
    async with backlog(database_url, count, concurrency=concurrency) as due:
        started, cpu = time.perf_counter(), time.process_time()
        task = asyncio.create_task(due.worker.run(due.runtime, due.loop))
        while await delivered(due.pool) < count:
            await asyncio.sleep(0.05)
            if task.done():
                task.result()  # raises what stopped the worker
        drained = Drained(
            count, concurrency, time.perf_counter() - started, time.process_time() - cpu
        )
        due.runtime.stopping.set()
        await task
        return drained


def main(
    count: int = typer.Option(5000, help="Deliveries in the backlog."),
    concurrency: int = typer.Option(64, help="NOTIFY_WORKER_CONCURRENCY."),
) -> None:
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        raise typer.BadParameter("DATABASE_URL must name a PostgreSQL database")
    result = asyncio.run(drain(database_url, count, concurrency=concurrency))
    print(
        f"notify drain: {result.count} deliveries in {result.seconds:.2f} s = "
        f"{result.per_second:,.0f}/s; {result.cpu_ms_per_delivery:.2f} CPU ms per delivery"
    )


if __name__ == "__main__":
    typer.run(main)
