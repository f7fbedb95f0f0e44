"""`veilig analytics rebuild`: replay the topics from offset 0 into fresh tables, swap them in.

1. The migrations create the tables afresh in a staging schema (``analytics_rebuild``).
2. A consumer without a group, assigned every partition of ``incident-events`` and
   ``notification-events``, reads from the beginning up to the end offsets taken at the start.
   It loads the PII-free rows of ``events`` in bulk, then computes the inbox and the facts
   once (:func:`services.analytics.projection.complete_bulk_load`): the same mapping and the
   same fact query as the live consumers, so rebuilt == live.
3. The swap, in one transaction: lock the live inbox (the live consumers wait; the dashboard
   keeps reading), take the end offsets again and apply the tail that arrived meanwhile as the
   live consumers do, carry the safety plans over (they come from their own topic, which the
   rebuild does not replay), then rename ``analytics`` away, rename the staging schema to
   ``analytics`` and drop the old one. A batch the live consumer was holding is in the tail
   already; once it proceeds, its inbox claim finds the events in the new tables and changes
   nothing. The live consumers then go on from their committed offsets, into the new tables.

Records that are not valid events were dead-lettered by the live consumers; the rebuild skips
them too and counts them.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from schemas.events import Event
from services.analytics.consumers import TOPICS
from services.analytics.kafka_monitor import topic_partitions
from services.analytics.projection import (
    HANDLED,
    apply,
    complete_bulk_load,
    copy_data,
    rows_of,
    store_copy,
)
from services.common.consumer import PoisonMessage, decode_record, event_parser
from services.common.kafka_security import client_options
from services.common.migrations import load_migrations, migrate
from services.common.settings import Settings
from services.common.topics import connect_admin

LIVE = "analytics"
STAGING = "analytics_rebuild"
RETIRED = "analytics_retired"
MIGRATIONS = Path(__file__).parent / "migrations"

Progress = Callable[[int, int], None]
"""Called with (records read, records to read) after every batch."""


@dataclass(frozen=True, slots=True)
class RebuildResult:
    records: int
    events: int
    invalid: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


_PARSE = event_parser(*HANDLED)


def _parse(records: list[ConsumerRecord[bytes, bytes]]) -> tuple[list[Event], int]:
    """The events among ``records`` as the live consumers parse them, and how many records
    were not valid events (those went to the dead-letter topic)."""
    events, invalid = [], 0
    for record in records:
        event = decode_record(_PARSE, record)
        if isinstance(event, PoisonMessage):
            invalid += 1
        elif event is not None:
            events.append(event)
    return events, invalid


def _parse_rows(records: list[ConsumerRecord[bytes, bytes]]) -> tuple[bytes, int]:
    """In a worker process: parsing is most of the work of a replay, and it is CPU-bound.

    Without the cycle collector while a batch is parsed: the events hold no cycles, and
    collecting generations full of them took a third of the time.
    """
    gc.disable()
    try:
        events, invalid = _parse(records)
        return copy_data(rows_of(events)), invalid
    finally:
        gc.enable()


def _warm_up() -> None:
    """Runs once in each worker so that its imports happen while the tables are made; what
    the imports made lives as long as the process, so the collector need not look at it."""
    gc.freeze()


class _Replay:
    """Reads the assigned partitions and projects what it reads."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        conn: asyncpg.Connection,
        batch: int,
        first: dict[TopicPartition, int],
        progress: Progress,
    ) -> None:
        self.consumer = consumer
        self.conn = conn
        self.batch = batch
        self.first = first  # the log's first offsets: progress counts from there
        self.progress = progress
        self.records = self.invalid = 0

    async def _fetch(self, ends: dict[TopicPartition, int]) -> list[ConsumerRecord[bytes, bytes]]:
        """The next records of the partitions not yet read up to ``ends``; [] when done."""
        while pending := [tp for tp, end in ends.items() if await self.consumer.position(tp) < end]:
            fetched = await self.consumer.getmany(*pending, timeout_ms=1000, max_records=self.batch)
            records = [r for part in fetched.values() for r in part]
            if records:
                self.records += len(records)
                total = sum(end - self.first[tp] for tp, end in ends.items())
                self.progress(self.records, max(total, self.records))
                return records
        return []

    async def bulk(
        self,
        ends: dict[TopicPartition, int],
        pool: ProcessPoolExecutor,
        workers: list[Future[None]],
    ) -> None:
        """Load the rows of every record up to ``ends`` into ``events``: worker processes
        parse, this one fetches and stores, all at the same time. Until the workers have
        started (``workers`` are their warm-ups), this process parses too."""
        loop = asyncio.get_running_loop()
        parsing: set[asyncio.Future[tuple[bytes, int]]] = set()
        storing: asyncio.Task[None] | None = None

        async def store(parsed: Iterable[tuple[bytes, int]]) -> None:
            nonlocal storing
            for data, invalid in parsed:
                self.invalid += invalid
                if storing is not None:
                    await storing
                storing = asyncio.create_task(store_copy(self.conn, data))

        while records := await self._fetch(ends):
            if not all(w.done() for w in workers):
                await store([_parse_rows(records)])
                continue
            parsing.add(loop.run_in_executor(pool, _parse_rows, records))
            if len(parsing) > len(workers):  # every worker busy and one batch waiting
                done, parsing = await asyncio.wait(parsing, return_when=asyncio.FIRST_COMPLETED)
                await store(f.result() for f in done)
        if parsing:
            done, _ = await asyncio.wait(parsing)
            await store(f.result() for f in done)
        if storing is not None:
            await storing

    async def apply(self, ends: dict[TopicPartition, int]) -> None:
        """Apply every record up to ``ends`` batch by batch, as the live consumers do."""
        while records := await self._fetch(ends):
            events, invalid = _parse(records)
            self.invalid += invalid
            if events:
                async with self.conn.transaction():
                    await apply(self.conn, events)


