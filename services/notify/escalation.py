"""The escalation task: pages the next in a recipient's chain when its timer runs out.

A timer (``escalations`` row) watches one (incident, recipient) from its first P1/P2 message:
``escalate_at`` is the acknowledge deadline. When it passes unacknowledged (or the delivery
failed for good), one transaction locks the incident, pages the next step of the recipient's
chain (``recipients.yaml``; the last step repeats, an empty chain re-pages the recipient),
emits NotificationEscalated and sets the next deadline one acknowledgement window later. After
``NOTIFY_ESCALATION_MAX_LEVELS`` pages it gives up and alerts ops. An acknowledgement, by the
recipient or by anyone it paged for it, stops the timer in the same transaction that records
it; and once anyone acknowledged the incident, none of its timers pages anybody again. Timers
are rows, so they survive restarts: a timer that fell due while notify was down fires as soon
as it is back.

A missed handle-by deadline (triage's ``IncidentDeadlineMissed``, once per deadline) is no
timer here: it pages the escalation target of each recipient that was to act, once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
from prometheus_client import Counter

from schemas.events import IncidentDeadlineMissed, NotificationEscalated
from schemas.taxonomy import Profile, taxonomy
from schemas.timeutil import AMSTERDAM
from services.common.faults import describe, is_transient
from services.common.outbox import enqueue
from services.common.runtime import Runtime, pause
from services.common.supervision import Loop
from services.notify import store
from services.notify.delivery import QUARANTINED
from services.notify.messages import Kind
from services.notify.registry import kind_code
from services.notify.store import Incident, Member, Message, Notify

log = logging.getLogger(__name__)


def _reason(root: str, target: str, why: str, deadline: datetime) -> str:
    name = taxonomy().recipient(root).name
    if why == "delivery_failed":
        return f"Escalatie: {name} is niet bereikbaar"
    if target == root:
        return "Herinnering: nog niet bevestigd"
    return f"Escalatie: {name} heeft niet bevestigd vóór {deadline.astimezone(AMSTERDAM):%H:%M}"


ESCALATIONS = Counter(
    "veilig_notify_escalations_total",
    "Escalations of unacknowledged notifications, by recipient kind and level",
    ["recipient", "level"],
)


def _page_as(members: dict[str, Member], target: str) -> tuple[Profile, Kind]:
    """A page to someone told about the incident already is an update with the profile it
    has; to anyone else, an alert with the profile the taxonomy gives it."""
    member = members.get(target)
    if member is not None and member.active:
        return member.profile, "update"
    return taxonomy().recipient_profile(target), "alert"


async def escalate(
    conn: asyncpg.Connection, notify: Notify, incident: Incident, timer: asyncpg.Record
) -> None:
    """Fire one due timer (its incident locked)."""
    root: str = timer["recipient"]
    if not incident.ready:
        await store.stop_escalations(conn, notify, incident.incident_id, [root], "closed")
        return
    assert incident.triaged is not None
    members = await store.audience(conn, incident.incident_id)
    if any(m.acknowledged_at is not None for m in members.values()):
        # Someone took responsibility for the incident (a responder, or the control room in
        # the triage console): nobody is paged for it any more. Updates still go out.
        await store.stop_escalations(conn, notify, incident.incident_id, None, "acknowledged")
        return
    level = timer["level"] + 1
    chain = notify.registry.chain(root, **incident.values())
    target = chain[min(level, len(chain)) - 1] if chain else root
    now = datetime.now(UTC)
    next_deadline = notify.window(incident.triaged.priority, now)
    profile, kind = _page_as(members, target)
    message = Message(
        message_id=store.message_id("escalation", incident.incident_id, root, level),
        recipient=target,
        profile=profile,
        kind=kind,
        reason=_reason(root, target, timer["reason"], timer["deadline"]),
        escalation_root=root,
    )
    page = await store.draft(
        conn, notify, incident, message, source="escalation", acknowledge_by=next_deadline
    )
    await store.queue(conn, [page])
    exhausted = level >= notify.config.escalation_max_levels
    moved = await conn.fetchrow(
        "UPDATE escalations SET level = $3, escalate_at = $4, deadline = $4, "  # noqa: S608 (fixed names)
        "reason = 'not_acknowledged', stopped_at = CASE WHEN $5 THEN now() END, "
        "stop_reason = CASE WHEN $5 THEN 'exhausted' END "
        f"WHERE incident_id = $1 AND recipient = $2 RETURNING {store.TIMER}",
        incident.incident_id,
        root,
        level,
        next_deadline,
        exhausted,
    )
    event = store.notification(
        NotificationEscalated,
        now=now,
        incident_id=incident.incident_id,
        message_id=timer["message_id"],
        recipient=root,
        level=level,
        reason=timer["reason"],
        escalated_to=(target,),
        deadline=timer["deadline"] if timer["reason"] == "not_acknowledged" else None,
    )
    await enqueue(conn, [notify.outgoing(event)])
    await store.announce_timers(conn, notify, [moved])  # the next page, or none (exhausted)
    ESCALATIONS.labels(kind_code(root), str(level)).inc()
    log.warning(
        "escalated",
        extra={"recipient": root, "escalated_to": target, "level": level},
    )
    if exhausted:
        log.error(
            "escalation exhausted: nobody acknowledged",
            extra={"alert": "ops", "recipient": root, "levels": level},
        )


async def fire_due(pool: asyncpg.Pool, notify: Notify, limit: int = 50) -> int:
    """Fire the timers that are due, one transaction each; returns how many were due.

    A timer whose firing throws a deterministic error is quarantined with it and the others
    fire; a transient error (database away) ends the round for the supervisor to wait out.
    """
    due = await pool.fetch(
        "SELECT incident_id, recipient FROM escalations WHERE stopped_at IS NULL "
        "AND quarantined_at IS NULL AND escalate_at <= now() ORDER BY escalate_at LIMIT $1",
        limit,
    )
    for incident_id, recipient in due:
        try:
            await _fire(pool, notify, incident_id, recipient)
        except Exception as exc:
            if is_transient(exc):
                raise
            await _quarantine(pool, incident_id, recipient, exc)
    return len(due)


async def _fire(pool: asyncpg.Pool, notify: Notify, incident_id: UUID, recipient: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        incident = await store.load_incident(conn, incident_id)
        # Checked again under the incident's lock: another replica, or an acknowledgement,
        # may have been first.
        timer = await conn.fetchrow(
            "SELECT * FROM escalations WHERE incident_id = $1 AND recipient = $2 "
            "AND stopped_at IS NULL AND quarantined_at IS NULL AND escalate_at <= now() "
            "FOR UPDATE",
            incident_id,
            recipient,
        )
        if timer is not None:
            await escalate(conn, notify, incident, timer)


async def _quarantine(
    pool: asyncpg.Pool, incident_id: UUID, recipient: str, exc: BaseException
) -> None:
    error = describe(exc)
    log.error(
        "escalation timer quarantined",
        exc_info=exc,
        extra={
            "alert": "ops",
            "incident_id": str(incident_id),
            "recipient": recipient,
            "error": error,
        },
    )
    QUARANTINED.labels("escalation").inc()
    await pool.execute(
        "UPDATE escalations SET quarantined_at = now(), quarantine_error = $3 "
        "WHERE incident_id = $1 AND recipient = $2",
        incident_id,
        recipient,
        error[:2000],
    )


async def escalation_task(rt: Runtime, loop: Loop, notify: Notify) -> None:
    """Fire due timers until the service stops (a term of the supervised loop)."""
    while not rt.stopping.is_set():
        loop.beat()
        if not await fire_due(rt.pool, notify):
            await pause(rt.stopping, None, notify.config.poll_seconds)


async def page_missed_deadline(
    conn: asyncpg.Connection, notify: Notify, event: IncidentDeadlineMissed
) -> None:
    """The incident was not handled before its handle-by deadline: one page to the escalation
    target of each recipient that was to act on it (the first step of its chain; itself when
    the chain is empty), each target once. The message id comes from the incident, the
    deadline and the target, so a redelivered or repeated event pages nobody twice."""
    incident = await store.load_incident(conn, event.incident_id)
    if not incident.ready:
        return  # handled or called off meanwhile: nothing to page about
    assert incident.triaged is not None
    targets: dict[str, str] = {}  # target -> the recipient it pages for
    for recipient in incident.triaged.recipients:
        if notify.registry.entry(recipient.code).acknowledges:
            chain = notify.registry.chain(recipient.code, **incident.values())
            targets.setdefault(chain[0] if chain else recipient.code, recipient.code)
    if not targets:
        log.warning("handle-by deadline missed, nobody to page: the console shows it")
        return
    members = await store.audience(conn, incident.incident_id)
    local = event.handle_by.astimezone(AMSTERDAM)
    pages: list[store.Draft] = []
    for target, root in targets.items():
        profile, kind = _page_as(members, target)
        name = taxonomy().recipient(root).name
        message = Message(
            message_id=store.message_id("deadline", incident.incident_id, event.handle_by, target),
            recipient=target,
            profile=profile,
            kind=kind,
            reason=f"Afhandeltermijn verstreken: {name} handelde niet af vóór {local:%H:%M}",
        )
        pages.append(
            await store.draft(
                conn,
                notify,
                incident,
                message,
                source="escalation",
                acknowledge_by=None,
                ask=False,
                members=members,
            )
        )
    await store.queue(conn, pages)
    log.warning("handle-by deadline missed: paged", extra={"escalated_to": sorted(targets)})
