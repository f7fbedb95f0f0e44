"""The triage API for on-call staff: the queue, one incident in full, and the actions.

Roles: ``triage`` and ``admin`` read and act; ``ops`` reads. Every request that reads one
incident or acts on it is written to the audit table with the staff member's name.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field

from schemas.events import CategoryCode, Recipient, Reporter
from schemas.taxonomy import Priority
from services.common.pii import SealError, open_sealed
from services.common.problems import PROBLEM, Problem
from services.common.runtime import Runtime, runtime
from services.common.staff import Staff, require_role
from services.triage.actions import Actions, Actor, Invalid, NotFound, Outcome
from services.triage.notifications import summarise
from services.triage.queue import NEXT_ESCALATION, Filters, View, fetch_queue
from services.triage.workflow import ACTOR_ROLES, IllegalAction, allowed_actions

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid staff token", **PROBLEM},
    403: {"description": "The role does not allow it", **PROBLEM},
    404: {"description": "No such incident", **PROBLEM},
    409: {"description": "Not allowed in the incident's status", **PROBLEM},
    410: {"description": "Purged after the retention period", **PROBLEM},
    422: {"description": "Invalid input", **PROBLEM},
}
router = APIRouter(prefix="/v1", tags=["triage staff"], responses=ERRORS)
readers = require_role("triage", "ops", "admin")
actors = require_role(*ACTOR_ROLES)


class QueueItem(BaseModel):
    incident_id: UUID
    occurred_at: datetime
    received_at: datetime
    partner: str
    category: str
    priority: str | None
    effective_priority: str
    confidence: float
    needs_review: bool
    status: str
    buurt_code: str | None
    wijk_code: str | None
    report_count: int
    acknowledge_by: datetime
    handle_by: datetime
    acknowledged_at: datetime | None
    owner: str | None
    resume_at: datetime | None
    next_escalation_at: datetime | None = Field(
        description="When notify pages the next in a recipient's escalation chain unless "
        "someone acknowledges the incident (notify's escalation timers); null: none runs."
    )


class HistoryItem(BaseModel):
    at: datetime
    kind: str
    actor: str | None
    detail: dict[str, Any]


class MergedReport(BaseModel):
    """A later report merged into this incident as a duplicate."""

    incident_id: UUID
    occurred_at: datetime
    received_at: datetime
    partner: str
    description: str
    lat: float | None
    lon: float | None


class NotificationView(BaseModel):
    """One message notify sent about the incident, as its events tell."""

    message_id: UUID
    recipient: str
    state: str
    channel: str | None
    msg_type: str | None
    attempts: int
    sent_at: datetime | None
    acknowledge_by: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    last_error: str | None
    escalated_to: list[str]


class Reveal(BaseModel):
    at: datetime
    actor: str
    reason: str


class RouteStep(BaseModel):
    """One routing rule checked for the incident's decision, as ``veilig routes test``
    prints it: whether it matched and why, whom it added, and what it noted."""

    index: int
    rule: str
    matched: bool
    why: str
    added: list[Recipient] = Field(description="The recipients it added, with their profile.")
    notes: list[str] = Field(description="Defaults applied or skipped, drops, fallbacks.")
    continued: bool = Field(description="It matched and said continue: later rules add too.")


class IncidentView(QueueItem):
    description: str
    category_hint: str | None
    flags: dict[str, Any]
    location: dict[str, Any]
    reasons: list[str]
    top_categories: list[dict[str, Any]]
    recipients: list[dict[str, str]]
    routing: list[RouteStep] | None = Field(
        description="Every routing rule checked for the current decision, in order; null "
        "when it was decided before triage kept the trace."
    )
    merged_into: UUID | None
    merged_reports: list[MergedReport]
    notifications: list[NotificationView]
    has_contact: bool = Field(description="Whether the reporter left contact details.")
    contact_reveals: list[Reveal] = Field(description="Who revealed the contact, when, why.")
    actions: list[str] = Field(
        description="The actions this staff member may take on it now (workflow.py's names)."
    )
    history: list[HistoryItem]


class RevealContact(BaseModel):
    reason: str = Field(min_length=3, max_length=500, description="Why the contact is needed.")


class Acknowledge(BaseModel):
    # A plain string: whether it is one of the incident's recipients is the action's question
    # (422 naming them), asked once the incident is found (404 otherwise).
    recipient: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="On behalf of which of the incident's recipients; default: the first one.",
    )


class Reclassify(BaseModel):
    category: CategoryCode
    reason: str | None = Field(default=None, max_length=1000)


class ChangePriority(BaseModel):
    priority: Priority
    reason: str | None = Field(default=None, max_length=1000)


class Merge(BaseModel):
    into: UUID = Field(description="The earlier incident this one is a duplicate of.")
    reason: str | None = Field(default=None, max_length=1000)


class Reason(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


class Assign(BaseModel):
    owner: str | None = Field(description="A triage or admin staff member; null: nobody.")
    reason: str | None = Field(default=None, max_length=1000)


class Hold(BaseModel):
    reason: str = Field(min_length=3, max_length=1000, description="What it waits for.")
    resume_at: AwareDatetime = Field(description="When to take it up again at the latest.")


class Cancel(BaseModel):
    reason: str = Field(min_length=3, max_length=1000, description="Why it is called off.")


class Resolve(BaseModel):
    outcome: Outcome
    note: str | None = Field(default=None, max_length=2000)


def queue_fields(row: Any) -> dict[str, Any]:
    return {name: row[name] for name in QueueItem.model_fields}


@router.get("/queue", response_model=list[QueueItem], summary="The triage queue")
async def queue(
    rt: Annotated[Runtime, Depends(runtime)],
    _staff: Annotated[Staff, Depends(readers)],
    filters: Annotated[Filters, Query()],
    view: View = "needs_review",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QueueItem]:
    """Open incidents in one view, most urgent and the earliest deadline first."""
    return [QueueItem(**queue_fields(r)) for r in await fetch_queue(rt.pool, view, filters, limit)]


@router.get("/incidents/{incident_id}", response_model=IncidentView, summary="One incident")
async def incident(
    incident_id: UUID,
    rt: Annotated[Runtime, Depends(runtime)],
    staff: Annotated[Staff, Depends(readers)],
) -> IncidentView:
    """The incident with its report, the classifier's reasons and its whole history."""
    async with rt.pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT *, {NEXT_ESCALATION} FROM incidents WHERE incident_id = $1",  # noqa: S608
            incident_id,
        )
        if row is None:
            raise Problem(404, "not-found", "Not found", f"no incident {incident_id}")
        history = await conn.fetch(
            "SELECT at, kind, actor, detail FROM history WHERE incident_id = $1 ORDER BY id",
            incident_id,
        )
        merged = await conn.fetch(
            "SELECT incident_id, occurred_at, received_at, partner, report->>'description' "
            "AS description, lat, lon FROM incidents WHERE merged_into = $1 ORDER BY occurred_at",
            incident_id,
        )
        log = await conn.fetch(
            "SELECT message_id, recipient, kind, at, detail FROM notification_log "
            "WHERE incident_id = $1 ORDER BY id",
            incident_id,
        )
        reveals = await conn.fetch(
            "SELECT at, actor, detail->>'reason' AS reason FROM audit "
            "WHERE incident_id = $1 AND action = 'reveal_contact' ORDER BY id",
            incident_id,
        )
        # One row per person and incident per ten minutes: the console keeps an open incident
        # fresh by reading it every few seconds, which is one look, not hundreds.
        await conn.execute(
            "INSERT INTO audit (actor, role, action, incident_id) SELECT $1, $2, 'view', $3 "
            "WHERE NOT EXISTS (SELECT 1 FROM audit WHERE incident_id = $3 AND actor = $1 "
            "AND action = 'view' AND at > now() - interval '10 minutes')",
            staff.username,
            staff.role,
            incident_id,
        )
    report = json.loads(row["report"])
    return IncidentView(
        **queue_fields(row),
        description=report["description"],
        category_hint=report.get("category_hint"),
        flags=report["flags"],
        location=report["location"],
        reasons=json.loads(row["reasons"]),
        top_categories=json.loads(row["top_categories"]),
        recipients=json.loads(row["recipients"]),
        routing=None if row["routing"] is None else json.loads(row["routing"]),
        merged_into=row["merged_into"],
        merged_reports=[MergedReport(**dict(m)) for m in merged],
        notifications=[
            NotificationView(**asdict(m))
            for m in summarise({**dict(r), "detail": json.loads(r["detail"])} for r in log)
        ],
        has_contact=report.get("reporter_sealed") is not None,
        contact_reveals=[Reveal(**dict(r)) for r in reveals],
        actions=allowed_actions(row["status"]) if staff.role in ACTOR_ROLES else [],
        history=[
            HistoryItem(
                at=h["at"], kind=h["kind"], actor=h["actor"], detail=json.loads(h["detail"])
            )
            for h in history
        ],
    )


