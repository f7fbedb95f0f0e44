"""Transactional outbox and inbox: the exactly-once effect of every service.

A service writes its state change and the events it must publish in ONE PostgreSQL
transaction (``enqueue``); the relay publishes outbox rows to Kafka in id order and deletes
them only after the broker acknowledged them (idempotent producer, acks=all). A crash
between publish and delete can publish a row twice; consumers drop the copy through their
inbox (``claim``), keyed by the CloudEvents id. One relay per service is active at a time
(an advisory lock on the connection that claims the rows: fenced), so the order per
incident survives several replicas and a handover between them.

Tables (created by each service's migrations, in its own schema):
    outbox(id bigserial, topic text, key bytea, headers jsonb, value bytea, created_at)
    inbox(event_id uuid primary key, processed_at)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from schemas.envelope import encode
from schemas.events import Event, IncidentReported
from schemas.topics import INCIDENT_URGENT
from services.common.db import listening
from services.common.faults import Backoff, describe, is_transient
from services.common.kafka_security import client_options
from services.common.runtime import Runtime, pause
from services.common.settings import Settings
from services.common.supervision import Background, Loop

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
URGENT_BATCH = 50  # the lane's batches stay small: each waits for the broker's acknowledgement
BACKLOG_EVERY_SECONDS = 1.0
"""How often the main lane's relay counts the whole outbox for the backlog gauges."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: bytes
    headers: Sequence[tuple[str, bytes]]
    value: bytes
    # The relay publishes urgent rows before the others (priority lanes, decision 0006).
    urgent: bool = False


def event_message(
    settings: Settings,
    event: Event,
    *,
    traceparent: str | None = None,
    tracestate: str | None = None,
    lane: bool = False,
) -> OutgoingMessage:
    """An event as an outbox row for its topic (with this deployment's topic prefix), or with
    ``lane`` its copy for the urgent lane, published ahead of everything else."""
    if type(event) is IncidentReported:
        # Kafka cannot forget: a report goes there with its personal part sealed (decision 0010).
        raise TypeError("a report is published sealed: period_keys.seal_report() first")
    encoded = encode(event, traceparent=traceparent, tracestate=tracestate)
    return OutgoingMessage(
        topic=settings.topic(INCIDENT_URGENT.name if lane else encoded.topic),
        key=encoded.key,
        headers=encoded.headers,
        value=encoded.value,
        urgent=lane,
    )


def lane_messages(
    settings: Settings, events: Iterable[Event], *, traceparent: str | None = None
) -> list[OutgoingMessage]:
    """Each event on its topic, and a copy in the urgent lane."""
    return [
        event_message(settings, event, traceparent=traceparent, lane=lane)
        for event in events
        for lane in (False, True)
    ]


async def enqueue(conn: asyncpg.Connection, messages: Iterable[OutgoingMessage]) -> None:
    """Add messages to the outbox inside the caller's transaction."""
    messages = list(messages)
    if messages:
        # One statement, one round trip: the rows in one INSERT (not one per row: they keep
        # their order, and with it the ids the relays publish by), and the NOTIFY that wakes
        # each lane's relay by its own rows only (sent at commit, folded into one).
        await conn.execute(
            "WITH added AS (INSERT INTO outbox (topic, key, headers, value, urgent) "
            "SELECT t, k, h::jsonb, v, u FROM unnest($1::text[], $2::bytea[], $3::text[], "
            "$4::bytea[], $5::bool[]) WITH ORDINALITY AS m(t, k, h, v, u, n) ORDER BY n) "
            "SELECT pg_notify(current_schema() || c, '') FROM unnest($6::text[]) AS c",
            [m.topic for m in messages],
            [m.key for m in messages],
            [json.dumps([[k, v.decode()] for k, v in m.headers]) for m in messages],
            [m.value for m in messages],
            [m.urgent for m in messages],
            sorted({_WAKE[m.urgent] for m in messages}),
        )


async def claim(conn: asyncpg.Connection, event_ids: Sequence[UUID]) -> set[UUID]:
    """Record consumed events in the inbox (caller's transaction); returns the ids not seen
    before: only those may take effect.

    The ids go in sorted: two lanes' consumers can hold the same event (a P1's copy on the
    urgent lane), and two transactions inserting the same keys in other orders deadlock."""
    rows = await conn.fetch(
        "INSERT INTO inbox (event_id) SELECT unnest($1::uuid[]) "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        sorted(set(event_ids)),
    )
    return {row["event_id"] for row in rows}


RelayLane = Literal["main", "urgent"]
_WAKE = {False: "_outbox", True: "_outbox_urgent"}
"""The NOTIFY channel (after the schema's name) that wakes a lane's relay, by ``urgent``."""


def _lock_key(schema: str, lane: RelayLane) -> int:
    name = f"relay:{schema}" if lane == "main" else f"relay:{schema}:urgent"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def relays(settings: Settings) -> list[Background]:
    """The relays a process runs, by its lane: the urgent lane's rows have a relay of their own,
    so a P1's copy never waits for a batch of the rest to be acknowledged by the broker."""
    return [
        *([Background("outbox-relay", relay)] if settings.works_main else []),
        *(
            [Background("outbox-relay-urgent", functools.partial(relay, lane="urgent"))]
            if settings.works_urgent
            else []
        ),
    ]


