"""Notify's consumer of ``incident-events``: who must be told what, as delivery rows.

One transaction per batch: the inbox claim, the incident state, the audience, the new
deliveries and the acknowledgement timers. Nothing is sent here; the delivery worker picks the
rows up (woken by NOTIFY), so a slow endpoint never holds back consumption.

- IncidentReported: kept (reporter sealed) to render messages from.
- IncidentTriaged: the current decision. New recipients get an alert, staying ones an update
  when something they see changed, recipients the decision dropped are told it is no longer
  for them. No recipients (the triage queue): nothing is sent.
- IncidentPriorityChanged: an update to everyone told; the timers follow the new deadline.
- IncidentMerged: an update to the first incident's recipients (one more report); the
  duplicate, if anyone was told about it, is cancelled. No second set of alerts.
- IncidentResolved, IncidentStatusChanged to cancelled: cancel to everyone told; timers stop.
- IncidentAcknowledged: the incident's paging stops, for every recipient (the recipient's own
  usually known already: notify took the acknowledgement itself).
- IncidentZorgsignaalRaised: the care partner is told of the prevention signal (``signals``).
- IncidentDeadlineMissed: one page to the escalation target of each recipient that was to act
  on it (``escalation``).
- IncidentPersonalDataErased: the stored report and rendered messages lose their personal
  data (``privacy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from itertools import groupby
from typing import cast
from uuid import UUID

import asyncpg
from faststream.kafka import KafkaRouter
from opentelemetry.trace import SpanKind

from schemas.events import (
    Event,
    IncidentAcknowledged,
    IncidentDeadlineMissed,
    IncidentMerged,
    IncidentPersonalDataErased,
    IncidentPriorityChanged,
    IncidentReported,
    IncidentResolved,
    IncidentStatusChanged,
    IncidentTriaged,
    IncidentZorgsignaalRaised,
)
from schemas.taxonomy import taxonomy
from schemas.topics import INCIDENT_EVENTS, INCIDENT_URGENT
from services.common.consumer import (
    Incoming,
    Rejected,
    batch_consumer,
    event_parser,
    open_reports_in,
)
from services.common.observability import record_traceparent, span_from
from services.common.outbox import claim
from services.common.runtime import Runtime
from services.notify import privacy, signals, store
from services.notify.escalation import page_missed_deadline
from services.notify.store import Incident, Member, Message, Notify

Triaged = Incoming[IncidentTriaged]

DROPPED = "Deze melding is niet langer voor u: de beoordeling is gewijzigd."
OUTCOMES = {
    "handled": "afgehandeld",
    "no_action_needed": "geen actie nodig",
    "referred": "doorverwezen",
    "unfounded": "ongegrond",
}


class MissingReport(RuntimeError):
    """A decision about an incident notify never saw reported: nothing to render from.
    Raised so the batch machinery retries and then dead-letters the event with this reason."""


def changes(old: IncidentTriaged, new: IncidentTriaged) -> list[str]:
    """What a recipient who stays would see differently, in words (the update's reason)."""
    said: list[str] = []
    if old.category != new.category:
        labels = (taxonomy().category(c).label_nl for c in (old.category, new.category))
        said.append("categorie {} → {}".format(*labels))
    if old.priority != new.priority:
        said.append(f"prioriteit {old.priority} → {new.priority}")
    if old.report_count != new.report_count:
        said.append(f"{new.report_count} meldingen")
    if (old.acknowledge_by, old.handle_by) != (new.acknowledge_by, new.handle_by):
        said.append("nieuwe termijnen")
    return said


async def on_triaged(conn: asyncpg.Connection, notify: Notify, run: Sequence[Triaged]) -> None:
    """Decisions about distinct incidents: the incidents, their decisions and audiences read
    and written a statement each, the messages of all the decisions queued in one."""
    events = [incoming.item for incoming in run]
    known = await store.load_incidents(conn, [event.incident_id for event in events])
    for event in events:
        if known[event.incident_id].reported is None:
            raise MissingReport(f"incident {event.incident_id} was triaged but never reported")
    saved = await store.save_decisions(conn, [(known[e.incident_id], e) for e in events])
    told = await store.audiences(conn, [i.incident_id for i in saved if not i.closed])
    queued: list[store.Draft] = []
    for incoming, incident in zip(run, saved, strict=True):
        if incident.closed:
            continue
        with traced(incoming):
            old = known[incident.incident_id].triaged
            everyone = told.get(incident.incident_id, {})
            queued += await decide(conn, notify, incident, old, everyone, incoming.item)
            if taxonomy().priority(incoming.item.priority).escalate_unacknowledged:
                # The timers are set for the audience as the decision leaves it.
                await store.queue(conn, queued)
                queued = []
            await store.watch(conn, notify, incident, first_decision=old is None)
    await store.queue(conn, queued)


async def decide(
    conn: asyncpg.Connection,
    notify: Notify,
    incident: Incident,
    old: IncidentTriaged | None,
    everyone: dict[str, Member],
    event: IncidentTriaged,
) -> list[store.Draft]:
    """The messages a decision makes to its recipients, rendered (for the caller to queue);
    those it dropped, and those paged by escalation, are told at once."""
    members = {code: m for code, m in everyone.items() if m.active}
    changed = changes(old, event) if old else []
    # None: nothing a staying recipient sees has changed, so it gets no update.
    reason = "Gewijzigd: " + ", ".join(changed) if changed else None
    decision = {r.code: r.profile for r in event.recipients}
    deadline = incident.acknowledge_deadline(notify)
    drafts: list[store.Draft] = []
    for code, profile in decision.items():
        member = members.get(code)
        if member is None:
            kind, why = "alert", None
        elif reason is not None or member.profile != profile:
            kind, why = "update", reason
        else:
            continue
        message = Message(
            store.message_id(event.event_id, incident.incident_id, code), code, profile, kind, why
        )
        drafts.append(
            await store.draft(
                conn,
                notify,
                incident,
                message,
                source="decision",
                acknowledge_by=deadline,
                members=everyone,
            )
        )
    dropped = {c: m for c, m in members.items() if c not in decision and m.source == "decision"}
    if dropped:
        await store.tell(conn, notify, incident, "cancel", DROPPED, event.event_id, dropped)
        await store.stop_escalations(conn, notify, incident.incident_id, list(dropped), "dropped")
    # Those paged by escalation stay involved until the incident closes.
    paged = {c: m for c, m in members.items() if c not in decision and m.source == "escalation"}
    if reason is not None:
        await store.tell(conn, notify, incident, "update", reason, event.event_id, paged)
    return drafts


async def on_priority_changed(
    conn: asyncpg.Connection, notify: Notify, event: IncidentPriorityChanged
) -> None:
    incident = await store.load_incident(conn, event.incident_id)
    if incident.triaged is None:
        return
    triaged = incident.triaged.model_copy(
        update={
            "priority": event.new_priority,
            "acknowledge_by": event.acknowledge_by,
            "handle_by": event.handle_by,
        }
    )
    incident = await store.save_triaged(conn, incident, triaged)
    if not incident.ready:
        return
    reason = event.reason or f"Prioriteit {event.old_priority} → {event.new_priority}"
    await store.tell(conn, notify, incident, "update", reason, event.event_id)
    await store.watch(conn, notify, incident)


async def on_merged(conn: asyncpg.Connection, notify: Notify, event: IncidentMerged) -> None:
    first = await store.load_incident(conn, event.incident_id)
    if first.triaged is not None:
        triaged = first.triaged.model_copy(update={"report_count": event.report_count})
        first = await store.save_triaged(conn, first, triaged)
        if first.ready:
            reason = f"Nog een melding van hetzelfde incident ({event.report_count} meldingen)"
            await store.tell(conn, notify, first, "update", reason, event.event_id)
    # The duplicate may not be known here yet (another partition): closing it now also keeps
    # a late decision about it from alerting anyone.
    duplicate = await store.load_incident(conn, event.duplicate_incident_id)
    await close(
        conn,
        notify,
        duplicate,
        f"Samengevoegd met een eerdere melding van hetzelfde incident ({event.incident_id})",
        event.event_id,
    )


async def close(
    conn: asyncpg.Connection, notify: Notify, incident: Incident, reason: str, cause: UUID
) -> None:
    """Resolved, cancelled or merged away: cancel to everyone told, no more paging."""
    if incident.closed:
        return
    if incident.ready:
        await store.tell(conn, notify, incident, "cancel", reason, cause)
    await store.set_closed(conn, incident.incident_id, True)
    await store.stop_escalations(conn, notify, incident.incident_id, None, "closed")


async def apply(conn: asyncpg.Connection, notify: Notify, event: Event) -> None:
    """Any event but a report or a decision (:func:`take` takes runs of those)."""
    match event:
        case IncidentPriorityChanged():
            await on_priority_changed(conn, notify, event)
        case IncidentMerged():
            await on_merged(conn, notify, event)
        case IncidentResolved():
            incident = await store.load_incident(conn, event.incident_id)
            reason = f"Afgehandeld: {OUTCOMES[event.outcome]}"
            await close(conn, notify, incident, reason, event.event_id)
        case IncidentStatusChanged(new_status="cancelled"):
            incident = await store.load_incident(conn, event.incident_id)
            reason = "Ingetrokken" + (f": {event.reason}" if event.reason else "")
            await close(conn, notify, incident, reason, event.event_id)
        case IncidentStatusChanged(new_status="reopened"):
            # Reopened after it was closed: a new decision may alert again.
            await store.load_incident(conn, event.incident_id)
            await store.set_closed(conn, event.incident_id, False)
        case IncidentZorgsignaalRaised():
            await signals.on_zorgsignaal(conn, notify, event)
        case IncidentDeadlineMissed():
            await page_missed_deadline(conn, notify, event)
        case IncidentPersonalDataErased():
            await privacy.erase(conn, event.incident_id)
        case IncidentAcknowledged():
            await store.load_incident(conn, event.incident_id)
            root = None
            if event.message_id is not None:
                root = await conn.fetchval(
                    "SELECT escalation_root FROM deliveries WHERE message_id = $1",
                    event.message_id,
                )
            await store.mark_acknowledged(
                conn, notify, event.incident_id, event.recipient, root, event.acknowledged_by
            )
            # The incident is acknowledged: its paging stops for every recipient at once.
            await store.stop_escalations(conn, notify, event.incident_id, None, "acknowledged")


async def take(conn: asyncpg.Connection, notify: Notify, batch: Sequence[Incoming[Event]]) -> None:
    """A batch of incident events, in the caller's transaction: those not taken before."""
    fresh = await claim(conn, [i.item.event_id for i in batch])
    todo = await open_reports_in(conn, [i for i in batch if i.item.event_id in fresh])
    # A run of reports is only kept (nothing is sent for a report): one statement. A run of
    # decisions is taken a few statements at a time, whatever its length.
    for kind, run in groupby(todo, key=_run_kind):
        items = list(run)
        if kind is IncidentReported:
            await store.save_reported(
                conn, [i.item for i in items if isinstance(i.item, IncidentReported)]
            )
        elif kind is IncidentTriaged:
            for distinct in _distinct_incidents(cast(list[Triaged], items)):
                await on_triaged(conn, notify, distinct)
        else:
            for incoming in items:
                with traced(incoming):
                    await apply(conn, notify, incoming.item)


def traced(incoming: Incoming[Event]) -> AbstractContextManager[str | None]:
    """The span of handling one event: deliveries and notification events carry its trace on."""
    return span_from(
        record_traceparent(incoming.record.headers),
        f"notify {type(incoming.item).__name__}",
        kind=SpanKind.CONSUMER,
        attributes={"incident.id": str(incoming.item.incident_id)},
    )


def _run_kind(incoming: Incoming[Event]) -> type[Event]:
    """Reports and decisions are taken in runs; every other event alone (as ``Event``)."""
    for kind in (IncidentReported, IncidentTriaged):
        if isinstance(incoming.item, kind):
            return kind
    return Event


def _distinct_incidents(run: list[Triaged]) -> list[list[Triaged]]:
    """The run in order, cut wherever an incident comes again (one decision per incident and
    statement, the later one seeing what the earlier one did)."""
    parts: list[list[Triaged]] = [[]]
    seen: set[UUID] = set()
    for incoming in run:
        if incoming.item.incident_id in seen:
            parts.append([])
            seen.clear()
        seen.add(incoming.item.incident_id)
        parts[-1].append(incoming)
    return parts


def build_consumer(rt: Runtime, notify: Notify) -> KafkaRouter:
    router = KafkaRouter()

    async def on_events(batch: Sequence[Incoming[Event]]) -> list[Rejected]:
        async with rt.pool.acquire() as conn, conn.transaction():
            await take(conn, notify, batch)
        return []

    parse = event_parser(
        IncidentReported,
        IncidentTriaged,
        IncidentPriorityChanged,
        IncidentMerged,
        IncidentResolved,
        IncidentStatusChanged,
        IncidentAcknowledged,
        IncidentZorgsignaalRaised,
        IncidentPersonalDataErased,
        IncidentDeadlineMissed,
    )
    if rt.settings.works_main:
        batch_consumer(router, rt, "notify", INCIDENT_EVENTS, parse=parse, handle=on_events)
    if rt.settings.works_urgent:
        # The urgent lane (P1/P2 copies, same event ids): its own consumer (in a process of
        # its own where LANE=urgent), so a fire is queued for delivery while a backlog waits
        # on incident-events; the inbox takes the first copy.
        batch_consumer(
            router,
            rt,
            "notify",
            INCIDENT_URGENT,
            purpose="urgent",
            parse=parse,
            handle=on_events,
            max_records=50,
        )
    return router
