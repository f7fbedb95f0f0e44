"""How a batch consumer polls Kafka: a long wait that a record ends, and no sleep after it."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.subscriber.usecase import BatchSubscriber

from schemas.topics import INCIDENT_EVENTS
from services.common.consumer import POLL_TIMEOUT_MS, batch_consumer
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.supervision import Health


class FakeKafkaConsumer:
    """aiokafka's consumer as the subscriber uses it: ``getmany`` hands out what was queued."""

    def __init__(self, *batches: dict[Any, list[Any]]) -> None:
        self.batches = list(batches)
        self.timeouts: list[int] = []

    async def getmany(self, *, timeout_ms: int, max_records: int | None) -> dict[Any, list[Any]]:
        self.timeouts.append(timeout_ms)
        return self.batches.pop(0) if self.batches else {}


def _subscriber() -> BatchSubscriber:
    router = KafkaRouter()
    rt = Runtime(Settings(), pool=None, broker=KafkaBroker(), health=Health("triage"))  # type: ignore[arg-type]

    async def handle(items: Any) -> list[Any]:
        return []

    batch_consumer(router, rt, "triage", INCIDENT_EVENTS, parse=lambda r: None, handle=handle)
    (subscriber,) = router.subscribers
    assert isinstance(subscriber, BatchSubscriber)
    return subscriber


async def test_an_empty_poll_returns_without_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """FastStream's own batch poll sleeps its timeout again after an empty poll; a record
    arriving meanwhile waited for that sleep on every hop."""

    async def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s after an empty poll")

    monkeypatch.setattr("faststream.kafka.subscriber.usecase.anyio.sleep", no_sleep)
    kafka = FakeKafkaConsumer({})
    assert await _subscriber().get_msg(kafka) == ()  # type: ignore[arg-type]
    assert kafka.timeouts == [POLL_TIMEOUT_MS]


async def test_a_poll_hands_over_every_partitions_records_in_one_batch() -> None:
    kafka = FakeKafkaConsumer({"p0": ["a", "b"], "p1": ["c"]})
    assert await _subscriber().get_msg(kafka) == ("a", "b", "c")  # type: ignore[arg-type]
