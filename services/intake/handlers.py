"""Intake's Kafka consumers.

- ``incident-submissions.<partner>``: each partner system produces JSON reports (the partner
  API's body) to its own topic; valid ones take the same path as HTTP reports, invalid ones go
  to the dead-letter topic with the reason, and consumption goes on.
- ``incident-events``: what happened to a report after intake, kept as the public history
  that a partner reads back through ``GET /v1/incidents/{id}`` and Open311.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaRouter
from pydantic import ValidationError

from schemas.events import (
    Event,
    IncidentAcknowledged,
    IncidentMerged,
    IncidentResolved,
    IncidentStatusChanged,
    IncidentTriaged,
)
from schemas.submission import IncidentSubmission
from schemas.taxonomy import taxonomy
from schemas.topics import INCIDENT_EVENTS, INCIDENT_SUBMISSIONS
from services.common.consumer import (
    Incoming,
    PoisonMessage,
    Rejected,
    batch_consumer,
    event_parser,
)
from services.common.kafka_access import partner_of
from services.common.outbox import claim
from services.common.problems import field_errors
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.intake.feedback import WITHDRAWN_NOTE
from services.intake.intake import SINGLES, accept
from services.intake.partners import partners_by_code


@dataclass(frozen=True, slots=True)
class Submission:
    partner: str
    report: IncidentSubmission


def submission_parser(settings: Settings) -> Callable[[ConsumerRecord[bytes, bytes]], Submission]:
    """Reports on the partners' topics. The partner is the topic's (only its principal may
    write there, docs/decisions/0011); the record key only spreads the partitions and is
    not read: a key naming another partner changes nothing."""

    def parse(record: ConsumerRecord[bytes, bytes]) -> Submission:
        try:
            body = json.loads(record.value or b"")
        except RecursionError as exc:
            raise PoisonMessage("body is nested too deeply to be a report", "invalid-json") from exc
        except ValueError as exc:  # not JSON, not UTF-8, an integer of thousands of digits
            raise PoisonMessage(f"body is not JSON: {exc}", kind="invalid-json") from exc
        try:
            report = IncidentSubmission.model_validate(body)
        except ValidationError as exc:
            reasons = "; ".join(f"{e.field}: {e.reason}" for e in field_errors(exc.errors()))
            raise PoisonMessage(reasons, kind="invalid-report") from exc
        return Submission(partner_of(settings, INCIDENT_SUBMISSIONS, record), report)

    return parse


def build_consumers(rt: Runtime) -> KafkaRouter:
    router = KafkaRouter()
    gate = rt.extras[SINGLES].gate  # bulk: an urgent single report goes first

    async def on_submissions(batch: Sequence[Incoming[Submission]]) -> list[Rejected]:
        rejected: list[Rejected] = []
        by_partner: dict[str, list[Incoming[Submission]]] = defaultdict(list)
        for incoming in batch:
            by_partner[incoming.item.partner].append(incoming)
        await gate.turn()
        async with rt.pool.acquire() as conn, conn.transaction():
            known = await partners_by_code(conn, list(by_partner))
            for code, items in by_partner.items():
                partner = known.get(code)
                if partner is None or "incidents:write" not in partner.scopes:
                    rejected += [
                        Rejected(i.record, f"unknown partner {code!r}", "unknown-partner")
                        for i in items
                    ]
                    continue
                outcomes = await accept(
                    conn, rt.settings, partner, [i.item.report for i in items], "kafka"
                )
                rejected += [
                    Rejected(
                        item.record,
                        f"external_id {outcome.external_id!r} was used before for another "
                        f"report (incident {outcome.incident_id})",
                        "conflict",
                    )
                    for item, outcome in zip(items, outcomes, strict=True)
                    if outcome.result == "conflict"
                ]
        return rejected

    batch_consumer(
        router,
        rt,
        "intake",
        INCIDENT_SUBMISSIONS,
        parse=submission_parser(rt.settings),
        handle=on_submissions,
    )

    async def on_events(batch: Sequence[Incoming[Event]]) -> list[Rejected]:
        await gate.turn()
        async with rt.pool.acquire() as conn, conn.transaction():
            fresh = await claim(conn, [i.item.event_id for i in batch])
            await _record_public(conn, [i.item for i in batch if i.item.event_id in fresh])
        return []

    batch_consumer(
        router,
        rt,
        "intake",
        INCIDENT_EVENTS,
        purpose="public-history",
        parse=event_parser(
            IncidentTriaged,
            IncidentMerged,
            IncidentStatusChanged,
            IncidentAcknowledged,
            IncidentResolved,
        ),
        handle=on_events,
        background=True,
    )
    return router


def _public(event: Event) -> tuple[str, str | None]:
    """The status and a note a reporting partner may read; no internal reasons or names."""
    match event:
        case IncidentTriaged():
            return ("needs_review" if event.needs_review else "triaged"), None
        case IncidentMerged():
            return "merged", "gekoppeld aan een eerdere melding van hetzelfde incident"
        case IncidentStatusChanged(new_status="cancelled"):
            # Only a withdrawal cancels; the partner's own reason is in its withdrawal.
            return "cancelled", WITHDRAWN_NOTE
        case IncidentStatusChanged():
            return event.new_status, None
        case IncidentAcknowledged():
            return "acknowledged", None
        case IncidentResolved():
            return "resolved", event.outcome.replace("_", " ")
    raise TypeError(type(event).__name__)


async def _record_public(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    """A batch of events into what the reporting partners may read: one statement per table.
    Only incidents reported through intake have a public record (a receipt)."""
    if not events:
        return
    public = [_public(event) for event in events]
    await conn.execute(
        "INSERT INTO public_history (incident_id, at, status, note, event_id) "
        "SELECT i, a, s, t, e FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], "
        "$4::text[], $5::uuid[]) WITH ORDINALITY AS u(i, a, s, t, e, n) "
        "WHERE EXISTS (SELECT 1 FROM receipts WHERE incident_id = u.i) "
        "ORDER BY n ON CONFLICT (event_id) DO NOTHING",
        [_subject(event) for event in events],
        [event.occurred_at for event in events],
        [status for status, _ in public],
        [note for _, note in public],
        [event.event_id for event in events],
    )
    # The last triage of an incident in the batch is its details (one row an incident).
    triaged = {e.incident_id: e for e in events if isinstance(e, IncidentTriaged)}
    if not triaged:
        return
    details = list(triaged.values())
    await conn.execute(
        "INSERT INTO public_details (incident_id, category, priority, agencies, updated_at) "
        "SELECT i, c, p, a, t FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], "
        "$5::timestamptz[]) AS u(i, c, p, a, t) "
        "WHERE EXISTS (SELECT 1 FROM receipts WHERE incident_id = u.i) "
        "ON CONFLICT (incident_id) DO UPDATE SET category = excluded.category, "
        "priority = excluded.priority, agencies = excluded.agencies, "
        "updated_at = excluded.updated_at",
        [e.incident_id for e in details],
        [e.category for e in details],
        [e.priority for e in details],
        [_agencies(e) for e in details],
        [e.occurred_at for e in details],
    )


def _subject(event: Event) -> UUID:
    """Whose public record an event is news for: a merge is news for the later (duplicate)
    report, which is closed into the first."""
    return event.duplicate_incident_id if isinstance(event, IncidentMerged) else event.incident_id


def _agencies(event: IncidentTriaged) -> str | None:
    return ", ".join(sorted({taxonomy().recipient(r.code).name for r in event.recipients})) or None
