"""A batch consumer against the real broker and database: handled offsets are committed
together, a moment after their batches; a batch that dead-lettered a record commits at once;
what is pending is committed when the consumer stops gracefully."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaRouter

from schemas.topics import INCIDENT_EVENTS
from services.common import dlq
from services.common.consumer import Incoming, Rejected, batch_consumer
from services.common.db import create_pool
from services.common.kafka import make_broker
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.supervision import Health
from services.common.topics import apply_topics
from tests.support import committed_offsets, eventually, produce, read_topic

RECORDS = 3


async def _committed(settings: Settings) -> int:
    """How many records of incident-events the consumer's group has committed."""
    offsets = await committed_offsets(settings, settings.group_id("analytics", "main"))
    return sum(max(offset, 0) for offset in offsets.values())


@contextlib.asynccontextmanager
async def _consuming(settings: Settings, refuse: bytes = b"") -> AsyncIterator[list[bytes]]:
    """A running broker whose one batch consumer has read RECORDS records of incident-events,
    sent one at a time (a batch each, as at a low rate), refusing the one whose value is
    ``refuse`` (it goes to the dead-letter topic); what it read. The broker stops gracefully on
    leaving."""
    seen: list[bytes] = []

    def parse(record: ConsumerRecord[bytes, bytes]) -> bytes:
        return record.value or b""

    async def handle(batch: Sequence[Incoming[bytes]]) -> list[Rejected]:
        seen.extend(i.item for i in batch)
        return [Rejected(i.record, "refused by the test") for i in batch if i.item == refuse]

    await apply_topics(settings)
    pool = await create_pool(settings.database_url.get_secret_value(), "analytics")
    async with pool.acquire() as conn:
        await dlq.ensure_schema(conn)  # the period keys dead letters are sealed with
    broker = make_broker(settings, "analytics")
    router = KafkaRouter()
    rt = Runtime(settings, pool=pool, broker=broker, health=Health("analytics"))
    batch_consumer(router, rt, "analytics", INCIDENT_EVENTS, parse=parse, handle=handle)
    broker.include_router(router)
    await broker.start()
    topic = settings.topic(INCIDENT_EVENTS.name)
    try:
        for n in range(RECORDS):
            await produce(settings, topic, [(f"k{n}".encode(), f"r{n}".encode(), [])])
            await eventually(lambda n=n: len(seen) > n, within=30)
        yield seen
    finally:
        await broker.stop()
        await pool.close()


async def test_offsets_wait_for_the_interval_and_a_graceful_stop_commits_them(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"kafka_commit_interval_ms": 600_000})
    async with _consuming(settings) as seen:
        assert sorted(seen) == [b"r0", b"r1", b"r2"]
        assert await _committed(settings) == 0  # not one commit a batch
    assert await _committed(settings) == RECORDS


async def test_while_it_runs_the_handled_offsets_are_committed_within_the_interval(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"kafka_commit_interval_ms": 200})

    async def all_committed() -> bool:
        return await _committed(settings) == RECORDS

    async with _consuming(settings):
        await eventually(all_committed, within=10)


async def test_a_batch_that_dead_lettered_a_record_commits_at_once(settings: Settings) -> None:
    """A dead letter is an effect no inbox guards: reading its record again would send it
    twice, so its batch (and what was pending before it) does not wait for the interval."""
    settings = settings.model_copy(update={"kafka_commit_interval_ms": 600_000})
    async with _consuming(settings, refuse=b"r1") as seen:
        assert len(seen) == RECORDS
        assert await _committed(settings) == 2  # r0 and r1; r2 waits for the interval
    dead = await read_topic(
        settings, settings.topic(INCIDENT_EVENTS.dlq), until=lambda rs: bool(rs)
    )
    assert len(dead) == 1
