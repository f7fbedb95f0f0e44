"""Accepting reports: the one path HTTP, Open311 and Kafka submissions all take.

In ONE transaction per call: a receipt per report (the idempotency record, unique per
partner and external id), its first public-history entry, and its ``incident reported``
event in the outbox. The relay publishes the event afterwards, so a 202 means the report is
in PostgreSQL: it survives a Kafka outage and a crash of intake right after the reply.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

import asyncpg
from prometheus_client import Counter

from schemas.events import Flags, IncidentReported
from schemas.geo import locate
from schemas.submission import IncidentSubmission
from schemas.urgency import may_be_urgent
from services.common.observability import current_traceparent
from services.common.outbox import OutgoingMessage, enqueue, event_message
from services.common.pii import seal
from services.common.settings import Settings
from services.intake.partners import Partner

Channel = Literal["http", "open311", "kafka"]
Result = Literal["accepted", "duplicate", "conflict"]

REJECTED = Counter(
    "veilig_intake_rejected_total",
    "Reports refused by partner and reason (invalid, forbidden, rate-limited, unknown partner)",
    ["partner", "reason"],
)
REPORTS = Counter(
    "veilig_intake_reports_total",
    "Reports received, by partner, channel and result",
    ["partner", "channel", "result"],
)


@dataclass(frozen=True, slots=True)
class Outcome:
    external_id: str
    result: Result
    incident_id: UUID


def body_hash(report: IncidentSubmission) -> str:
    """A stable fingerprint of a report's content: equal bodies, equal hashes."""
    canonical = json.dumps(
        report.model_dump(mode="json", exclude_defaults=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def reported_event(
    report: IncidentSubmission,
    *,
    incident_id: UUID,
    partner: Partner,
    channel: Channel,
    received_at: datetime,
) -> IncidentReported:
    where = report.location
    reporter = seal(report.reporter.model_dump_json(exclude_none=True)) if report.reporter else None
    return IncidentReported(
        event_id=uuid.uuid4(),
        incident_id=incident_id,
        occurred_at=report.occurred_at or received_at,
        recorded_at=received_at,
        producer="intake",
        partner=partner.code,
        partner_kind=partner.kind,
        channel=channel,
        external_id=report.external_id,
        description=report.description,
        category_hint=report.category_hint,
        location=locate(
            lat=where.lat, lon=where.lon, buurt_code=where.buurt_code, address=where.address
        ),
        flags=Flags(**report.flags.model_dump()),
        reporter_sealed=reporter,
        attributes=report.attributes,
    )


def lane_copies(
    settings: Settings, events: Sequence[IncidentReported], traceparent: str | None
) -> list[OutgoingMessage]:
    return [
        event_message(settings, e, traceparent=traceparent, lane=True)
        for e in events
        if may_be_urgent(e.flags, e.category_hint)
    ]


async def accept(
    conn: asyncpg.Connection,
    settings: Settings,
    partner: Partner,
    reports: Sequence[IncidentSubmission],
    channel: Channel,
) -> list[Outcome]:
    """Accept ``reports`` of one partner; one outcome per report, in order."""
    now = datetime.now(UTC)
    hashes = [body_hash(r) for r in reports]
    new_ids = [uuid.uuid4() for _ in reports]
    traceparent = current_traceparent()
    async with conn.transaction():
        inserted = {
            row["external_id"]: row["incident_id"]
            for row in await conn.fetch(
                "INSERT INTO receipts (incident_id, partner, external_id, body_hash, channel, "
                "received_at) "
                "SELECT i, $1, e, h, $5, $6 FROM unnest($2::uuid[], $3::text[], $4::text[]) "
                "AS t(i, e, h) "
                "ON CONFLICT (partner, external_id) DO NOTHING "
                "RETURNING incident_id, external_id",
                partner.code,
                new_ids,
                [r.external_id for r in reports],
                hashes,
                channel,
                now,
            )
        }
        repeated = [r.external_id for r in reports if r.external_id not in inserted]
        existing = {
            row["external_id"]: (row["incident_id"], row["body_hash"])
            for row in await conn.fetch(
                "SELECT external_id, incident_id, body_hash FROM receipts "
                "WHERE partner = $1 AND external_id = ANY($2::text[])",
                partner.code,
                repeated,
            )
        }
        outcomes: list[Outcome] = []
        fresh: list[IncidentReported] = []
        first_in_call: dict[str, str] = {}  # external id -> body hash of its first report
        for report, digest in zip(reports, hashes, strict=True):
            ext = report.external_id
            if ext in inserted and ext not in first_in_call:
                first_in_call[ext] = digest
                fresh.append(
                    reported_event(
                        report,
                        incident_id=inserted[ext],
                        partner=partner,
                        channel=channel,
                        received_at=now,
                    )
                )
                outcomes.append(Outcome(ext, "accepted", inserted[ext]))
                continue
            if ext in inserted:  # the same id twice in one batch
                incident_id, stored = inserted[ext], first_in_call[ext]
            else:
                incident_id, stored = existing[ext]
            outcomes.append(
                Outcome(ext, "duplicate" if stored == digest else "conflict", incident_id)
            )
        if fresh:
            await conn.executemany(
                "INSERT INTO public_history (incident_id, at, status, note) "
                "VALUES ($1, $2, 'received', NULL)",
                [(e.incident_id, now) for e in fresh],
            )
            await enqueue(
                conn,
                [event_message(settings, e, traceparent=traceparent) for e in fresh]
                # What may well be P1/P2 also takes the urgent lane to triage.
                + lane_copies(settings, fresh, traceparent),
            )
    for outcome in outcomes:
        REPORTS.labels(partner.code, channel, outcome.result).inc()
    return outcomes