async def _run(rt: Runtime, action: Callable[[Actions], Awaitable[None]]) -> dict[str, str]:
    try:
        await action(rt.extras["actions"])
    except NotFound as exc:
        raise Problem(404, "not-found", "Not found", str(exc)) from exc
    except IllegalAction as exc:
        raise Problem(409, "illegal-transition", "Not allowed in this status", str(exc)) from exc
    except Invalid as exc:
        raise Problem(409, "invalid-action", "Cannot do that", str(exc)) from exc
    return {"status": "done"}


Rt = Annotated[Runtime, Depends(runtime)]
Actor_ = Annotated[Staff, Depends(actors)]


def _actor(staff: Staff) -> Actor:
    return Actor(staff.username, staff.role)


@router.post(
    "/incidents/{incident_id}/contact",
    response_model=Reporter,
    summary="Reveal the reporter's contact details (audited, with a reason)",
)
async def reveal_contact(incident_id: UUID, body: RevealContact, rt: Rt, staff: Actor_) -> Reporter:
    """Personal data: only on request, with a reason, and every reveal is an audit row that
    the incident page shows."""
    async with rt.pool.acquire() as conn, conn.transaction():
        sealed = await conn.fetchrow(
            "SELECT report->>'reporter_sealed' AS sealed FROM incidents WHERE incident_id = $1",
            incident_id,
        )
        if sealed is None:
            raise Problem(404, "not-found", "Not found", f"no incident {incident_id}")
        if sealed["sealed"] is None:
            raise Problem(404, "no-contact", "No contact details", "the reporter left none")
        try:
            reporter = Reporter.model_validate_json(open_sealed(sealed["sealed"]))
        except SealError as exc:  # its key was dropped after the retention period
            raise Problem(410, "purged", "Purged", "the contact details are purged") from exc
        await conn.execute(
            "INSERT INTO audit (actor, role, action, incident_id, detail) "
            "VALUES ($1, $2, 'reveal_contact', $3, $4::jsonb)",
            staff.username,
            staff.role,
            incident_id,
            json.dumps({"reason": body.reason}),
        )
    return reporter


