"""Batch consumption with a dead-letter topic: the one way every service reads Kafka.

A batch of records is parsed record by record: a record that cannot be parsed (malformed
JSON, unknown event type, invalid body) is a *poison* message and goes straight to the
topic's dead-letter topic, sealed, with the why in its headers (services/common/dlq.py). The
parsed rest is handed to the service's handler in one call, which applies it in one database
transaction (inbox, effects, outbox). If that fails, the batch is retried with backoff; if it
keeps failing, each record is tried alone so that one bad record cannot hold back the others,
and a record that fails ``dlq_max_attempts`` times alone is dead-lettered too. Offsets are
committed only after all of that, and a moment later, many batches in one commit
(services/common/commits.py); an unexpected error rewinds to the batch's first records, so the
batch is read again.

A failure because PostgreSQL or Kafka is away (:func:`services.common.faults.is_transient`)
is no attempt: the batch is held, its offsets uncommitted, and tried again with capped
backoff for as long as it takes. Nothing goes to a dead-letter topic because the
infrastructure blinked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from types import MethodType
from typing import Any, Generic, TypeVar, cast

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.message import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage
from prometheus_client import Counter, Gauge

from schemas.envelope import EnvelopeError, decode_wanted
from schemas.events import REGISTRY, Event
from schemas.topics import Topic
from services.common.commits import OffsetCommits
from services.common.dlq import seal_dead_letter
from services.common.faults import Backoff, describe, is_transient
from services.common.kafka_access import partner_topic_pattern
from services.common.period_keys import KEYS, open_reports, period_of
from services.common.runtime import Runtime, pause
from services.common.settings import ServiceName
from services.common.supervision import fresh_connections

log = logging.getLogger(__name__)

T = TypeVar("T")

WAITING = Gauge(
    "veilig_consumer_waiting_for_infrastructure",
    "1 while a consumer holds its batch because PostgreSQL or Kafka is unavailable",
    ["service", "topic"],
)
INFRA_RETRIES = Counter(
    "veilig_consumer_infrastructure_retries_total",
    "Tries of a batch again after PostgreSQL or Kafka was unavailable (not counted as attempts)",
    ["service", "topic"],
)
DEAD_LETTERED = Counter(
    "veilig_dead_lettered_total",
    "Messages moved to a dead-letter topic",
    ["service", "topic", "reason"],
)


class PoisonMessage(Exception):
    """A record that can never be processed as it is; ``reason`` says why."""

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Incoming(Generic[T]):
    record: ConsumerRecord[bytes, bytes]
    item: T


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the handler refused on its merits (for the dead-letter topic)."""

    record: ConsumerRecord[bytes, bytes]
    reason: str
    kind: str = "rejected"


# A parser returns None for a record that is not for this consumer (skipped, not an error).
Parser = Callable[["ConsumerRecord[bytes, bytes]"], T | None]
# A handler applies a batch in one transaction and returns what it refused.
Handler = Callable[[Sequence[Incoming[T]]], Awaitable[Sequence[Rejected]]]


async def dead_letter(
    rt: Runtime,
    service: ServiceName,
    topic: Topic,
    record: ConsumerRecord[bytes, bytes],
    *,
    reason: str,
    kind: str,
    attempts: int,
) -> None:
    """Publish ``record`` sealed with the day's period key to ``<topic>.dlq``; the why travels
    in x-dlq-* headers (the reason sealed too: it may quote the record). Neither goes to the
    log."""
    broker, settings = rt.broker, rt.settings
    async with rt.pool.acquire() as conn:
        key = await KEYS.current(conn, period_of(datetime.now(UTC)))
    value, headers = seal_dead_letter(
        record.value or b"",
        record.headers or (),
        key=key,
        reason=reason,
        kind=kind,
        service=service,
        source=(record.topic, record.partition, record.offset),
        attempts=attempts,
    )
    await broker.publish(value, topic=settings.topic(topic.dlq), key=record.key, headers=headers)
    DEAD_LETTERED.labels(service, topic.name, kind).inc()
    log.warning(
        "dead-lettered a message",
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "kind": kind,
        },
    )


async def _itself(message: StreamMessage[Any]) -> Any:
    """The "decoded body" a handler is given: the message itself, records undecoded.

    FastStream would json-decode every body before the handler runs, and a record of 100,000
    nested "[" (or a body that is not JSON under a JSON content-type) raised there, outside
    any handler: the batch was re-read forever. Records are decoded by decode_record()
    instead, where nothing escapes. And the message comes as the handler's one argument, not
    as FastStream's ``KafkaMessage`` context: FastDepends solved that context in a worker
    thread, a thread hop (and a task group) for every batch."""
    return message


