"""The ground truth the invariants are checked against, gathered while the scenarios run.

- :class:`EventLog`: a real Kafka consumer (no group, nothing committed) that reads
  incident-events, notification-events and every ``.dlq`` topic from the beginning, for as
  long as the platform runs; it rides out a broker that goes away and comes back.
- :class:`Receipts`: what the receivers accepted, from the JSON lines the stand-in
  (webhooks and e-mail) and the faulty receiver append to.
- :func:`analytics`: which events and incidents analytics holds, from its tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any, cast

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from schemas.envelope import EnvelopeError, decode
from schemas.events import (
    Event,
    IncidentMerged,
    IncidentReported,
    IncidentTriaged,
    NotificationEvent,
)
from schemas.topics import ALL_TOPICS, INCIDENT_EVENTS, NOTIFICATION_EVENTS
from services.analytics.kafka_monitor import topic_partitions
from services.analytics.projection import event_kind
from services.common.dlq import reason_of
from services.common.kafka_security import client_options
from services.common.settings import Settings
from services.common.topics import connect_admin
from tools.chaos.invariants import (
    DeadLetter,
    Delivery,
    IncidentFact,
    MessageKind,
    NotificationFact,
)

log = logging.getLogger("veilig.chaos")

_KIND = re.compile(r'"kind":\s*"(alert|update|cancel)"')
_MESSAGE_ID = re.compile(r"<([0-9a-f-]{36})@")


class EventLog:
    """Every event and dead letter of the platform's topics, as a consumer reads them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.incident_events: list[IncidentFact] = []
        self.notification_events: list[NotificationFact] = []
        self.dead_letters: list[DeadLetter] = []
        self.undecodable = 0
        self._positions: dict[TopicPartition, int] = {}  # next offset, kept over reconnects
        self.read_at = 0.0  # when the consumer last reached the end of what it was given
        self._main = {
            settings.topic(INCIDENT_EVENTS.name): "incident",
            settings.topic(NOTIFICATION_EVENTS.name): "notification",
        }
        self._dlq = {settings.topic(t.name) for t in ALL_TOPICS if t.name.endswith(".dlq")}

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self._consume(stopping)
            except (KafkaError, OSError, ConnectionError) as exc:  # the broker is away
                log.info("event log: %s; reading again shortly", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 2.0)

    async def _consume(self, stopping: asyncio.Event) -> None:
        admin = await connect_admin(self.settings)
        try:
            partitions = await topic_partitions(admin, [*self._main, *self._dlq])
        finally:
            await admin.close()
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            group_id=None,
            client_id="veilig-chaos-observer",
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            # Where this reader got to before a reconnect; the beginning otherwise.
            for tp in partitions:
                consumer.seek(tp, self._positions.get(tp, 0))
            while not stopping.is_set():
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for record in records:
                        self._add(tp.topic, record)
                        self._positions[tp] = record.offset + 1
                if not batch:
                    self.read_at = time.time()
        finally:
            await consumer.stop()

    def _add(self, topic: str, record: ConsumerRecord[bytes, bytes]) -> None:
        headers, key = list(record.headers), record.key
        if topic in self._dlq:
            self.dead_letters.append(
                DeadLetter(
                    topic=topic,
                    key=key.decode(errors="replace") if key else None,
                    reason=reason_of(headers),
                    timestamp=record.timestamp / 1000.0,
                )
            )
            return
        try:
            event = decode(headers, record.value or b"")
        except EnvelopeError:
            self.undecodable += 1
            return
        if isinstance(event, NotificationEvent):
            self.notification_events.append(notification_fact(event))
        else:
            self.incident_events.append(incident_fact(event))

    def dead_letters_between(self, start: float, end: float) -> list[DeadLetter]:
        return [d for d in self.dead_letters if start <= d.timestamp <= end]