@router.post("/incidents/{incident_id}/acknowledge", summary="Acknowledge for a recipient")
async def acknowledge(
    incident_id: UUID, body: Acknowledge, rt: Rt, staff: Actor_
) -> dict[str, str]:
    return await _run(rt, lambda a: a.acknowledge(incident_id, _actor(staff), body.recipient))


@router.post("/incidents/{incident_id}/reclassify", summary="Change the category (re-routes)")
async def reclassify(incident_id: UUID, body: Reclassify, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(
        rt, lambda a: a.reclassify(incident_id, _actor(staff), body.category, body.reason)
    )


@router.post("/incidents/{incident_id}/priority", summary="Change the priority (re-routes)")
async def priority(
    incident_id: UUID, body: ChangePriority, rt: Rt, staff: Actor_
) -> dict[str, str]:
    return await _run(
        rt, lambda a: a.change_priority(incident_id, _actor(staff), body.priority, body.reason)
    )


@router.post("/incidents/{incident_id}/merge", summary="Merge into an earlier incident")
async def merge(incident_id: UUID, body: Merge, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(rt, lambda a: a.merge(incident_id, _actor(staff), body.into, body.reason))


@router.post("/incidents/{incident_id}/unmerge", summary="Undo a merge")
async def unmerge(incident_id: UUID, body: Reason, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(rt, lambda a: a.unmerge(incident_id, _actor(staff), body.reason))


@router.post("/incidents/{incident_id}/resolve", summary="Resolve with an outcome and a note")
async def resolve(incident_id: UUID, body: Resolve, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(rt, lambda a: a.resolve(incident_id, _actor(staff), body.outcome, body.note))


@router.post("/incidents/{incident_id}/reopen", summary="Reopen a resolved incident")
async def reopen(incident_id: UUID, body: Reason, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(rt, lambda a: a.reopen(incident_id, _actor(staff), body.reason))


@router.post("/incidents/{incident_id}/claim", summary="Take the incident: you own it")
async def claim(incident_id: UUID, body: Reason, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(
        rt, lambda a: a.assign(incident_id, _actor(staff), staff.username, body.reason)
    )


@router.post("/incidents/{incident_id}/assign", summary="Give the incident to a colleague")
async def assign(incident_id: UUID, body: Assign, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(rt, lambda a: a.assign(incident_id, _actor(staff), body.owner, body.reason))


@router.post("/incidents/{incident_id}/start", summary="Work started (or resumes after a hold)")
async def start(incident_id: UUID, body: Reason, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(rt, lambda a: a.start(incident_id, _actor(staff), body.reason))


@router.post("/incidents/{incident_id}/hold", summary="Wait, with a reason and a resume time")
async def hold(incident_id: UUID, body: Hold, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(rt, lambda a: a.hold(incident_id, _actor(staff), body.reason, body.resume_at))


@router.post("/incidents/{incident_id}/cancel", summary="Call off: every recipient is told")
async def cancel(incident_id: UUID, body: Cancel, rt: Rt, staff: Actor_) -> dict[str, str]:
    return await _run(rt, lambda a: a.cancel(incident_id, _actor(staff), body.reason))
