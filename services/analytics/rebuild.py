"""`veilig analytics rebuild`: replay the topics from offset 0 into fresh tables, swap them in.

1. The migrations create the tables afresh in a staging schema (``analytics_rebuild``).
2. Loaders, this process and a worker process for every further CPU, claim the partitions of
   ``incident-events`` and ``notification-events`` one at a time, largest first. Each reads
   its partition from the beginning up to the end offset taken at the start (a consumer
   without a group) and loads the PII-free rows of ``events`` with binary COPY over a
   connection of its own. Nothing crosses between the processes but which partition is next
   and how many records were read, so reading, parsing and loading run on every core from
   the start (the workers are forked: nothing to import). Then the inbox and the facts are
   computed once and the secondary indexes built once
   (:func:`services.analytics.projection.complete_bulk_load`): the same mapping and the same
   fact query as the live consumers, so rebuilt == live.
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
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
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
    drop_secondary_indexes,
    rows_of,
    store_rows,
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
CLIENT_ID = "veilig-analytics-rebuild"

Progress = Callable[[int, int], None]
"""Called with (records read, records to read) as the replay goes."""

Part = tuple[str, int, int, int]
"""A partition to load: (topic, partition, first offset, end offset)."""


@dataclass(frozen=True, slots=True)
class RebuildResult:
    records: int
    events: int
    invalid: int
    seconds: float
    phases: dict[str, float]
    """Seconds of each step: ``prepare`` (staging schema, offsets, worker start), ``load``
    (read, parse and COPY), ``complete`` (indexes, inbox, facts), ``swap`` (tail and rename)."""

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


def parts(first: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> list[Part]:
    """The partitions that hold records, largest first: the loaders claim them in this order,
    so the last ones claimed are small and the loaders finish close together."""
    return [
        (tp.topic, tp.partition, first[tp], ends[tp])
        for tp in sorted(ends, key=lambda tp: first[tp] - ends[tp])
        if ends[tp] > first[tp]
    ]


async def _connect_staging(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(
        settings.database_url.get_secret_value(),
        server_settings={"search_path": f"{STAGING},public"},
    )


def _consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer without a group, for reading partitions it is assigned to their ends."""
    return AIOKafkaConsumer(
        **client_options(settings),
        client_id=CLIENT_ID,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        # A fetch of a partition read to its end waits at most this long at the broker, and
        # the next partition's fetch waits for it (with the default 500 ms, half the time).
        fetch_max_wait_ms=5,
    )


async def _next_batch(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int], batch: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """The next records of the partitions not yet read up to ``ends``; [] when done."""
    while pending := [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
        fetched = await consumer.getmany(*pending, timeout_ms=1000, max_records=batch)
        if records := [r for part in fetched.values() for r in part]:
            return records
    return []


@dataclass(frozen=True, slots=True)
class _Shared:
    """What the loaders (this process and the workers) share: the index of the next part to
    claim, and how many records all of them have read."""

    claimed: Synchronized[int]
    read: Synchronized[int]

    def claim(self) -> int:
        with self.claimed.get_lock():
            index = self.claimed.value
            self.claimed.value += 1
        return index

    def count(self, records: int) -> None:
        with self.read.get_lock():
            self.read.value += records


_shared: _Shared | None = None  # in a worker process: set once it starts


def _start_worker(claimed: Synchronized[int], read: Synchronized[int]) -> None:
    """Runs once in each worker: what it inherited lives as long as the process, so the
    collector need not look at it again (nor touch its pages, shared with this process)."""
    global _shared
    _shared = _Shared(claimed, read)
    # This process's event loop may have pointed signal wake-ups at its own socket.
    signal.set_wakeup_fd(-1)
    gc.freeze()


def _ready() -> None:
    """Submitted once a worker to start the processes before anything else."""


def _load_in_worker(settings: Settings, work: list[Part], batch: int) -> tuple[int, int]:
    assert _shared is not None
    return asyncio.run(_load(settings, work, batch, _shared))


async def _load(
    settings: Settings, work: list[Part], batch: int, shared: _Shared
) -> tuple[int, int]:
    """Claim parts of ``work`` until none is left and load each into the staging schema;
    (records read, records that were no event).

    Without the cycle collector meanwhile: the events and rows hold no cycles, and with it
    every fetch paid for scanning the batches before it (reading took 5 times as long)."""
    index = shared.claim()
    if index >= len(work):  # the others were quicker: nothing to connect for
        return 0, 0
    consumer = _consumer(settings)
    conn = await _connect_staging(settings)
    records = invalid = 0
    storing: asyncio.Task[None] | None = None
    collecting = gc.isenabled()
    gc.disable()
    try:
        await consumer.start()
        while index < len(work):
            topic, partition, first, end = work[index]
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, first)
            while fetched := await _next_batch(consumer, {tp: end}, batch):
                # Only up to the end offset: what came later is the tail, applied at the swap.
                mine = [r for r in fetched if r.offset < end]
                events, bad = _parse(mine)
                records, invalid = records + len(mine), invalid + bad
                if storing is not None:
                    await storing
                # Stored while the next batch is read and parsed.
                storing = asyncio.create_task(store_rows(conn, rows_of(events)))
                shared.count(len(mine))
            index = shared.claim()
        if storing is not None:
            await storing
    finally:
        if storing is not None:
            storing.cancel()  # done already, unless this loader failed
        if collecting:
            gc.enable()
        await consumer.stop()
        await conn.close()
    return records, invalid


