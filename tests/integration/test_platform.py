"""The platform foundation against the real broker and database."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.topics import CLUSTER_TOPICS, INCIDENT_EVENTS
from services.common.kafka_security import client_options
from services.common.settings import Settings
from services.common.topics import TopicConflictError, apply_topics
from tests.support import committed_offsets

pytestmark = pytest.mark.integration


async def test_keyed_message_with_headers_round_trips_through_a_consumer_group(
    settings: Settings,
) -> None:
    await apply_topics(settings)
    topic = settings.topic(INCIDENT_EVENTS.name)
    key = str(uuid.uuid4()).encode()
    producer = AIOKafkaProducer(**client_options(settings), enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic, b'{"hello": "haarlem"}', key=key, headers=[("ce_type", b"test.v1")]
        )
    finally:
        await producer.stop()

    group = settings.group_id("intake", "foundation-test")
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(settings),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert record.key == key
    assert record.value == b'{"hello": "haarlem"}'
    assert record.headers == (("ce_type", b"test.v1"),)
    # The same key always lands in the same partition: total order per incident.
    assert record.partition == sent.partition

    offsets = await committed_offsets(settings, group)
    assert offsets[TopicPartition(topic, sent.partition)] == sent.offset + 1


async def test_a_row_round_trips_through_postgresql(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE probe (id uuid PRIMARY KEY, note text NOT NULL)")
        row_id = uuid.uuid4()
        await conn.execute("INSERT INTO probe VALUES ($1, $2)", row_id, "Grote Markt")
        assert await conn.fetchval("SELECT note FROM probe WHERE id = $1", row_id) == "Grote Markt"
    finally:
        await conn.close()


async def test_topics_are_applied_idempotently_and_grow_but_never_shrink(
    settings: Settings,
) -> None:
    first = await apply_topics(settings)
    assert sorted(first.created) == sorted(settings.topic(t.name) for t in CLUSTER_TOPICS)

    again = await apply_topics(settings)
    assert again.created == [] and again.partitions_added == {} and again.configs_altered == {}

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        metas = await admin.describe_topics([settings.topic(t.name) for t in CLUSTER_TOPICS])
    finally:
        await admin.close()
    partitions = {m["topic"]: len(m["partitions"]) for m in metas}
    assert partitions == {settings.topic(t.name): t.partitions for t in CLUSTER_TOPICS}

    grown = [
        dataclasses.replace(t, partitions=t.partitions + 4) if t is INCIDENT_EVENTS else t
        for t in CLUSTER_TOPICS
    ]
    report = await apply_topics(settings, grown)
    name = settings.topic(INCIDENT_EVENTS.name)
    assert report.partitions_added == {name: (12, 16)}

    with pytest.raises(TopicConflictError, match=rf"{name}: has 16 partitions, declared 12"):
        await apply_topics(settings)


async def test_configuration_drift_is_corrected(settings: Settings) -> None:
    await apply_topics(settings)
    shorter = [
        dataclasses.replace(t, retention_ms=3_600_000) if t is INCIDENT_EVENTS else t
        for t in CLUSTER_TOPICS
    ]
    report = await apply_topics(settings, shorter)
    assert report.configs_altered == {
        settings.topic(INCIDENT_EVENTS.name): {"retention.ms": "3600000"}
    }
