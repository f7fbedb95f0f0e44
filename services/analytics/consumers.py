"""Analytics' Kafka consumers: every event of ``incident-events`` and ``notification-events``,
in batches, one transaction per batch (inbox claim and projection together); and the
``safety-plans`` topic (``plans``)."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaRouter

from schemas.events import Event
from schemas.topics import INCIDENT_EVENTS, NOTIFICATION_EVENTS
from services.analytics import plans
from services.analytics.projection import HANDLED, apply
from services.common.consumer import Incoming, Rejected, batch_consumer, event_parser
from services.common.runtime import Runtime

TOPICS = (INCIDENT_EVENTS, NOTIFICATION_EVENTS)
MAX_RECORDS = 1000


def build_consumers(rt: Runtime) -> KafkaRouter:
    router = KafkaRouter()

    async def handle(batch: Sequence[Incoming[Event]]) -> list[Rejected]:
        async with rt.pool.acquire() as conn, conn.transaction():
            await apply(conn, [incoming.item for incoming in batch])
        return []

    for topic in TOPICS:
        batch_consumer(
            router,
            rt,
            "analytics",
            topic,
            purpose=topic.name,
            parse=event_parser(*HANDLED),
            handle=handle,
            max_records=MAX_RECORDS,
            background=True,
        )
    plans.subscribe(router, rt)
    return router