async def outbox_lag(rt: Runtime) -> float:
    """Age in seconds of the oldest unpublished outbox row this process's relays owe (0 when
    there is none)."""
    lane = rt.settings.lane
    age = await rt.pool.fetchval(
        "SELECT extract(epoch FROM now() - created_at) FROM outbox "
        "WHERE $1::boolean IS NULL OR urgent = $1 ORDER BY id LIMIT 1",
        None if lane == "all" else lane == "urgent",
    )
    return float(age or 0.0)


async def relay(
    rt: Runtime, loop: Loop, *, lane: RelayLane = "main", idle_poll_seconds: float = 1.0
) -> None:
    """Publish ``lane``'s outbox rows (the urgent lane's copies, or all the others) until the
    service stops: one term of that relay's leadership.

    Leadership is a session-level advisory lock on one connection, and every read of the rows
    and every delete runs **on that same connection**: a relay whose connection (and so its
    lock) is gone cannot read another row, so it stops publishing before another replica can
    take over. Rows it had in flight stay in the outbox (their delete never committed) and
    the next leader publishes them again from the lowest id, so after the consumers' inbox
    drops the copies, the order per incident holds across a handover
    (docs/decisions/0005-supervised-loops-and-transient-faults.md).

    Database errors end the term (the supervisor starts a new one after a backoff); Kafka
    errors are waited out here, the producer started anew.
    """
    settings, pool, schema = rt.settings, rt.pool, rt.health.service
    limit = BATCH if lane == "main" else URGENT_BATCH
    wake = asyncio.Event()
    channel = f"{schema}{_WAKE[lane == 'urgent']}"
    producer: AIOKafkaProducer | None = None

    def on_notify(*_: object) -> None:
        wake.set()

    counted = -math.inf  # when the backlog was last counted (the main lane's relay only)
    lock = _lock_key(schema, lane)
    async with listening(pool, channel, on_notify) as leader:
        try:
            while not rt.stopping.is_set():  # standby until this replica holds the lock
                loop.beat()
                if await leader.fetchval("SELECT pg_try_advisory_lock($1)", lock):
                    break
                await pause(rt.stopping, wake, 5.0)
            while not rt.stopping.is_set():
                loop.beat()
                if producer is None:
                    producer = await _start_producer(settings, rt.stopping, loop)
                    if producer is None:
                        break
                wake.clear()  # before claiming: a row committed meanwhile wakes the next round
                try:
                    published = await _publish_batch(leader, producer, schema, lane, limit)
                except KafkaError as exc:
                    log.warning(
                        "outbox relay: Kafka unavailable, retrying",
                        extra={"error": describe(exc), "transient": is_transient(exc)},
                    )
                    await _stop(producer)
                    producer = None
                    await pause(rt.stopping, None, 2.0)
                    continue
                if published < limit:
                    # Counting scans every row, the main lane's backlog included (thousands in a
                    # burst): work the urgent lane's rounds need not wait for (decision 0006).
                    if lane == "main" and time.monotonic() - counted >= BACKLOG_EVERY_SECONDS:
                        await _record_backlog(leader, schema)
                        counted = time.monotonic()
                    await pause(rt.stopping, wake, idle_poll_seconds)
        finally:
            # Flush (or give up on) what is in flight before anything else can happen.
            if producer is not None:
                await _stop(producer)
            with contextlib.suppress(Exception):
                await leader.execute("SELECT pg_advisory_unlock_all()")


async def _stop(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), timeout=15.0)


async def _start_producer(
    settings: Settings, stopping: asyncio.Event, loop: Loop
) -> AIOKafkaProducer | None:
    backoff = Backoff(first=0.5, cap=5.0)
    while not stopping.is_set():
        loop.beat()
        producer = AIOKafkaProducer(
            **client_options(settings),
            client_id="veilig-outbox-relay",
            enable_idempotence=True,
            acks="all",
            linger_ms=settings.kafka_linger_ms,
            request_timeout_ms=10_000,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await _stop(producer)
            log.warning("outbox relay: waiting for Kafka", extra={"error": describe(exc)})
            await pause(stopping, None, backoff.next())
        else:
            return producer
    return None


async def _publish_batch(
    leader: asyncpg.Connection,
    producer: AIOKafkaProducer,
    schema: str,
    lane: RelayLane,
    limit: int,
) -> int:
    # One lane's rows in id order. Lane rows go to a topic of their own, so each topic's rows
    # are published by one relay in id order: the order per incident holds on each. No
    # transaction around the round: the lane's leadership (the advisory lock held by this
    # connection) already makes this the only relay reading these rows, and a round cut short
    # anywhere leaves its rows to be published again, with or without one (a BEGIN and a
    # COMMIT were two round trips more on every hop of a P1).
    rows = await leader.fetch(
        "SELECT id, topic, key, headers, value FROM outbox WHERE urgent = $2 ORDER BY id LIMIT $1",
        limit,
        lane == "urgent",
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
    await leader.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
    for row in rows:
        OUTBOX_PUBLISHED.labels(schema, row["topic"]).inc()
    return len(rows)


async def _record_backlog(conn: asyncpg.Connection, schema: str) -> None:
    row = await conn.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS lag "
        "FROM outbox"
    )
    OUTBOX_BACKLOG.labels(schema).set(row["n"])
    OUTBOX_LAG.labels(schema).set(float(row["lag"]))
