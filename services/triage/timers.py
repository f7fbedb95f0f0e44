"""The workflow's timers: one supervised loop of triage that acts when a time comes.

- A hold's resume time passed: the incident goes back (``workflow.resumed_status``), as an
  IncidentStatusChanged and a history row by ``system``.
- A handle-by deadline passed while the incident is open: IncidentDeadlineMissed and a history
  row, once per deadline (``handle_by_missed`` keeps which one was raised); notify pages the
  escalation target of the recipients that were to act, and the console's "deadline at risk
  or missed" view shows it.

Everything is in rows (``resume_at``, ``handle_by``, ``handle_by_missed``), so a restart or a
database blink loses nothing: what fell due meanwhile is done in the next round, and the
supervisor (services/common/supervision.py) starts a failed round again. Each round claims its
incidents with ``FOR UPDATE SKIP LOCKED`` in the transaction that changes them and publishes
through the outbox in that transaction: two triage instances never both act on one incident,
and a condition re-checked under the lock cannot hold twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from schemas.events import IncidentDeadlineMissed, IncidentStatusChanged
from schemas.timeutil import AMSTERDAM
from services.common.runtime import Runtime, pause
from services.common.settings import Settings
from services.common.supervision import Loop
from services.triage import store
from services.triage.actions import event_fields
from services.triage.handlers import Outgoing
from services.triage.workflow import OPEN_STATUSES, resumed_status

SYSTEM = "system"
"""The actor of what the platform does by itself on time."""
BATCH = 50
POLL_SECONDS = 5.0
# The open statuses literally, as in the partial index the query uses (migration 0011).
_OPEN = ", ".join(f"'{status}'" for status in OPEN_STATUSES)
_MISSED = (
    "SELECT incident_id, handle_by, effective_priority, status FROM incidents "  # noqa: S608
    f"WHERE status IN ({_OPEN}) AND handle_by_missed IS DISTINCT FROM handle_by "
    "AND handle_by <= $1 ORDER BY handle_by LIMIT $2 FOR UPDATE SKIP LOCKED"
)


async def resume_due(pool: asyncpg.Pool, settings: Settings, now: datetime) -> int:
    """Take incidents whose hold ran out off hold; returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "SELECT incident_id, resume_at, acknowledged_at FROM incidents "
            "WHERE status = 'on_hold' AND resume_at <= $1 ORDER BY resume_at LIMIT $2 "
            "FOR UPDATE SKIP LOCKED",
            now,
            BATCH,
        )
        out = Outgoing(settings, None)
        for row in rows:
            incident_id, due = row["incident_id"], row["resume_at"]
            new_status = resumed_status(row["acknowledged_at"] is not None)
            why = f"hervat: wachttijd tot {due.astimezone(AMSTERDAM):%d-%m %H:%M} verstreken"
            await store.update_incident(conn, incident_id, status=new_status, resume_at=None)
            await store.append_history(conn, incident_id, "resumed", SYSTEM, why=why, was_due=due)
            out.add(
                IncidentStatusChanged(
                    **event_fields(incident_id),
                    old_status="on_hold",
                    new_status=new_status,
                    actor=SYSTEM,
                    reason=why,
                )
            )
        await out.flush(conn)
    return len(rows)


async def raise_missed(pool: asyncpg.Pool, settings: Settings, now: datetime) -> int:
    """Raise the open incidents whose handle-by deadline passed, once per deadline."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_MISSED, now, BATCH)
        out = Outgoing(settings, None)
        for row in rows:
            incident_id, deadline = row["incident_id"], row["handle_by"]
            await store.update_incident(conn, incident_id, handle_by_missed=deadline)
            await store.append_history(
                conn, incident_id, "deadline missed", SYSTEM, handle_by=deadline
            )
            out.add(
                IncidentDeadlineMissed(
                    **event_fields(incident_id),
                    handle_by=deadline,
                    priority=row["effective_priority"],
                    status=row["status"],
                )
            )
        await out.flush(conn)
    return len(rows)


async def run(rt: Runtime, loop: Loop) -> None:
    """The supervised body: a round whenever one is due, until the service stops."""
    while not rt.stopping.is_set():
        loop.beat()
        now = datetime.now(UTC)
        resumed = await resume_due(rt.pool, rt.settings, now)
        raised = await raise_missed(rt.pool, rt.settings, now)
        if max(resumed, raised) < BATCH:  # a full batch: more may be due at once
            await pause(rt.stopping, None, POLL_SECONDS)
