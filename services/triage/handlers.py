"""Triage's Kafka consumers: reported incidents in, decisions out; acknowledgements and the
reporting partners' withdrawals in.

Each batch is one transaction: inbox, incidents, history and the outgoing events (outbox).
Events about an incident carry on the trace of the report that started it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from faststream.kafka import KafkaRouter
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

from schemas.events import (
    Event,
    IncidentAcknowledged,
    IncidentMerged,
    IncidentPriorityChanged,
    IncidentReported,
    IncidentStatusChanged,
    IncidentTriaged,
    IncidentWithdrawalRequested,
    NotificationAcknowledged,
)
from schemas.taxonomy import priority_rank
from schemas.topics import INCIDENT_EVENTS, INCIDENT_URGENT, NOTIFICATION_EVENTS
from schemas.urgency import is_urgent, may_be_urgent
from services.common.consumer import Incoming, Rejected, batch_consumer, event_parser
from services.common.observability import incident_id_var, record_traceparent, span_from
from services.common.outbox import claim, enqueue, event_message
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.triage import store
from services.triage.decide import Triage, TriageDecision
from services.triage.priority import decide_priority
from services.triage.workflow import IllegalAction, check_action

CONFIDENCE = Histogram(
    "veilig_triage_confidence",
    "Classification confidence of triage decisions",
    buckets=(0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)
DECISIONS = Counter(
    "veilig_triage_decisions_total",
    "Triage decisions by category, priority and whether they need review",
    ["category", "priority", "needs_review"],
)
MERGES = Counter("veilig_triage_merged_total", "Reports merged into an earlier incident")


def triaged_event(
    report: IncidentReported, decision: TriageDecision, report_count: int
) -> IncidentTriaged:
    now = datetime.now(UTC)
    return IncidentTriaged(
        event_id=uuid.uuid4(),
        incident_id=report.incident_id,
        occurred_at=now,
        recorded_at=now,
        producer="triage",
        category=decision.category,
        priority=decision.effective_priority,
        confidence=decision.confidence,
        reasons=decision.reasons,
        top_categories=decision.top3,
        needs_review=decision.needs_review,
        buurt_code=report.location.buurt_code,
        wijk_code=report.location.wijk_code,
        acknowledge_by=decision.acknowledge_by,
        handle_by=decision.handle_by,
        recipients=decision.recipients,
        report_count=report_count,
    )


class Outgoing:
    """Events to publish from one transaction, each on the trace of its incident."""

    def __init__(self, settings: Settings, traceparent: str | None) -> None:
        self.settings = settings
        self.traceparent = traceparent
        self.events: list[Event] = []
        self.lane_report: IncidentReported | None = None

    def add(self, event: Event) -> None:
        self.events.append(event)

    def urgent(self, report: IncidentReported) -> None:
        """The outcome is about a P1/P2 incident: its events, and the report that opened it
        (notify needs both), also take the urgent lane."""
        self.lane_report = report

    async def flush(self, conn: asyncpg.Connection) -> None:
        messages = [
            event_message(self.settings, e, traceparent=self.traceparent) for e in self.events
        ]
        if self.lane_report is not None:
            messages += [
                event_message(self.settings, e, traceparent=self.traceparent, lane=True)
                for e in (self.lane_report, *self.events)
            ]
        await enqueue(conn, messages)


async def on_reported(
    conn: asyncpg.Connection,
    triage: Triage,
    out: Outgoing,
    report: IncidentReported,
    decision: TriageDecision,
) -> None:
    CONFIDENCE.observe(decision.confidence)
    duplicate = None
    if not decision.needs_review:
        duplicate = await store.find_duplicate(conn, report, decision.category)
    if duplicate is None:
        await store.insert_incident(conn, report, decision, status="triaged")
        await store.append_history(
            conn, report.incident_id, "triaged", reasons=list(decision.reasons)
        )
        out.add(triaged_event(report, decision, 1))
        if is_urgent(decision.effective_priority):
            out.urgent(report)
        DECISIONS.labels(
            decision.category, decision.priority or "none", str(decision.needs_review).lower()
        ).inc()
        return

    first, metres = duplicate
    reason = (
        f"same category {decision.category} {metres:.0f} m and "
        f"{abs((report.occurred_at - first['occurred_at']).total_seconds()) / 60:.0f} min apart"
    )
    await store.insert_incident(
        conn, report, decision, status="merged", merged_into=first["incident_id"]
    )
    await merge_and_raise(
        conn, triage, out, first=first, duplicate_id=report.incident_id, reports=1, reason=reason
    )
    MERGES.inc()


async def merge_and_raise(
    conn: asyncpg.Connection,
    triage: Triage,
    out: Outgoing,
    *,
    first: asyncpg.Record,
    duplicate_id: uuid.UUID,
    reports: int,
    reason: str | None,
    actor: str | None = None,
) -> None:
    """The one merge use case, for triage's own duplicate detection and a staff member's
    merge alike: the duplicate (already marked merged by the caller) adds its ``reports`` to
    the first incident, both histories say so, IncidentMerged goes out, and more independent
    reports may raise the first incident's priority."""
    first_id = first["incident_id"]
    count = first["report_count"] + reports
    await store.update_incident(conn, first_id, report_count=count)
    await store.append_history(conn, duplicate_id, "merged", actor, into=str(first_id), why=reason)
    await store.append_history(
        conn, first_id, "report added", actor, duplicate=str(duplicate_id), report_count=count
    )
    now = datetime.now(UTC)
    out.add(
        IncidentMerged(
            event_id=uuid.uuid4(),
            incident_id=first_id,
            occurred_at=now,
            recorded_at=now,
            producer="triage",
            duplicate_incident_id=duplicate_id,
            report_count=count,
            actor=actor,
            reason=reason,
        )
    )
    if is_urgent(first["effective_priority"]):
        out.urgent(store.reported(first))
    await raise_for_reports(conn, triage, out, first, count)


