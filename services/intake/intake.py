"""Accepting reports: the one path HTTP, Open311 and Kafka submissions all take.

In ONE transaction per call: a receipt per report (the idempotency record, unique per
partner and external id), its first public-history entry, and its ``incident reported``
event in the outbox. The relay publishes the event afterwards, so a 202 means the report is
in PostgreSQL: it survives a Kafka outage and a crash of intake right after the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

import asyncpg
from prometheus_client import Counter, Histogram

from schemas.events import Channel, Flags, IncidentReported
from schemas.geo import locate
from schemas.submission import IncidentSubmission
from schemas.urgency import may_be_urgent
from services.common.groupcommit import GroupCommit
from services.common.observability import current_traceparent
from services.common.offloop import off_loop
from services.common.outbox import OutgoingMessage, enqueue, event_message
from services.common.period_keys import (
    KEYS,
    STORE_REPORT_KEYS,
    ReportKey,
    make_report_keys,
    period_of,
    seal_report,
)
from services.common.pii import seal
from services.common.settings import Settings
from services.intake.partners import Partner

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


def report_messages(
    settings: Settings, event: IncidentReported, key: ReportKey, traceparent: str | None
) -> list[OutgoingMessage]:
    """An accepted report's outbox messages: sealed with its own key, and what may well be
    P1/P2 also on the urgent lane to triage."""
    sealed = seal_report(event, key)
    lanes = (False, True) if may_be_urgent(event.flags, event.category_hint) else (False,)
    return [event_message(settings, sealed, traceparent=traceparent, lane=lane) for lane in lanes]


_RECEIVE = (
    "WITH added AS (INSERT INTO receipts (incident_id, partner, external_id, body_hash, channel, "  # noqa: S608
    "received_at) "
    "SELECT i, $1, e, h, $5, $6 FROM unnest($2::uuid[], $3::text[], $4::text[]) AS t(i, e, h) "
    "ON CONFLICT (partner, external_id) DO NOTHING "
    "RETURNING incident_id, external_id), "
    "history AS (INSERT INTO public_history (incident_id, at, status, note) "
    "SELECT incident_id, $6, 'received', NULL FROM added), "
    f"keys AS ({STORE_REPORT_KEYS.format(key_id='$7', ids='$2', wrapped='$8')} "
    "WHERE i IN (SELECT incident_id FROM added)) "
    "SELECT incident_id, external_id FROM added"
)
"""Stores the receipts of reports not seen before (by partner and external id), and for
each of those its first public status and its own key; returns them."""


async def accept(
    conn: asyncpg.Connection,
    settings: Settings,
    partner: Partner,
    reports: Sequence[IncidentSubmission],
    channel: Channel,
    traceparents: Sequence[str | None] | None = None,
) -> list[Outcome]:
    """Accept ``reports`` of one partner; one outcome per report, in order. Each report's
    events carry on its own trace (``traceparents``; default: the current one for all)."""
    now = datetime.now(UTC)
    hashes = await off_loop(len(reports), lambda: [body_hash(r) for r in reports])
    if traceparents is None:
        traceparents = [current_traceparent()] * len(reports)
    trace_of: dict[UUID, str | None] = {}
    # Inside the caller's transaction (a group commit's), or one of its own: a savepoint
    # would cost two round trips more and protect nothing.
    async with contextlib.nullcontext() if conn.is_in_transaction() else conn.transaction():
        # On Kafka the personal part travels sealed with a key of the report's own, kept
        # wrapped with the day's key (decision 0010). Made for every report beforehand, so
        # that the receipts, the first public status and the keys of the new reports are one
        # statement; the few of a repeated report are thrown away.
        day = await KEYS.current(conn, period_of(now))
        # The receipts go in in one order, the external ids', whatever the reports' order:
        # two transactions inserting the same keys in other orders deadlock (a partner
        # retrying a batch while the first try, or another replica, still holds it).
        order = sorted(range(len(reports)), key=lambda i: reports[i].external_id)
        ids = [uuid.uuid4() for _ in order]
        own, wrapped = await off_loop(len(reports), lambda: make_report_keys(day, ids))
        inserted = {
            row["external_id"]: row["incident_id"]
            for row in await conn.fetch(
                _RECEIVE,
                partner.code,
                ids,
                [reports[i].external_id for i in order],
                [hashes[i] for i in order],
                channel,
                now,
                day.key_id,
                wrapped,
            )
        }
        repeated = [r.external_id for r in reports if r.external_id not in inserted]
        existing = {
            row["external_id"]: (row["incident_id"], row["body_hash"])
            for row in (
                await conn.fetch(
                    "SELECT external_id, incident_id, body_hash FROM receipts "
                    "WHERE partner = $1 AND external_id = ANY($2::text[])",
                    partner.code,
                    repeated,
                )
                if repeated  # a round trip less for the usual call, where every report is new
                else ()
            )
        }
        outcomes: list[Outcome] = []
        fresh: list[tuple[IncidentSubmission, UUID]] = []  # the new reports, their incident
        first_in_call: dict[str, str] = {}  # external id -> body hash of its first report
        for report, digest, traceparent in zip(reports, hashes, traceparents, strict=True):
            ext = report.external_id
            if ext in inserted and ext not in first_in_call:
                first_in_call[ext] = digest
                trace_of[inserted[ext]] = traceparent
                fresh.append((report, inserted[ext]))
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

            def messages() -> list[OutgoingMessage]:
                return [
                    message
                    for report, incident_id in fresh
                    for message in report_messages(
                        settings,
                        reported_event(
                            report,
                            incident_id=incident_id,
                            partner=partner,
                            channel=channel,
                            received_at=now,
                        ),
                        own[incident_id],
                        trace_of[incident_id],
                    )
                ]

            await enqueue(conn, await off_loop(len(fresh), messages))
    for outcome in outcomes:
        REPORTS.labels(partner.code, channel, outcome.result).inc()
    return outcomes


SINGLES = "single-reports"  # the process's SingleReports in Runtime.extras
BULK_WAITED = Histogram(
    "veilig_intake_bulk_wait_seconds",
    "How long intake's bulk work (batches, Kafka submissions, public history) waited at a turn "
    "for an urgent single report to be accepted (0.5 s at most)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)


class UrgentFirst:
    """While a report that may be urgent is being accepted, intake's bulk work (batches, Kafka
    submissions, the public history) waits at its next turn, so the event loop and the pool
    serve the urgent report first and no new batch work enters the worker thread. In a burst
    of batches a P1 sent alone otherwise took every step of its request in turn with them
    (decision 0006, session 18).

    Bulk work takes its turns only while it holds no connection: a batch waiting never keeps
    one from the urgent report. A turn waits at most ``max_wait`` seconds, so a stream of
    urgent reports slows the bulk down but cannot stop it."""

    def __init__(self, max_wait: float = 0.5) -> None:
        self.max_wait = max_wait
        self._urgent = 0
        self._clear = asyncio.Event()
        self._clear.set()

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        self._urgent += 1
        self._clear.clear()
        try:
            yield
        finally:
            self._urgent -= 1
            if not self._urgent:
                self._clear.set()

    async def turn(self) -> None:
        """Bulk work's checkpoint: at once unless an urgent report is being accepted."""
        if self._clear.is_set():
            return
        began = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait):
                await self._clear.wait()
        BULK_WAITED.observe(time.monotonic() - began)