async def _fresh_staging(conn: asyncpg.Connection) -> None:
    await conn.execute(f"DROP SCHEMA IF EXISTS {STAGING} CASCADE")
    await migrate(conn, STAGING, load_migrations(MIGRATIONS))


async def _assign_from_start(
    consumer: AIOKafkaConsumer, settings: Settings
) -> list[TopicPartition]:
    """Every partition of the projected topics, assigned to ``consumer`` at its beginning."""
    admin = await connect_admin(settings)
    try:
        partitions = await topic_partitions(admin, [settings.topic(t.name) for t in TOPICS])
    finally:
        await admin.close()
    await consumer.start()
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    return partitions


async def rebuild(
    settings: Settings,
    *,
    batch: int = 5000,
    workers: int = os.cpu_count() or 1,
    progress: Progress | None = None,
) -> RebuildResult:
    """Rebuild the analytics schema from the topics and swap it in; see the module doc."""
    started = time.perf_counter()
    # spawn, not fork: this process has an event loop and sockets a child must not share.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    warming = [pool.submit(_warm_up) for _ in range(workers)]
    dsn = settings.database_url.get_secret_value()
    staging = await asyncpg.connect(dsn, server_settings={"search_path": f"{STAGING},public"})
    live = await asyncpg.connect(dsn)
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        client_id="veilig-analytics-rebuild",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        _, partitions = await asyncio.gather(
            _fresh_staging(staging), _assign_from_start(consumer, settings)
        )
        first = await consumer.beginning_offsets(partitions)
        replay = _Replay(consumer, staging, batch, first, progress or (lambda _d, _t: None))
        await replay.bulk(await consumer.end_offsets(partitions), pool, warming)
        await complete_bulk_load(staging)
        async with live.transaction():
            has_live = await live.fetchval("SELECT to_regclass($1)", f"{LIVE}.inbox") is not None
            if has_live:
                await live.execute(f"LOCK TABLE {LIVE}.inbox IN EXCLUSIVE MODE")
            await replay.apply(await consumer.end_offsets(partitions))
            events = await staging.fetchval("SELECT count(*) FROM events")
            if has_live:
                await live.execute(
                    f"INSERT INTO {STAGING}.safety_plans SELECT * FROM {LIVE}.safety_plans"  # noqa: S608
                )
                await live.execute(f"ALTER SCHEMA {LIVE} RENAME TO {RETIRED}")
            await live.execute(f"ALTER SCHEMA {STAGING} RENAME TO {LIVE}")
            if has_live:
                await live.execute(f"DROP SCHEMA {RETIRED} CASCADE")
    finally:
        # The workers exit on their own; waiting for them is no part of the rebuild.
        pool.shutdown(wait=False, cancel_futures=True)
        await consumer.stop()
        await staging.close()
        await live.close()
    return RebuildResult(replay.records, events, replay.invalid, time.perf_counter() - started)