def incident_fact(event: Event) -> IncidentFact:
    kind = event_kind(event).removeprefix("incident.")
    match event:
        case IncidentReported():
            return IncidentFact(
                str(event.event_id), str(event.incident_id), kind, external_id=event.external_id
            )
        case IncidentTriaged():
            return IncidentFact(
                str(event.event_id),
                str(event.incident_id),
                kind,
                report_count=event.report_count,
                recipients=tuple(r.code for r in event.recipients),
                needs_review=event.needs_review,
            )
        case IncidentMerged():
            return IncidentFact(
                str(event.event_id),
                str(event.incident_id),
                kind,
                report_count=event.report_count,
                duplicate_incident_id=str(event.duplicate_incident_id),
            )
    return IncidentFact(str(event.event_id), str(event.incident_id), kind)


def notification_fact(event: NotificationEvent) -> NotificationFact:
    return NotificationFact(
        str(event.event_id),
        str(event.incident_id),
        event_kind(event).removeprefix("notification."),
        str(event.message_id),
        event.recipient,
    )


class Receipts:
    """What the receivers accepted, read from the files they append to."""

    def __init__(self, webhooks: Collection[Path], mail: Path) -> None:
        self._files = {path: 0 for path in [*webhooks, mail]}
        self._mail = mail
        self._partial: dict[Path, bytes] = {}
        self.webhooks: list[dict[str, Any]] = []
        self.mails: list[dict[str, Any]] = []

    def refresh(self) -> None:
        for path, offset in self._files.items():
            if not path.exists():
                continue
            with path.open("rb") as f:
                f.seek(offset)
                data = self._partial.get(path, b"") + f.read()
            self._files[path] = offset + len(data) - len(self._partial.get(path, b""))
            *lines, self._partial[path] = data.split(b"\n")
            items = [json.loads(line) for line in lines if line.strip()]
            (self.mails if path == self._mail else self.webhooks).extend(items)

    def deliveries(self, incident_of_message: dict[str, str]) -> list[Delivery]:
        """As the invariants take them; an e-mail's incident comes from its message id."""
        found = [
            Delivery(
                message_id=str(item.get("webhook_id") or ""),
                incident_id=item.get("incident_id"),
                route=item.get("recipient", ""),
                kind=_kind(item.get("body", "")),
                received_at=float(item["received_at"]),
                verified=bool(item.get("verified")),
            )
            for item in self.webhooks
        ]
        for item in self.mails:
            matched = _MESSAGE_ID.search(item.get("message_id", ""))
            message = matched[1] if matched else ""
            subject = item.get("subject", "")
            found.append(
                Delivery(
                    message_id=message,
                    incident_id=incident_of_message.get(message),
                    route=",".join(item.get("to", [])),
                    kind="update"
                    if "Update:" in subject
                    else "cancel"
                    if "Ingetrokken:" in subject
                    else "alert",
                    received_at=float(item["received_at"]),
                    channel="email",
                )
            )
        return found


def _kind(body: str) -> MessageKind:
    """The purpose of a JSON notification (the stand-in keeps its body as text)."""
    found = _KIND.search(body)
    return cast("MessageKind", found[1]) if found else "alert"


async def analytics(
    dsn: str, incidents: Collection[str]
) -> tuple[dict[str, set[str]], set[str]] | None:
    """(incident -> event ids, incidents with facts) that analytics holds; None when the
    database does not answer (it may be the fault)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        ids = list(incidents)
        rows = await conn.fetch(
            "SELECT incident_id::text, event_id::text FROM analytics.events "
            "WHERE incident_id = ANY($1::uuid[])",
            ids,
        )
        facts = await conn.fetch(
            "SELECT incident_id::text FROM analytics.incident_facts "
            "WHERE incident_id = ANY($1::uuid[])",
            ids,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    events: dict[str, set[str]] = {}
    for incident, event in rows:
        events.setdefault(incident, set()).add(event)
    return events, {row[0] for row in facts}