def decode_record(
    parse: Parser[T], record: ConsumerRecord[bytes, bytes]
) -> T | PoisonMessage | None:
    """``parse`` that never raises: what it cannot decode comes back as the poison to
    dead-letter. Whatever a decoder raises (deep nesting, huge numbers, bad headers, unknown
    versions) is about this record alone and must never stall the partition for the rest."""
    try:
        return parse(record)
    except PoisonMessage as poison:
        return poison
    except Exception as exc:
        return PoisonMessage(f"could not decode: {describe(exc)}", kind="undecodable")


POLL_TIMEOUT_MS = 500
BACKGROUND_FETCH_MIN_BYTES = 512 * 1024
"""What the broker gathers for a background reader before it answers sooner than
``kafka_background_fetch_wait_ms``: some hundreds of events, in a burst."""


async def _poll(self: BatchSubscriber, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
    """``BatchSubscriber.get_msg`` without its sleep. FastStream (0.7.8) sleeps
    ``batch_timeout_ms`` after every empty poll: a record arriving then waited out the sleep,
    on every hop, and an idle consumer woke twice per period. aiokafka's ``getmany`` already
    ends its wait as soon as a record is fetched, so a long poll and no sleep is both prompt
    and quiet (decision 0006, "Waiting for nothing")."""
    batches = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
    return tuple(chain.from_iterable(batches.values()))


def _polling_without_sleep(subscriber: Any) -> None:
    assert isinstance(subscriber, BatchSubscriber)
    subscriber.get_msg = MethodType(_poll, subscriber)  # type: ignore[method-assign]


def _committing_before_stop(subscriber: Any, commits: OffsetCommits, grace: float) -> None:
    """The subscriber's ``stop`` commits what is pending (for at most ``grace`` seconds: Kafka
    may be away) before its consumer closes."""
    assert isinstance(subscriber, BatchSubscriber)
    stop = subscriber.stop

    async def committed_then_stop(self: BatchSubscriber) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await commits.close()
        await stop()

    subscriber.stop = MethodType(committed_then_stop, subscriber)  # type: ignore[method-assign]


def batch_consumer(
    router: KafkaRouter,
    rt: Runtime,
    service: ServiceName,
    topic: Topic,
    *,
    parse: Parser[T],
    handle: Handler[T],
    purpose: str = "main",
    max_records: int = 500,
    retry_delay: float = 0.5,
    background: bool = False,
) -> None:
    """Subscribe ``handle`` to ``topic`` in the service's consumer group, in batches.

    A ``background`` reader is on no report's way to its recipients (dashboards, the public
    history, pattern detection, acknowledgements): the broker gathers its records for up to
    ``kafka_background_fetch_wait_ms`` (or until :data:`BACKGROUND_FETCH_MIN_BYTES`), so it
    handles that long's worth in one batch, one transaction, instead of a small batch for
    every few records that arrive (decision 0006, "Session 19")."""
    settings = rt.settings
    attempts_allowed = settings.dlq_max_attempts
    waiting = WAITING.labels(service, topic.name)

    async def wait_out(exc: BaseException, backoff: Backoff, what: str) -> None:
        """PostgreSQL or Kafka is away: hold the batch (its offsets stay uncommitted) and try
        again for as long as it takes. On shutdown, give up without committing."""
        if rt.stopping.is_set():
            raise exc
        await fresh_connections(rt)
        delay = backoff.next()
        waiting.set(1)
        INFRA_RETRIES.labels(service, topic.name).inc()
        log.warning(
            "infrastructure unavailable: consumption paused, offsets kept",
            extra={
                "topic": topic.name,
                "while": what,
                "error": describe(exc),
                "retry_in_seconds": delay,
            },
        )
        await pause(rt.stopping, None, delay)

    async def dlq(record: ConsumerRecord[bytes, bytes], reason: str, kind: str, n: int) -> None:
        backoff = Backoff(cap=settings.infra_retry_max_seconds)
        while True:
            try:
                await dead_letter(rt, service, topic, record, reason=reason, kind=kind, attempts=n)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                await wait_out(exc, backoff, "dead-lettering")

    async def attempt(items: Sequence[Incoming[T]]) -> tuple[BaseException | None, bool]:
        """Handle ``items``: the deterministic failure after the allowed attempts (or None),
        and whether records the handler refused went to the dead-letter topic. Transient
        failures are waited out and do not count as attempts."""
        failures = 0
        backoff = Backoff(cap=settings.infra_retry_max_seconds)
        while True:
            try:
                rejected = await handle(items)
            except Exception as exc:
                if is_transient(exc):
                    await wait_out(exc, backoff, "handling")
                    continue
                failures += 1
                if failures >= attempts_allowed:
                    return exc, False
                log.warning(
                    "handling failed, retrying",
                    extra={"attempt": failures, "error": describe(exc), "records": len(items)},
                )
                await asyncio.sleep(retry_delay * 2 ** (failures - 1))
            else:
                waiting.set(0)
                for refused in rejected:
                    await dlq(refused.record, refused.reason, refused.kind, failures + 1)
                return None, bool(rejected)

    # A per-partner family is read by pattern: a partner given Kafka access later is read
    # from the next metadata refresh (KAFKA_METADATA_MAX_AGE_SECONDS) on.
    per_partner = partner_topic_pattern(settings, topic) if topic.per_partner else None
    # A background reader's fetches wait at the broker for a batch's worth; with a zero wait it
    # reads as promptly as the others (a minimum with no wait would spin on empty fetches).
    gathering: dict[str, int] = {}
    if background and settings.kafka_background_fetch_wait_ms:
        gathering = {
            "fetch_min_bytes": BACKGROUND_FETCH_MIN_BYTES,
            "fetch_max_wait_ms": settings.kafka_background_fetch_wait_ms,
        }

    subscriber = router.subscriber(
        *(() if per_partner else (settings.topic(topic.name),)),
        pattern=per_partner,
        group_id=settings.group_id(service, purpose),
        batch=True,
        max_records=max_records,
        # How long one poll waits when nothing is there (a record ends the wait at once).
        batch_timeout_ms=POLL_TIMEOUT_MS,
        auto_offset_reset="earliest",
        # Offsets are committed by OffsetCommits after the batch, the batch rewound on error.
        ack_policy=AckPolicy.MANUAL,
        decoder=_itself,
        title=f"{service}:{topic.name}",
        **gathering,
    )
    _polling_without_sleep(subscriber)
    commits = OffsetCommits(settings.kafka_commit_interval_ms / 1000)
    _committing_before_stop(subscriber, commits, settings.shutdown_grace_seconds)

    async def handle_batch(records: Sequence[ConsumerRecord[bytes, bytes]]) -> bool:
        """Handle ``records`` to the end; whether any of them went to the dead-letter topic."""
        parsed: list[Incoming[T]] = []
        dead_lettered = False
        for record in records:
            item = decode_record(parse, record)
            if isinstance(item, PoisonMessage):
                await dlq(record, item.reason, item.kind, 1)
                dead_lettered = True
            elif item is not None:
                parsed.append(Incoming(record, item))
        if not parsed:
            return dead_lettered
        failure, refused = await attempt(parsed)
        if failure is None:
            return dead_lettered or refused
        if len(parsed) == 1:
            await dlq(parsed[0].record, describe(failure), "processing", attempts_allowed)
            return True
        # Isolate the culprit(s): the rest must not wait behind one bad record.
        for single in parsed:
            failure, refused = await attempt([single])
            if failure is not None:
                await dlq(single.record, describe(failure), "processing", attempts_allowed)
            dead_lettered = dead_lettered or refused or failure is not None
        return dead_lettered

    @subscriber
    async def consume(body: Any) -> None:
        message = cast("KafkaMessage", body)  # the message itself (_itself)
        records: tuple[ConsumerRecord[bytes, bytes], ...] = (
            message.raw_message
            if isinstance(message.raw_message, tuple)
            else (message.raw_message,)
        )
        try:
            dead_lettered = await handle_batch(records)
        except BaseException:
            # FastStream's rewind: every partition of the batch back to its first record.
            await message.nack()
            raise
        consumer = cast("AIOKafkaConsumer", message.consumer)
        await commits.handled(consumer, records, now=dead_lettered or rt.stopping.is_set())


async def open_reports_in(
    conn: asyncpg.Connection | asyncpg.Pool, batch: Sequence[Incoming[Event]]
) -> list[Incoming[Event]]:
    """The batch with every sealed report opened (services/common/period_keys.py): a consumer
    that reads a report's personal part calls this first."""
    items = await open_reports(conn, [i.item for i in batch])
    return [Incoming(i.record, item) for i, item in zip(batch, items, strict=True)]


def event_parser(*wanted: type[Event]) -> Parser[Event]:
    """A parser of CloudEvents records that skips, without decoding, the event types the
    consumer does not handle (a later version of a wanted type, a subclass, is wanted too); a
    malformed event of a wanted type is poison."""
    types = {cls.ce_type for cls in REGISTRY.values() if issubclass(cls, wanted)}

    def parse(record: ConsumerRecord[bytes, bytes]) -> Event | None:
        try:
            return decode_wanted(record.headers or (), record.value or b"", types)
        except EnvelopeError as exc:
            raise PoisonMessage(str(exc), kind="invalid-event") from exc

    return parse
