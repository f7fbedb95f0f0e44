"""Triage's Kafka consumers: reported incidents in, decisions out; notify's notification
events (acknowledgements move the incident on; all are kept for the console) and the
reporting partners' withdrawals in.

Each batch is one transaction: inbox, incidents, history and the outgoing events (outbox).
Reports are decided by the pure core (``domain.decide_batch``) against a snapshot loaded in
one query, and written with one statement per table. Events about an incident carry on the
trace of the report that started it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import groupby

import asyncpg
from faststream.kafka import KafkaRouter
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Histogram

from schemas.events import (
    Event,
    IncidentAcknowledged,
    IncidentReported,
    IncidentStatusChanged,
    IncidentWithdrawalRequested,
    NotificationAcknowledged,
    NotificationEvent,
)
from schemas.topics import INCIDENT_EVENTS, INCIDENT_URGENT, NOTIFICATION_EVENTS
from schemas.urgency import is_urgent
from services.common.consumer import (
    Incoming,
    Rejected,
    batch_consumer,
    event_parser,
    open_reports_in,
)
from services.common.observability import incident_id_var, record_traceparent, span_from
from services.common.offloop import off_loop
from services.common.outbox import OutgoingMessage, claim, enqueue, event_message
from services.common.period_keys import sealed_again
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.triage import store
from services.triage.decide import Triage, TriageDecision
from services.triage.domain import IncidentUpdate, decide_batch, lane_first, merge_into
from services.triage.notifications import KINDS
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


class Outgoing:
    """Events to publish from one transaction, each on the trace of its incident."""

    def __init__(self, settings: Settings, traceparent: str | None) -> None:
        self.settings = settings
        self.traceparent = traceparent
        self.events: list[Event] = []
        self.lane_report: IncidentReported | None = None
        self.lane_has_report = False

    def add(self, event: Event) -> None:
        self.events.append(event)

    def urgent(self, report: IncidentReported, *, on_lane_already: bool = False) -> None:
        """The outcome is about a P1/P2 incident: its events, and the report that opened it
        (notify needs both), also take the urgent lane. ``on_lane_already``: that report
        came by the urgent lane (intake put it there), ahead of these events in the same
        partition, so notify's urgent lane has it without a second copy."""
        self.lane_report = report
        self.lane_has_report = on_lane_already

    async def messages(self, conn: asyncpg.Connection) -> list[OutgoingMessage]:
        messages = [
            event_message(self.settings, e, traceparent=self.traceparent) for e in self.events
        ]
        if self.lane_report is not None:
            lane: list[Event] = list(self.events)
            if not self.lane_has_report:
                # The report goes on Kafka sealed again, with its own key.
                lane.insert(0, await sealed_again(conn, self.lane_report))
            messages += [
                event_message(self.settings, e, traceparent=self.traceparent, lane=True)
                for e in lane
            ]
        return messages

    async def flush(self, conn: asyncpg.Connection) -> None:
        await enqueue(conn, await self.messages(conn))


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
    """A staff member's merge: the shell around the one merge use case
    (:func:`services.triage.domain.merge_into`, which triage's own duplicate detection uses
    too). The duplicate is already marked merged by the caller, so the partners loaded for
    ``first`` include its own."""
    target = store.open_incident(first, await store.partners_of(conn, first["incident_id"]))
    now = datetime.now(UTC)
    done = merge_into(
        target,
        duplicate_id=duplicate_id,
        partner=None,
        reports=reports,
        reason=reason,
        actor=actor,
        redecide=triage.decide,
        now=now,
    )
    await store.update_incidents(
        conn,
        [IncidentUpdate(target.incident_id, target.report_count, target.raised, reports)],
        now,
    )
    await store.append_history_many(conn, done.history)
    for event in done.events:
        out.add(event)
    if done.lane_report is not None:
        out.urgent(done.lane_report)