async def _bulk(
    settings: Settings,
    pool: ProcessPoolExecutor,
    workers: int,
    shared: _Shared,
    work: list[Part],
    batch: int,
    report: Callable[[int], None],
) -> tuple[int, int]:
    """Load ``work`` with every worker and this process, which starts at once while the
    workers are still starting; reports progress as they read. (records, invalid)"""
    loop = asyncio.get_running_loop()
    loads = [
        loop.run_in_executor(pool, _load_in_worker, settings, work, batch) for _ in range(workers)
    ]
    loads.append(asyncio.ensure_future(_load(settings, work, batch, shared)))
    pending: set[asyncio.Future[tuple[int, int]]] = set(loads)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=0.25)
        report(shared.read.value)
    results = [load.result() for load in loads]
    return sum(r for r, _ in results), sum(i for _, i in results)


async def _fresh_staging(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """The staging schema as the migrations make it, ready for a bulk load: the definitions
    of the indexes to build once it is done."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {STAGING} CASCADE")
    await migrate(conn, STAGING, load_migrations(MIGRATIONS))
    return await drop_secondary_indexes(conn)


async def _assign(consumer: AIOKafkaConsumer, settings: Settings) -> list[TopicPartition]:
    """Every partition of the projected topics, assigned to ``consumer``."""
    admin = await connect_admin(settings)
    try:
        partitions = await topic_partitions(admin, [settings.topic(t.name) for t in TOPICS])
    finally:
        await admin.close()
    await consumer.start()
    consumer.assign(partitions)
    return partitions


async def rebuild(
    settings: Settings,
    *,
    batch: int = 5000,
    workers: int = max(1, (os.cpu_count() or 2) - 1),
    progress: Progress | None = None,
) -> RebuildResult:
    """Rebuild the analytics schema from the topics and swap it in; see the module doc."""
    started = last = time.perf_counter()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        phases[name], last = now - last, now

    progress = progress or (lambda _d, _t: None)
    # fork, not spawn: a spawned worker spent 1.3 s of a core importing before it could load.
    # The workers are forked first, before this call opens a connection; each makes its own
    # event loop and connections (_load_in_worker) and uses nothing else it inherited.
    context = multiprocessing.get_context("fork")
    shared = _Shared(context.Value("i", 0), context.Value("q", 0))
    pool = ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(shared.claimed, shared.read),
    )
    for _ in range(workers):
        pool.submit(_ready)
    staging, helper = await asyncio.gather(*(_connect_staging(settings) for _ in range(2)))
    live = await asyncpg.connect(settings.database_url.get_secret_value())
    consumer = _consumer(settings)
    try:
        indexes, partitions = await asyncio.gather(
            _fresh_staging(staging), _assign(consumer, settings)
        )
        first = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        total = sum(end - first[tp] for tp, end in ends.items())
        phase("prepare")
        records, invalid = await _bulk(
            settings,
            pool,
            workers,
            shared,
            parts(first, ends),
            batch,
            lambda so_far: progress(so_far, max(total, so_far)),
        )
        progress(records, max(total, records))
        for tp, end in ends.items():  # the tail starts where the loaders stopped
            consumer.seek(tp, end)
        phase("load")
        await complete_bulk_load([staging, helper], indexes)
        phase("complete")
        async with live.transaction():
            has_live = await live.fetchval("SELECT to_regclass($1)", f"{LIVE}.inbox") is not None
            if has_live:
                await live.execute(f"LOCK TABLE {LIVE}.inbox IN EXCLUSIVE MODE")
            # The tail, batch by batch as the live consumers apply it.
            ends = await consumer.end_offsets(partitions)
            total = sum(end - first[tp] for tp, end in ends.items())
            while tail := await _next_batch(consumer, ends, batch):
                events, bad = _parse(tail)
                records, invalid = records + len(tail), invalid + bad
                progress(records, max(total, records))
                if events:
                    async with staging.transaction():
                        await apply(staging, events)
            events_kept = await staging.fetchval("SELECT count(*) FROM events")
            if has_live:
                await live.execute(
                    f"INSERT INTO {STAGING}.safety_plans SELECT * FROM {LIVE}.safety_plans"  # noqa: S608
                )
                await live.execute(f"ALTER SCHEMA {LIVE} RENAME TO {RETIRED}")
            await live.execute(f"ALTER SCHEMA {STAGING} RENAME TO {LIVE}")
            if has_live:
                await live.execute(f"DROP SCHEMA {RETIRED} CASCADE")
        phase("swap")
    finally:
        # The workers exit on their own; waiting for them is no part of the rebuild.
        pool.shutdown(wait=False, cancel_futures=True)
        await consumer.stop()
        await staging.close()
        await helper.close()
        await live.close()
    return RebuildResult(
        records,
        events_kept,
        invalid,
        time.perf_counter() - started,
        {name: round(seconds, 2) for name, seconds in phases.items()},
    )
