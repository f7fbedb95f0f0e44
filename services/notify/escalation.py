"""The escalation task: pages the next in a recipient's chain when its timer runs out.

A timer (``escalations`` row) watches one (incident, recipient) from its first P1/P2 message:
``escalate_at`` is the acknowledge deadline. When it passes unacknowledged (or the delivery
failed for good), one transaction locks the incident, pages the next step of the recipient's
chain (``recipients.yaml``; the last step repeats, an empty chain re-pages the recipient),
emits NotificationEscalated and sets the next deadline one acknowledgement window later. After
``NOTIFY_ESCALATION_MAX_LEVELS`` pages it gives up and alerts ops. An acknowledgement, by the
recipient or by anyone it paged for it, stops the timer in the same transaction that records
it. Timers are rows, so they survive restarts: a timer that fell due while notify was down
fires as soon as it is back.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter

from schemas.events import NotificationEscalated
from schemas.taxonomy import taxonomy
from schemas.timeutil import AMSTERDAM
from services.common.outbox import enqueue
from services.common.runtime import Runtime, pause
from services.notify import store
from services.notify.registry import kind_code
from services.notify.store import Incident, Message, Notify

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


async def escalate(
    conn: asyncpg.Connection, notify: Notify, incident: Incident, timer: asyncpg.Record
) -> None:
    """Fire one due timer (its incident locked)."""
    root: str = timer["recipient"]
    if not incident.ready:
        await store.stop_escalations(conn, incident.incident_id, [root], "closed")
        return
    assert incident.triaged is not None
    level = timer["level"] + 1
    chain = notify.registry.chain(root, **incident.values())
    target = chain[min(level, len(chain)) - 1] if chain else root
    member = (await store.audience(conn, incident.incident_id)).get(target)
    if member is not None and member.acknowledged_at is not None:
        # The next in line has taken responsibility already: nobody is left to page.
        await store.stop_escalations(conn, incident.incident_id, [root], "covered")
        return
    now = datetime.now(UTC)
    next_deadline = notify.window(incident.triaged.priority, now)
    if member is not None and member.active:
        profile, kind = member.profile, "update"
    else:
        profile, kind = taxonomy().recipient_profile(target), "alert"
    message = Message(
        message_id=store.message_id("escalation", incident.incident_id, root, level),
        recipient=target,
        profile=profile,
        kind=kind,
        reason=_reason(root, target, timer["reason"], timer["deadline"]),
        escalation_root=root,
    )
    await store.compose(
        conn, notify, incident, message, source="escalation", acknowledge_by=next_deadline
    )
    exhausted = level >= notify.config.escalation_max_levels
    await conn.execute(
        "UPDATE escalations SET level = $3, escalate_at = $4, deadline = $4, "
        "reason = 'not_acknowledged', stopped_at = CASE WHEN $5 THEN now() END, "
        "stop_reason = CASE WHEN $5 THEN 'exhausted' END "
        "WHERE incident_id = $1 AND recipient = $2",
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
    """Fire the timers that are due, one transaction each; returns how many were due."""
    due = await pool.fetch(
        "SELECT incident_id, recipient FROM escalations WHERE stopped_at IS NULL "
        "AND escalate_at <= now() ORDER BY escalate_at LIMIT $1",
        limit,
    )
    for incident_id, recipient in due:
        async with pool.acquire() as conn, conn.transaction():
            incident = await store.load_incident(conn, incident_id)
            # Checked again under the incident's lock: another replica, or an acknowledgement,
            # may have been first.
            timer = await conn.fetchrow(
                "SELECT * FROM escalations WHERE incident_id = $1 AND recipient = $2 "
                "AND stopped_at IS NULL AND escalate_at <= now() FOR UPDATE",
                incident_id,
                recipient,
            )
            if timer is not None:
                await escalate(conn, notify, incident, timer)
    return len(due)


async def escalation_task(rt: Runtime, notify: Notify) -> None:
    """Fire due timers until the service stops."""
    while not rt.stopping.is_set():
        try:
            due = await fire_due(rt.pool, notify)
        except Exception:
            # The task must outlive a database hiccup or one bad timer; the log says which.
            log.exception("firing escalation timers failed")
            due = 0
        if not due:
            await pause(rt.stopping, None, notify.config.poll_seconds)
