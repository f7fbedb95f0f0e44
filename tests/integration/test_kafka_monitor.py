"""The Kafka monitor behind the ops dashboard and the consumer-lag alerts, against the real
broker: a partner's own submission topic counts like the platform's topics, so a stuck intake
consumer shows as lag (and pages) before partners' reports pile up unseen."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.analytics.kafka_monitor import KafkaMonitor
from services.common.kafka_access import create_partner_topic
from services.common.kafka_security import client_options
from services.common.settings import Settings
from services.common.topics import apply_topics, connect_admin
from tests.support import eventually

pytestmark = pytest.mark.integration


async def test_a_partners_submission_topic_is_watched_and_its_lag_counted(
    settings: Settings,
) -> None:
    await apply_topics(settings)
    code = f"mon{uuid.uuid4().hex[:6]}"
    admin = await connect_admin(settings)
    try:
        topic = await create_partner_topic(admin, settings, code)
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, b"{}", key=b"same") for _ in range(3)]
    finally:
        await producer.stop()
    partition = TopicPartition(topic, sent[0].partition)
    # Intake's group has taken the first of the three.
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=settings.group_id("intake"), enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.commit({partition: sent[0].offset + 1})
    finally:
        await consumer.stop()

    monitor, stopping = KafkaMonitor(settings, every=0.5), asyncio.Event()
    task = asyncio.create_task(monitor.run(stopping))
    shown = f"incident-submissions.{code}"
    try:

        def lag() -> int | None:
            found = [
                p.lag for p in monitor.latest.lag if p.topic == shown and p.group == "intake.main"
            ]
            return sum(found) if found else None

        await eventually(lambda: lag() is not None, within=20)
        assert lag() == 2
        assert monitor.latest.messages[shown] == 3
    finally:
        stopping.set()
        await task