async def on_reports(
    conn: asyncpg.Connection,
    settings: Settings,
    triage: Triage,
    batch: Sequence[tuple[Incoming[Event], IncidentReported, TriageDecision]],
) -> list[OutgoingMessage]:
    """A run of consecutive reports of a batch, set-based: one snapshot query, the pure core,
    then one statement per table; returns the outbox messages (the caller enqueues them)."""
    pairs = [(report, decision) for _, report, decision in batch]
    snapshot = await store.load_open_incidents(conn, pairs)
    now = datetime.now(UTC)
    outcome = decide_batch(
        [r for r, _ in pairs], [d for _, d in pairs], snapshot, now, redecide=triage.decide
    )
    await store.insert_incidents(conn, outcome.inserts, now)
    await store.update_incidents(conn, outcome.updates, now)
    await store.append_history_many(conn, outcome.history)
    records = {report.event_id: incoming.record for incoming, report, _ in batch}
    lane_topic = settings.topic(INCIDENT_URGENT.name)
    messages: list[OutgoingMessage] = []
    for decided in outcome.outcomes:
        report, decision = decided.report, decided.decision
        CONFIDENCE.observe(decision.confidence)
        if decided.merged_into is None:
            DECISIONS.labels(
                decision.category, decision.priority or "none", str(decision.needs_review).lower()
            ).inc()
        else:
            MERGES.inc()
        # A span per incident, on the trace of its report, so its events carry on that trace
        # (opened after the set-based writes: it covers building the report's messages).
        attributes = {"incident.id": str(report.incident_id)}
        if decided.merged_into is not None:
            attributes["incident.merged_into"] = str(decided.merged_into)
        token = incident_id_var.set(str(report.incident_id))
        try:
            with span_from(
                record_traceparent(records[report.event_id].headers),
                "triage IncidentReported",
                kind=SpanKind.CONSUMER,
                attributes=attributes,
            ) as traceparent:
                out = Outgoing(settings, traceparent)
                for event in decided.events:
                    out.add(event)
                if (lane_report := decided.lane_report) is not None:
                    out.urgent(
                        lane_report,
                        on_lane_already=lane_report.event_id == report.event_id
                        and records[report.event_id].topic == lane_topic,
                    )
                messages += await out.messages(conn)
        finally:
            incident_id_var.reset(token)
    return messages


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
    return not isinstance(event, IncidentReported) or lane_first(event)


async def _on_other(
    conn: asyncpg.Connection, settings: Settings, incoming: Incoming[Event]
) -> list[OutgoingMessage]:
    """An acknowledgement or a withdrawal: one at a time, in its own span."""
    event = incoming.item
    token = incident_id_var.set(str(event.incident_id))
    try:
        with span_from(
            record_traceparent(incoming.record.headers),
            f"triage {type(event).__name__}",
            kind=SpanKind.CONSUMER,
            attributes={"incident.id": str(event.incident_id)},
        ) as traceparent:
            out = Outgoing(settings, traceparent)
            if isinstance(event, NotificationAcknowledged):
                await on_acknowledged(conn, out, event)
            elif isinstance(event, IncidentWithdrawalRequested):
                await on_withdrawal_requested(conn, out, event)
            return await out.messages(conn)
    finally:
        incident_id_var.reset(token)


def build_consumers(rt: Runtime, triage: Triage) -> KafkaRouter:
    router = KafkaRouter()

    async def apply(sealed: Sequence[Incoming[Event]]) -> list[Rejected]:
        batch = await open_reports_in(rt.pool, sealed)
        # The whole batch classified in one model call, before the transaction opens; a large
        # batch off the event loop, so the urgent lane's consumer is not held up meanwhile, a
        # few reports (the urgent lane's) here: a thread's hand-offs cost a P1 more.
        reports = [i.item for i in batch if isinstance(i.item, IncidentReported)]
        decided = (
            await off_loop(len(reports), lambda: triage.decide_many(reports)) if reports else []
        )
        decisions = {r.event_id: d for r, d in zip(reports, decided, strict=True)}
        async with rt.pool.acquire() as conn, conn.transaction():
            fresh = await claim(conn, [i.item.event_id for i in batch])
            todo = [i for i in sorted(batch, key=_lane_first) if i.item.event_id in fresh]
            messages: list[OutgoingMessage] = []
            # Consecutive reports go through the pure core together; any other event keeps
            # its place between them (a withdrawal sees the reports before it, as before).
            for is_report, run in groupby(todo, key=lambda i: isinstance(i.item, IncidentReported)):
                items = list(run)
                if is_report:
                    triples = [
                        (i, i.item, decisions[i.item.event_id])
                        for i in items
                        if isinstance(i.item, IncidentReported)
                    ]
                    messages += await on_reports(conn, rt.settings, triage, triples)
                    continue
                # What notify did, for the console: logged together; only acknowledgements
                # and withdrawals act.
                notified = [i.item for i in items if isinstance(i.item, NotificationEvent)]
                await store.log_notifications(conn, notified)
                for incoming in items:
                    if isinstance(
                        incoming.item, NotificationAcknowledged | IncidentWithdrawalRequested
                    ):
                        messages += await _on_other(conn, rt.settings, incoming)
            await enqueue(conn, messages)  # the whole batch's outbox rows in one call
        return []

    if rt.settings.works_main:
        batch_consumer(
            router,
            rt,
            "triage",
            INCIDENT_EVENTS,
            parse=event_parser(IncidentReported, IncidentWithdrawalRequested),
            handle=apply,
        )
        batch_consumer(
            router,
            rt,
            "triage",
            NOTIFICATION_EVENTS,
            purpose="acknowledgements",
            parse=event_parser(*KINDS),
            handle=apply,
            # An acknowledgement reaches the incident up to half a second later; escalations
            # are minutes apart.
            background=True,
        )
    if rt.settings.works_urgent:
        # The urgent lane: its own consumer (in a process of its own where LANE=urgent), so
        # a P1 is decided while a backlog of P4s waits on incident-events. Its copies carry
        # the same event ids: the inbox takes the first.
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
    return router