@dataclass(frozen=True, slots=True)
class Single:
    """One report of a single-report request, waiting for the group commit."""

    partner: Partner
    report: IncidentSubmission
    channel: Channel
    traceparent: str | None


@dataclass(frozen=True, slots=True)
class SingleReports:
    """Single-report requests (HTTP, Open311): a group commit, and urgent ones first."""

    commit: GroupCommit[Single, Outcome]
    gate: UrgentFirst

    async def submit(self, single: Single) -> Outcome:
        if not may_be_urgent(single.report.flags, single.report.category_hint):
            return await self.commit.submit(single)
        with self.gate.urgent():
            return await self.commit.submit(single)


def single_reports(pool: asyncpg.Pool, settings: Settings) -> SingleReports:
    """Concurrent single reports (HTTP, Open311) share one transaction: per partner and channel
    one :func:`accept` inside it."""

    async def apply(conn: asyncpg.Connection, group: Sequence[Single]) -> list[Outcome]:
        by_key: dict[tuple[str, Channel], list[int]] = defaultdict(list)
        for index, single in enumerate(group):
            by_key[(single.partner.code, single.channel)].append(index)
        outcomes: dict[int, Outcome] = {}
        for (_, channel), indexes in by_key.items():
            done = await accept(
                conn,
                settings,
                group[indexes[0]].partner,
                [group[i].report for i in indexes],
                channel,
                [group[i].traceparent for i in indexes],
            )
            outcomes.update(zip(indexes, done, strict=True))
        return [outcomes[i] for i in range(len(group))]

    return SingleReports(GroupCommit(pool, apply, service="intake", what="reports"), UrgentFirst())
