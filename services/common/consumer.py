"""Batch consumption with a dead-letter topic: the one way every service reads Kafka.

A batch of records is parsed record by record: a record that cannot be parsed (malformed
JSON, unknown event type, invalid body) is a *poison* message and goes straight to the
topic's dead-letter topic with the reason in its headers. The parsed rest is handed to the
service's handler in one call, which applies it in one database transaction (inbox, effects,
outbox). If that fails, the batch is retried with backoff; if it keeps failing, each record
is tried alone so that one bad record cannot hold back the others, and a record that fails
``dlq_max_attempts`` times alone is dead-lettered too. Offsets are committed only after all
of that (FastStream ``NACK_ON_ERROR``: an unexpected crash re-reads the batch).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from schemas.envelope import EnvelopeError, decode, event_type
from schemas.events import Event
from schemas.topics import Topic
from services.common.settings import ServiceName, Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

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


def _header_text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", errors="replace")


async def dead_letter(
    broker: KafkaBroker,
    settings: Settings,
    service: ServiceName,
    topic: Topic,
    record: ConsumerRecord[bytes, bytes],
    *,
    reason: str,
    kind: str,
    attempts: int,
) -> None:
    """Publish ``record`` unchanged to ``<topic>.dlq``; the why travels in x-dlq-* headers."""
    headers = {k: _header_text(v) for k, v in record.headers or ()}
    headers.update(
        {
            "x-dlq-reason": reason[:2000],
            "x-dlq-kind": kind,
            "x-dlq-service": service,
            "x-dlq-source-topic": record.topic,
            "x-dlq-source-partition": str(record.partition),
            "x-dlq-source-offset": str(record.offset),
            "x-dlq-attempts": str(attempts),
        }
    )
    await broker.publish(
        record.value or b"",
        topic=settings.topic(topic.dlq),
        key=record.key,
        headers=headers,
    )
    DEAD_LETTERED.labels(service, topic.name, kind).inc()
    log.warning(
        "dead-lettered a message",
        extra={
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "reason": reason[:300],
        },
    )


def batch_consumer(
    router: KafkaRouter,
    broker: KafkaBroker,
    settings: Settings,
    service: ServiceName,
    topic: Topic,
    *,
    parse: Parser[T],
    handle: Handler[T],
    purpose: str = "main",
    max_records: int = 500,
    batch_timeout_ms: int = 20,
    retry_delay: float = 0.5,
) -> None:
    """Subscribe ``handle`` to ``topic`` in the service's consumer group, in batches."""
    attempts_allowed = settings.dlq_max_attempts

    async def dlq(record: ConsumerRecord[bytes, bytes], reason: str, kind: str, n: int) -> None:
        await dead_letter(
            broker, settings, service, topic, record, reason=reason, kind=kind, attempts=n
        )

    async def attempt(items: Sequence[Incoming[T]]) -> BaseException | None:
        for n in range(1, attempts_allowed + 1):
            try:
                rejected = await handle(items)
            except Exception as exc:
                if n == attempts_allowed:
                    return exc
                log.warning(
                    "handling failed, retrying",
                    extra={"attempt": n, "error": repr(exc), "records": len(items)},
                )
                await asyncio.sleep(retry_delay * 2 ** (n - 1))
            else:
                for refused in rejected:
                    await dlq(refused.record, refused.reason, refused.kind, n)
                return None
        return None

    @router.subscriber(
        settings.topic(topic.name),
        group_id=settings.group_id(service, purpose),
        batch=True,
        max_records=max_records,
        # FastStream waits this long for a batch to fill, on every hop: 200 ms by default,
        # which alone put ~0.6 s on a report's way through intake, triage and notify.
        batch_timeout_ms=batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{service}:{topic.name}",
    )
    async def consume(message: KafkaMessage) -> None:
        records: tuple[ConsumerRecord[bytes, bytes], ...] = (
            message.raw_message
            if isinstance(message.raw_message, tuple)
            else (message.raw_message,)
        )
        parsed: list[Incoming[T]] = []
        for record in records:
            try:
                item = parse(record)
            except PoisonMessage as poison:
                await dlq(record, poison.reason, poison.kind, 1)
                continue
            if item is not None:
                parsed.append(Incoming(record, item))
        if not parsed:
            return
        failure = await attempt(parsed)
        if failure is None:
            return
        if len(parsed) == 1:
            await dlq(parsed[0].record, _describe(failure), "processing", attempts_allowed)
            return
        # Isolate the culprit(s): the rest must not wait behind one bad record.
        for single in parsed:
            failure = await attempt([single])
            if failure is not None:
                await dlq(single.record, _describe(failure), "processing", attempts_allowed)


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()


def event_parser(*wanted: type[Event]) -> Parser[Event]:
    """A parser of CloudEvents records that skips, without decoding, the event types the
    consumer does not handle; a malformed event of a wanted type is poison."""
    types = {cls.ce_type for cls in wanted}

    def parse(record: ConsumerRecord[bytes, bytes]) -> Event | None:
        headers = record.headers or ()
        ce_type = event_type(headers)
        if ce_type is not None and ce_type not in types:
            return None
        try:
            return decode(headers, record.value or b"")
        except EnvelopeError as exc:
            raise PoisonMessage(str(exc), kind="invalid-event") from exc

    return parse
