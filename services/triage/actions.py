"""What on-call triage staff can do to an incident, each as one transaction.

Every action locks the incident, checks the workflow table (an illegal action is refused
with what is allowed), changes the state, appends history, and publishes the facts through
the outbox: the specific event (reclassified, priority changed, merged, ...) and, when
recipients may change, a new ``incident triaged`` decision that notify compares with the
previous one (new recipients alerted, dropped ones told, the others updated).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

import asyncpg

from schemas.events import (
    IncidentAcknowledged,
    IncidentAssigned,
    IncidentPriorityChanged,
    IncidentReclassified,
    IncidentResolved,
    IncidentStatusChanged,
)
from schemas.taxonomy import Priority
from schemas.urgency import is_urgent
from services.common.settings import Settings
from services.common.staff import active_staff
from services.triage import store
from services.triage.decide import Triage
from services.triage.domain import triaged_event
from services.triage.handlers import Outgoing, merge_and_raise
from services.triage.workflow import ACTOR_ROLES, Action, check_action

Outcome = Literal["handled", "no_action_needed", "referred", "unfounded"]


class NotFound(LookupError):
    pass


class Invalid(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Actor:
    username: str
    role: str


def _now() -> datetime:
    return datetime.now(UTC)


def event_fields(incident_id: UUID) -> dict[str, object]:
    """The header fields of an event triage publishes about an incident now."""
    now = _now()
    return {
        "event_id": uuid.uuid4(),
        "incident_id": incident_id,
        "occurred_at": now,
        "recorded_at": now,
        "producer": "triage",
    }


class Actions:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, triage: Triage) -> None:
        self.pool = pool
        self.settings = settings
        self.triage = triage

    async def _begin(
        self, conn: asyncpg.Connection, incident_id: UUID, action: Action, actor: Actor
    ) -> tuple[asyncpg.Record, str]:
        row = await store.get_incident(conn, incident_id, lock=True)
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        new_status = check_action(action, row["status"])
        await conn.execute(
            "INSERT INTO audit (actor, role, action, incident_id) VALUES ($1, $2, $3, $4)",
            actor.username,
            actor.role,
            action,
            incident_id,
        )
        return row, new_status

    async def acknowledge(self, incident_id: UUID, actor: Actor, recipient: str | None) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row, new_status = await self._begin(conn, incident_id, "acknowledge", actor)
            codes = [r["code"] for r in _recipients(row)]
            chosen = recipient or (codes[0] if codes else None)
            if chosen is None or chosen not in codes:
                raise Invalid(
                    f"recipient must be one of the incident's recipients: {', '.join(codes)}"
                    if codes
                    else "the incident has no recipients to acknowledge for; triage it first"
                )
            await store.update_incident(
                conn,
                incident_id,
                status=new_status,
                acknowledged_at=row["acknowledged_at"] or _now(),
            )
            await store.append_history(
                conn, incident_id, "acknowledged", actor.username, recipient=chosen
            )
            out = Outgoing(self.settings, None)
            out.add(
                IncidentAcknowledged(
                    **event_fields(incident_id), recipient=chosen, acknowledged_by=actor.username
                )
            )
            await out.flush(conn)

    async def reclassify(
        self, incident_id: UUID, actor: Actor, category: str, reason: str | None
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row, _ = await self._begin(conn, incident_id, "reclassify", actor)
            if category == row["category"]:
                raise Invalid(f"the incident is {category} already")
            decision = self.triage.decide(
                store.reported(row), category=category, report_count=row["report_count"]
            )
            await store.update_incident(conn, incident_id, **store.decision_columns(decision))
            await store.append_history(
                conn,
                incident_id,
                "reclassified",
                actor.username,
                old=row["category"],
                new=category,
                why=reason,
            )
            out = Outgoing(self.settings, None)
            out.add(
                IncidentReclassified(
                    **event_fields(incident_id),
                    old_category=row["category"],
                    new_category=category,
                    actor=actor.username,
                    reason=reason,
                )
            )
            out.add(triaged_event(store.reported(row), decision, row["report_count"], _now()))
            await out.flush(conn)

    async def change_priority(
        self, incident_id: UUID, actor: Actor, priority: Priority, reason: str | None
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row, _ = await self._begin(conn, incident_id, "change_priority", actor)
            old = row["effective_priority"]
            if priority == old and row["priority"] is not None:
                raise Invalid(f"the incident is {priority} already")
            decision = self.triage.decide(
                store.reported(row),
                category=row["category"],
                priority=priority,
                report_count=row["report_count"],
            )
            await store.update_incident(conn, incident_id, **store.decision_columns(decision))
            await store.append_history(
                conn,
                incident_id,
                "priority changed",
                actor.username,
                old=old,
                new=priority,
                why=reason,
            )
            out = Outgoing(self.settings, None)
            if priority != old:
                out.add(
                    IncidentPriorityChanged(
                        **event_fields(incident_id),
                        old_priority=old,
                        new_priority=priority,
                        acknowledge_by=decision.acknowledge_by,
                        handle_by=decision.handle_by,
                        actor=actor.username,
                        reason=reason,
                    )
                )
            out.add(triaged_event(store.reported(row), decision, row["report_count"], _now()))
            await out.flush(conn)

    async def merge(self, incident_id: UUID, actor: Actor, into: UUID, reason: str | None) -> None:
        if into == incident_id:
            raise Invalid("an incident cannot be merged into itself")
        async with self.pool.acquire() as conn, conn.transaction():
            row, new_status = await self._begin(conn, incident_id, "merge", actor)
            first = await store.get_incident(conn, into, lock=True)
            if first is None:
                raise NotFound(f"no incident {into} to merge into")
            if first["merged_into"] is not None or first["status"] in ("resolved", "cancelled"):
                raise Invalid(f"incident {into} is {first['status']}: merge into an open one")
            await store.update_incident(conn, incident_id, status=new_status, merged_into=into)
            out = Outgoing(self.settings, None)
            await merge_and_raise(
                conn,
                self.triage,
                out,
                first=first,
                duplicate_id=incident_id,
                reports=row["report_count"],
                reason=reason,
                actor=actor.username,
            )
            await out.flush(conn)

    async def unmerge(self, incident_id: UUID, actor: Actor, reason: str | None) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row, new_status = await self._begin(conn, incident_id, "unmerge", actor)
            first_id = row["merged_into"]
            first = await store.get_incident(conn, first_id, lock=True)
            assert first is not None  # a foreign key
            await store.update_incident(
                conn, first_id, report_count=max(1, first["report_count"] - row["report_count"])
            )
            decision = self.triage.decide(
                store.reported(row), category=row["category"], report_count=row["report_count"]
            )
            await store.update_incident(
                conn,
                incident_id,
                status=new_status,
                merged_into=None,
                **store.decision_columns(decision),
            )
            await store.append_history(
                conn, incident_id, "unmerged", actor.username, was=str(first_id), why=reason
            )
            out = Outgoing(self.settings, None)
            out.add(
                IncidentStatusChanged(
                    **event_fields(incident_id),
                    old_status="merged",
                    new_status=new_status,
                    actor=actor.username,
                    reason=reason or f"not the same incident as {first_id}",
                )
            )
            # Now an incident of its own: its recipients must hear of it.
            out.add(triaged_event(store.reported(row), decision, row["report_count"], _now()))
            await out.flush(conn)

    async def resolve(
        self, incident_id: UUID, actor: Actor, outcome: Outcome, note: str | None
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            _, new_status = await self._begin(conn, incident_id, "resolve", actor)
            await store.update_incident(conn, incident_id, status=new_status)
            await store.append_history(
                conn, incident_id, "resolved", actor.username, outcome=outcome, note=note
            )
            out = Outgoing(self.settings, None)
            out.add(
                IncidentResolved(
                    **event_fields(incident_id), outcome=outcome, actor=actor.username, note=note
                )
            )
            await out.flush(conn)

    async def reopen(self, incident_id: UUID, actor: Actor, reason: str | None) -> None:
        await self._change_status("reopen", incident_id, actor, reason, "reopened")

    async def start(self, incident_id: UUID, actor: Actor, reason: str | None) -> None:
        """Work on the incident started (or resumes after a hold)."""
        await self._change_status("start", incident_id, actor, reason, "started", resume_at=None)

    async def hold(self, incident_id: UUID, actor: Actor, reason: str, resume_at: datetime) -> None:
        """Waiting for information or a third party, until ``resume_at`` at the latest."""
        if resume_at <= _now():
            raise Invalid("the resume time must be in the future")
        await self._change_status(
            "hold", incident_id, actor, reason, "on hold", resume_at=resume_at
        )

    async def cancel(self, incident_id: UUID, actor: Actor, reason: str) -> None:
        """Called off: notify cancels every message (CAP Cancel, a cancel message)."""
        await self._change_status("cancel", incident_id, actor, reason, "cancelled", resume_at=None)

    async def assign(
        self, incident_id: UUID, actor: Actor, owner: str | None, reason: str | None
    ) -> None:
        """Give the incident an owner (claim: ``owner`` is the actor), or none."""
        async with self.pool.acquire() as conn, conn.transaction():
            row, _ = await self._begin(conn, incident_id, "assign", actor)
            if owner is not None and owner not in {
                s.username for s in await active_staff(conn, ACTOR_ROLES)
            }:
                raise Invalid(f"{owner} is no active triage or admin staff member")
            if owner == row["owner"]:
                raise Invalid(f"the incident is {owner or 'unowned'} already")
            await store.update_incident(conn, incident_id, owner=owner)
            await store.append_history(
                conn, incident_id, "assigned", actor.username, owner=owner, was=row["owner"]
            )
            out = Outgoing(self.settings, None)
            out.add(
                IncidentAssigned(
                    **event_fields(incident_id),
                    owner=owner,
                    previous_owner=row["owner"],
                    actor=actor.username,
                    reason=reason,
                )
            )
            await out.flush(conn)

    async def _change_status(
        self,
        action: Action,
        incident_id: UUID,
        actor: Actor,
        reason: str | None,
        kind: str,
        **columns: object,
    ) -> None:
        """An action whose fact is the status change itself (IncidentStatusChanged)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row, new_status = await self._begin(conn, incident_id, action, actor)
            await store.update_incident(conn, incident_id, status=new_status, **columns)
            await store.append_history(
                conn, incident_id, kind, actor.username, why=reason, **columns
            )
            out = Outgoing(self.settings, None)
            out.add(
                IncidentStatusChanged(
                    **event_fields(incident_id),
                    old_status=row["status"],
                    new_status=new_status,
                    actor=actor.username,
                    reason=reason,
                )
            )
            if new_status == "cancelled" and is_urgent(row["effective_priority"]):
                out.urgent(store.reported(row))  # stop a P1's paging without waiting
            await out.flush(conn)


def _recipients(row: asyncpg.Record) -> list[dict[str, str]]:
    return list(json.loads(row["recipients"]))
