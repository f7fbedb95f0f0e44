"""A background reader against the real broker: records that arrive a few at a time reach it
together, in one batch, while a reader on the delivery path gets them as they come."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaRouter

from schemas.topics import INCIDENT_EVENTS
from services.common.consumer import Handler, Incoming, Rejected, batch_consumer
from services.common.db import create_pool
from services.common.kafka import make_broker
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.supervision import Health
from services.common.topics import apply_topics
from tests.support import eventually, produce

SPREAD = 6
"""Records sent 100 ms apart: half a second of a trickle."""


async def _batches_of_a_trickle(settings: Settings, wait_ms: int) -> dict[str, int]:
    """How many batches a prompt reader and a background one (``wait_ms``) took for a
    trickle of SPREAD records."""
    settings = settings.model_copy(update={"kafka_background_fetch_wait_ms": wait_ms})
    batches: dict[str, list[list[bytes]]] = {"prompt": [], "background": []}

    def parse(record: ConsumerRecord[bytes, bytes]) -> bytes:
        return record.value or b""

    def handler(name: str) -> Handler[bytes]:
        async def handle(batch: Sequence[Incoming[bytes]]) -> list[Rejected]:
            batches[name].append([i.item for i in batch])
            return []

        return handle

    await apply_topics(settings)
    pool = await create_pool(settings.database_url.get_secret_value(), "analytics")
    broker = make_broker(settings, "analytics")
    router = KafkaRouter()
    rt = Runtime(settings, pool=pool, broker=broker, health=Health("analytics"))
    for name in batches:
        batch_consumer(
            router,
            rt,
            "analytics",
            INCIDENT_EVENTS,
            purpose=f"test-{name}",
            parse=parse,
            handle=handler(name),
            background=name == "background",
        )
    broker.include_router(router)
    await broker.start()
    topic = settings.topic(INCIDENT_EVENTS.name)

    def seen(name: str) -> list[bytes]:
        return [value for batch in batches[name] for value in batch]

    try:
        # Both readers assigned and past their first fetch before the trickle starts.
        await produce(settings, topic, [(b"k", b"warm-up", [])])
        await eventually(lambda: all(b"warm-up" in seen(name) for name in batches), within=30)
        before = {name: len(batches[name]) for name in batches}
        for n in range(SPREAD):
            await produce(settings, topic, [(b"k", f"r{n}".encode(), [])])
            await asyncio.sleep(0.1)
        await eventually(lambda: all(len(seen(name)) == SPREAD + 1 for name in batches), within=30)
    finally:
        await broker.stop()
        await pool.close()

    return {name: len(batches[name]) - before[name] for name in batches}


async def test_a_background_reader_gets_a_trickle_in_one_batch(settings: Settings) -> None:
    trickle = await _batches_of_a_trickle(settings, wait_ms=3000)
    assert trickle["prompt"] >= 3, trickle  # as they came
    assert trickle["background"] <= 2, trickle  # gathered (two if a fetch ended midway)


async def test_with_no_wait_a_background_reader_reads_as_promptly_as_the_others(
    settings: Settings,
) -> None:
    trickle = await _batches_of_a_trickle(settings, wait_ms=0)
    assert trickle["background"] >= 3, trickle
