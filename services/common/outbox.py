"""Transactional outbox and inbox: the exactly-once effect of every service.

A service writes its state change and the events it must publish in ONE PostgreSQL
transaction (``enqueue``); the relay publishes outbox rows to Kafka in id order and deletes
them only after the broker acknowledged them (idempotent producer, acks=all). A crash
between publish and delete can publish a row twice; consumers drop the copy through their
inbox (``claim``), keyed by the CloudEvents id. One relay per service is active at a time
(an advisory lock), so the order per incident survives several replicas.

Tables (created by each service's migrations, in its own schema):
    outbox(id bigserial, topic text, key bytea, headers jsonb, value bytea, created_at)
    inbox(event_id uuid primary key, processed_at)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from schemas.envelope import encode
from schemas.events import Event
from services.common.runtime import pause
from services.common.settings import Settings

log = logging.getLogger(__name__)

OUTBOX_BACKLOG = Gauge(
    "veilig_outbox_backlog", "Outbox rows not yet published to Kafka", ["service"]
)
OUTBOX_LAG = Gauge(
    "veilig_outbox_relay_lag_seconds", "Age of the oldest unpublished outbox row", ["service"]
)
OUTBOX_PUBLISHED = Counter(
    "veilig_outbox_published_total", "Outbox rows published to Kafka", ["service", "topic"]
)

BATCH = 500


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: bytes
    headers: Sequence[tuple[str, bytes]]
    value: bytes


def event_message(
    settings: Settings,
    event: Event,
    *,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> OutgoingMessage:
    """An event as an outbox row for its topic (with this deployment's topic prefix)."""
    encoded = encode(event, traceparent=traceparent, tracestate=tracestate)
    return OutgoingMessage(
        topic=settings.topic(encoded.topic),
        key=encoded.key,
        headers=encoded.headers,
        value=encoded.value,
    )


async def enqueue(conn: asyncpg.Connection, messages: Iterable[OutgoingMessage]) -> None:
    """Add messages to the outbox inside the caller's transaction."""
    rows = [
        (
            m.topic,
            m.key,
            json.dumps([[k, v.decode()] for k, v in m.headers]),
            m.value,
        )
        for m in messages
    ]
    if rows:
        await conn.executemany(
            "INSERT INTO outbox (topic, key, headers, value) VALUES ($1, $2, $3::jsonb, $4)", rows
        )
        await conn.execute("SELECT pg_notify(current_schema() || '_outbox', '')")


async def claim(conn: asyncpg.Connection, event_ids: Sequence[UUID]) -> set[UUID]:
    """Record consumed events in the inbox (caller's transaction); returns the ids not seen
    before: only those may take effect."""
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id) SELECT unnest($1::uuid[]) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        list(event_ids),
    )
    return {row["event_id"] for row in rows}


def _lock_key(schema: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"relay:{schema}".encode()).digest()[:8], "big", signed=True
    )


async def relay(
    settings: Settings,
    pool: asyncpg.Pool,
    schema: str,
    stopping: asyncio.Event,
    *,
    idle_poll_seconds: float = 1.0,
) -> None:
    """Publish outbox rows until ``stopping`` is set; survives Kafka outages by retrying."""
    wake = asyncio.Event()
    listener = await pool.acquire()
    producer: AIOKafkaProducer | None = None
    channel = f"{schema}_outbox"

    def on_notify(*_: object) -> None:
        wake.set()

    try:
        await listener.add_listener(channel, on_notify)
        # Leadership: only the replica holding the lock relays (order per incident).
        while not stopping.is_set():
            if await listener.fetchval("SELECT pg_try_advisory_lock($1)", _lock_key(schema)):
                break
            await pause(stopping, wake, 5.0)
        while not stopping.is_set():
            if producer is None:
                producer = await _start_producer(settings, stopping)
                if producer is None:
                    break
            try:
                published = await _publish_batch(pool, producer, schema)
            except KafkaError as exc:
                log.warning("outbox relay: Kafka unavailable, retrying", extra={"error": str(exc)})
                with contextlib.suppress(Exception):
                    await producer.stop()
                producer = None
                await pause(stopping, wake, 2.0)
                continue
            if published < BATCH:
                await _record_backlog(pool, schema)
                wake.clear()
                await pause(stopping, wake, idle_poll_seconds)
    finally:
        if producer is not None:
            await producer.stop()
        with contextlib.suppress(Exception):
            await listener.remove_listener(channel, on_notify)
            await listener.execute("SELECT pg_advisory_unlock_all()")
        await pool.release(listener)


async def _start_producer(settings: Settings, stopping: asyncio.Event) -> AIOKafkaProducer | None:
    delay = 0.5
    while not stopping.is_set():
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="veilig-outbox-relay",
            enable_idempotence=True,
            acks="all",
            linger_ms=settings.kafka_linger_ms,
            request_timeout_ms=10_000,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            log.warning("outbox relay: waiting for Kafka", extra={"error": str(exc)})
            await pause(stopping, None, delay)
            delay = min(delay * 2, 5.0)
        else:
            return producer
    return None


async def _publish_batch(pool: asyncpg.Pool, producer: AIOKafkaProducer, schema: str) -> int:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT id, topic, key, headers, value FROM outbox ORDER BY id "
            "LIMIT $1 FOR UPDATE SKIP LOCKED",
            BATCH,
        )
        if not rows:
            return 0
        # send() only queues; all futures resolve once the broker acknowledged the batch.
        futures = [
            await producer.send(
                row["topic"],
                value=row["value"],
                key=row["key"],
                headers=[(k, v.encode()) for k, v in json.loads(row["headers"])],
            )
            for row in rows
        ]
        await asyncio.gather(*futures)
        await conn.execute(
            "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
    for row in rows:
        OUTBOX_PUBLISHED.labels(schema, row["topic"]).inc()
    return len(rows)


async def _record_backlog(pool: asyncpg.Pool, schema: str) -> None:
    row = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS lag "
        "FROM outbox"
    )
    OUTBOX_BACKLOG.labels(schema).set(row["n"])
    OUTBOX_LAG.labels(schema).set(float(row["lag"]))