async def raise_for_reports(
    conn: asyncpg.Connection, triage: Triage, out: Outgoing, first: asyncpg.Record, count: int
) -> None:
    """More independent reports may make the first incident more urgent (never less).
    Independent means from different partners: one partner resending a report under new
    external ids cannot raise an incident by itself."""
    first_report = store.reported(first)
    independent = await store.reporting_partners(conn, first["incident_id"])
    again = decide_priority(
        first["category"],
        first_report.flags,
        first["wijk_code"],
        independent,
        at=first_report.occurred_at,
    )
    old = first["effective_priority"]
    if priority_rank(again.effective) >= priority_rank(old):
        return
    decision = triage.decide(
        first_report,
        category=first["category"],
        priority=again.effective,
        report_count=independent,
        reviewed=not first["needs_review"],
    )
    now = datetime.now(UTC)
    await store.update_incident(conn, first["incident_id"], **store.decision_columns(decision))
    await store.append_history(
        conn,
        first["incident_id"],
        "priority raised",
        old=old,
        new=again.effective,
        why=f"{count} reports from {independent} partners",
    )
    out.add(
        IncidentPriorityChanged(
            event_id=uuid.uuid4(),
            incident_id=first["incident_id"],
            occurred_at=now,
            recorded_at=now,
            producer="triage",
            old_priority=old,
            new_priority=again.effective,
            acknowledge_by=decision.acknowledge_by,
            handle_by=decision.handle_by,
            reason=f"{count} reports from {independent} partners",
        )
    )
    out.add(triaged_event(first_report, decision, count))
    if is_urgent(again.effective):
        out.urgent(first_report)


async def on_acknowledged(
    conn: asyncpg.Connection, out: Outgoing, ack: NotificationAcknowledged
) -> None:
    """The first recipient to acknowledge moves the incident to acknowledged."""
    row = await store.get_incident(conn, ack.incident_id, lock=True)
    if row is None or row["status"] == "acknowledged":
        return
    try:
        new_status = check_action("acknowledge", row["status"])
    except IllegalAction:
        return  # e.g. already resolved: the acknowledgement changes nothing
    now = datetime.now(UTC)
    await store.update_incident(conn, ack.incident_id, status=new_status, acknowledged_at=now)
    await store.append_history(
        conn, ack.incident_id, "acknowledged", actor=ack.recipient, message=str(ack.message_id)
    )
    out.add(
        IncidentAcknowledged(
            event_id=uuid.uuid4(),
            incident_id=ack.incident_id,
            occurred_at=ack.occurred_at,
            recorded_at=now,
            producer="triage",
            recipient=ack.recipient,
            message_id=ack.message_id,
        )
    )


