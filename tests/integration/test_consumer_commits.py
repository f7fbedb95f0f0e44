"""A batch consumer against the real broker: handled offsets are committed together, a moment
after their batches, and what is pending is committed when the consumer stops gracefully."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaRouter

from schemas.topics import INCIDENT_EVENTS
from services.common.consumer import Incoming, Rejected, batch_consumer
from services.common.kafka import make_broker
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.supervision import Health
from services.common.topics import apply_topics
from tests.support import committed_offsets, eventually, produce

RECORDS = 3


async def _committed(settings: Settings) -> int:
    """How many records of incident-events the consumer's group has committed."""
    offsets = await committed_offsets(settings, settings.group_id("analytics", "main"))
    return sum(max(offset, 0) for offset in offsets.values())


@contextlib.asynccontextmanager
async def _consuming(settings: Settings) -> AsyncIterator[list[bytes]]:
    """A running broker whose one batch consumer has read RECORDS records of incident-events,
    sent one at a time (a batch each, as at a low rate); what it read. The broker stops
    gracefully on leaving."""
    seen: list[bytes] = []

    def parse(record: ConsumerRecord[bytes, bytes]) -> bytes:
        return record.value or b""

    async def handle(batch: Sequence[Incoming[bytes]]) -> list[Rejected]:
        seen.extend(i.item for i in batch)
        return []

    await apply_topics(settings)
    broker = make_broker(settings, "analytics")
    router = KafkaRouter()
    rt = Runtime(settings, pool=None, broker=broker, health=Health("analytics"))  # type: ignore[arg-type]
    batch_consumer(router, rt, "analytics", INCIDENT_EVENTS, parse=parse, handle=handle)
    broker.include_router(router)
    await broker.start()
    try:
        for n in range(RECORDS):
            topic = settings.topic(INCIDENT_EVENTS.name)
            await produce(settings, topic, [(f"k{n}".encode(), f"r{n}".encode(), [])])
            await eventually(lambda n=n: len(seen) > n, within=30)
        yield seen
    finally:
        await broker.stop()


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
