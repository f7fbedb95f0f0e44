"""The triage API for on-call staff: the queue, one incident in full, and the actions.

Roles: ``triage`` and ``admin`` read and act; ``ops`` reads. Every request that reads one
incident or acts on it is written to the audit table with the staff member's name.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from schemas.events import CategoryCode, RecipientCode
from schemas.taxonomy import Priority
from services.common.problems import PROBLEM, Problem
from services.common.runtime import Runtime, runtime
from services.common.staff import Staff, require_role
from services.triage.actions import Actions, Actor, Invalid, NotFound, Outcome
from services.triage.workflow import IllegalAction

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid staff token", **PROBLEM},
    403: {"description": "The role does not allow it", **PROBLEM},
    404: {"description": "No such incident", **PROBLEM},
    409: {"description": "Not allowed in the incident's status", **PROBLEM},
    422: {"description": "Invalid input", **PROBLEM},
}
router = APIRouter(prefix="/v1", tags=["triage staff"], responses=ERRORS)
readers = require_role("triage", "ops", "admin")
actors = require_role("triage", "admin")

View = Literal["open", "needs_review", "unacknowledged", "sla_at_risk", "suspected_duplicates"]
OPEN = ("triaged", "acknowledged", "in_progress", "on_hold", "reopened")
_VIEWS: dict[str, str] = {
    "open": "TRUE",
    "needs_review": "needs_review",
    "unacknowledged": "effective_priority IN ('P1', 'P2') AND acknowledged_at IS NULL",
    "sla_at_risk": "(acknowledged_at IS NULL AND acknowledge_by < now() + interval '5 minutes')"
    " OR handle_by < now() + interval '1 hour'",
    "suspected_duplicates": "EXISTS (SELECT 1 FROM incidents o WHERE o.incident_id <> "
    "i.incident_id AND o.category = i.category AND o.buurt_code = i.buurt_code AND "
    "o.merged_into IS NULL AND o.status = ANY($1) AND "
    "abs(extract(epoch FROM o.occurred_at - i.occurred_at)) < 3600)",
}


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


class HistoryItem(BaseModel):
    at: datetime
    kind: str
    actor: str | None
    detail: dict[str, Any]


class IncidentView(QueueItem):
    description: str
    category_hint: str | None
    flags: dict[str, Any]
    location: dict[str, Any]
    reasons: list[str]
    top_categories: list[dict[str, Any]]
    recipients: list[dict[str, str]]
    merged_into: UUID | None
    history: list[HistoryItem]


class Acknowledge(BaseModel):
    recipient: RecipientCode | None = Field(
        default=None, description="On behalf of which recipient; default: the first one."
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


class Resolve(BaseModel):
    outcome: Outcome
    note: str | None = Field(default=None, max_length=2000)


def _item(row: Any) -> dict[str, Any]:
    return {name: row[name] for name in QueueItem.model_fields}


@router.get("/queue", response_model=list[QueueItem], summary="The triage queue")
async def queue(
    rt: Annotated[Runtime, Depends(runtime)],
    _staff: Annotated[Staff, Depends(readers)],
    view: View = "needs_review",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QueueItem]:
    """Open incidents in one view, most urgent and oldest first."""
    rows = await rt.pool.fetch(
        f"SELECT * FROM incidents i WHERE status = ANY($1) AND merged_into IS NULL "  # noqa: S608
        f"AND ({_VIEWS[view]}) ORDER BY effective_priority, acknowledge_by LIMIT $2",
        list(OPEN),
        limit,
    )
    return [QueueItem(**_item(r)) for r in rows]


@router.get("/incidents/{incident_id}", response_model=IncidentView, summary="One incident")
async def incident(
    incident_id: UUID,
    rt: Annotated[Runtime, Depends(runtime)],
    staff: Annotated[Staff, Depends(readers)],
) -> IncidentView:
    """The incident with its report, the classifier's reasons and its whole history."""
    async with rt.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM incidents WHERE incident_id = $1", incident_id)
        if row is None:
            raise Problem(404, "not-found", "Not found", f"no incident {incident_id}")
        history = await conn.fetch(
            "SELECT at, kind, actor, detail FROM history WHERE incident_id = $1 ORDER BY id",
            incident_id,
        )
        await conn.execute(
            "INSERT INTO audit (actor, role, action, incident_id) VALUES ($1, $2, 'view', $3)",
            staff.username,
            staff.role,
            incident_id,
        )
    report = json.loads(row["report"])
    return IncidentView(
        **_item(row),
        description=report["description"],
        category_hint=report.get("category_hint"),
        flags=report["flags"],
        location=report["location"],
        reasons=json.loads(row["reasons"]),
        top_categories=json.loads(row["top_categories"]),
        recipients=json.loads(row["recipients"]),
        merged_into=row["merged_into"],
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