async def on_withdrawal_requested(
    conn: asyncpg.Connection, out: Outgoing, request: IncidentWithdrawalRequested
) -> None:
    """The reporting partner withdrew its report: cancelled through the workflow (notify then
    cancels every message), or refused with a history entry saying why."""
    incident_id = request.incident_id
    row = await store.get_incident(conn, incident_id, lock=True)
    if row is None:
        return  # its report never reached triage (dead-lettered): nothing to cancel
    actor = f"partner:{request.partner}"

    async def refuse(why: str) -> None:
        await store.append_history(
            conn, incident_id, "withdrawal refused", actor, why=why, reason=request.reason
        )

    if row["partner"] != request.partner:  # intake checks ownership; never trust one hop
        return await refuse("not the reporting partner")
    try:
        new_status = check_action("withdraw", row["status"])
    except IllegalAction as exc:
        return await refuse(str(exc))  # resolved or merged meanwhile
    # Another partner's report merged into this one must not vanish with the withdrawal.
    if await store.reporting_partners(conn, incident_id) > 1:
        return await refuse("other partners reported this incident too")
    await store.update_incident(conn, incident_id, status=new_status)
    await store.append_history(conn, incident_id, "withdrawn", actor, reason=request.reason)
    now = datetime.now(UTC)
    out.add(
        IncidentStatusChanged(
            event_id=uuid.uuid4(),
            incident_id=incident_id,
            occurred_at=now,
            recorded_at=now,
            producer="triage",
            old_status=row["status"],
            new_status=new_status,
            actor=actor,
            reason=request.reason,
        )
    )
    if is_urgent(row["effective_priority"]):
        out.urgent(store.reported(row))  # stop a P1's paging without waiting for a backlog


def _lane_first(incoming: Incoming[Event]) -> bool:
    """Sort key: within a batch, what may be urgent is decided first."""
    event = incoming.item
    return not (
        isinstance(event, IncidentReported) and may_be_urgent(event.flags, event.category_hint)
    )


def build_consumers(rt: Runtime, triage: Triage) -> KafkaRouter:
    router = KafkaRouter()

    async def apply(batch: Sequence[Incoming[Event]]) -> list[Rejected]:
        # The whole batch classified in one model call, before the transaction opens and off
        # the event loop, so the urgent lane's consumer is not held up meanwhile.
        reports = [i.item for i in batch if isinstance(i.item, IncidentReported)]
        decided = await asyncio.to_thread(triage.decide_many, reports) if reports else []
        decisions = {r.event_id: d for r, d in zip(reports, decided, strict=True)}
        async with rt.pool.acquire() as conn, conn.transaction():
            fresh = await claim(conn, [i.item.event_id for i in batch])
            for incoming in sorted(batch, key=_lane_first):
                event = incoming.item
                if event.event_id not in fresh:
                    continue
                token = incident_id_var.set(str(event.incident_id))
                try:
                    with span_from(
                        record_traceparent(incoming.record.headers),
                        f"triage {type(event).__name__}",
                        kind=SpanKind.CONSUMER,
                        attributes={"incident.id": str(event.incident_id)},
                    ) as traceparent:
                        out = Outgoing(rt.settings, traceparent)
                        if isinstance(event, IncidentReported):
                            await on_reported(conn, triage, out, event, decisions[event.event_id])
                        elif isinstance(event, NotificationAcknowledged):
                            await on_acknowledged(conn, out, event)
                        elif isinstance(event, IncidentWithdrawalRequested):
                            await on_withdrawal_requested(conn, out, event)
                        await out.flush(conn)
                finally:
                    incident_id_var.reset(token)
        return []

    batch_consumer(
        router,
        rt,
        "triage",
        INCIDENT_EVENTS,
        parse=event_parser(IncidentReported, IncidentWithdrawalRequested),
        handle=apply,
    )
    # The urgent lane: its own consumer, so a P1 is decided while a backlog of P4s waits
    # on incident-events. Its copies carry the same event ids: the inbox takes the first.
    batch_consumer(
        router,
        rt,
        "triage",
        INCIDENT_URGENT,
        purpose="urgent",
        parse=event_parser(IncidentReported, IncidentWithdrawalRequested),
        handle=apply,
        max_records=50,
    )
    batch_consumer(
        router,
        rt,
        "triage",
        NOTIFICATION_EVENTS,
        purpose="acknowledgements",
        parse=event_parser(NotificationAcknowledged),
        handle=apply,
    )
    return router
