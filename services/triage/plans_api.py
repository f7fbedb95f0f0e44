"""The admin API of the wijkveiligheidsplannen: list (every staff role), set and end (admin).

Each change is audited, published on ``safety-plans`` and in effect in triage at once
(``plan_store``); ``veilig plans set|list|end`` does the same from the command line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from schemas import geo
from schemas.taxonomy import taxonomy
from services.common.http import FullDate
from services.common.problems import PROBLEM, Problem
from services.common.runtime import Runtime, runtime
from services.common.staff import Staff, require_role
from services.triage import plan_store
from services.triage.actions import Actor
from services.triage.plans import NoPlan, PlanConflict, PlanError, parse_plan

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid staff token", **PROBLEM},
    403: {"description": "Only the admin role changes plans", **PROBLEM},
    422: {"description": "Invalid plan, or a change that cannot be made", **PROBLEM},
}
router = APIRouter(prefix="/v1/safety-plans", tags=["safety plans"], responses=ERRORS)
Rt = Annotated[Runtime, Depends(runtime)]
Reader = Annotated[Staff, Depends(require_role("triage", "ops", "admin"))]
Admin = Annotated[Staff, Depends(require_role("admin"))]


# What parse_plan checks, said in the OpenAPI document too: a client generated from it sends
# only what can be accepted (the end on or after the start is the one rule it cannot say).
WIJKEN = sorted({b.wijk_code for b in geo.buurten()})
PLANNABLE = sorted(c.code for c in taxonomy().categories if not c.needs_human)
WijkPath = Annotated[
    str, Path(description="A wijk of Haarlem.", json_schema_extra={"enum": WIJKEN})
]


class PlanBody(BaseModel):
    categories: list[str] = Field(
        min_length=1,
        description="Category codes the residents made a priority, each once.",
        json_schema_extra={"items": {"type": "string", "enum": PLANNABLE}, "uniqueItems": True},
    )
    starts_on: FullDate = Field(description="First day the plan runs (Europe/Amsterdam).")
    ends_on: FullDate | None = Field(
        default=None, description="Last day, not before starts_on; none: until ended."
    )
    adopted_by: str = Field(
        min_length=1, max_length=200, description='Who adopted it, e.g. "Wijkraad Meerwijk".'
    )
    adopted_on: FullDate = Field(description="When it was adopted.")


class PlanView(PlanBody):
    wijk_code: str
    version: int
    runs_today: bool
    updated_at: datetime
    updated_by: str


class EndBody(BaseModel):
    ends_on: FullDate | None = Field(default=None, description="Last day it runs; default today.")
    reason: str | None = Field(default=None, max_length=1000)


class Changed(BaseModel):
    wijk_code: str
    version: int


def _invalid(exc: PlanError) -> Problem:
    if isinstance(exc, NoPlan):
        return Problem(404, "no-plan", "No safety plan", str(exc))
    if isinstance(exc, PlanConflict):
        return Problem(409, "plan-conflict", "Does not fit the plan as it stands", str(exc))
    return Problem(422, "invalid-plan", "Invalid safety plan", str(exc))


@router.get("", response_model=list[PlanView], summary="Every wijk's safety plan")
async def list_plans(rt: Rt, _staff: Reader) -> list[PlanView]:
    async with rt.pool.acquire() as conn:
        stored = await plan_store.list_plans(conn)
    today = plan_store.today()
    return [
        PlanView(
            **s.plan.model_dump(),
            version=s.version,
            runs_today=s.plan.runs_on(today),
            updated_at=s.updated_at,
            updated_by=s.updated_by,
        )
        for s in stored
    ]


@router.put("/{wijk_code}", response_model=Changed, summary="Adopt or change a wijk's plan")
async def set_plan(wijk_code: WijkPath, body: PlanBody, rt: Rt, staff: Admin) -> Changed:
    try:
        plan = parse_plan({"wijk_code": wijk_code, **body.model_dump()})
    except PlanError as exc:
        raise _invalid(exc) from exc
    async with rt.pool.acquire() as conn:
        version = await plan_store.set_plan(
            conn, rt.settings, plan, Actor(staff.username, staff.role)
        )
    return Changed(wijk_code=wijk_code, version=version)


@router.post(
    "/{wijk_code}/end",
    response_model=Changed,
    summary="End a wijk's plan",
    responses={
        404: {"description": "The wijk has no plan to end", **PROBLEM},
        409: {"description": "The plan ended already, or starts after that day", **PROBLEM},
    },
)
async def end_plan(wijk_code: WijkPath, body: EndBody, rt: Rt, staff: Admin) -> Changed:
    async with rt.pool.acquire() as conn:
        try:
            version = await plan_store.end_plan(
                conn,
                rt.settings,
                wijk_code,
                Actor(staff.username, staff.role),
                ends_on=body.ends_on,
                reason=body.reason,
            )
        except PlanError as exc:
            raise _invalid(exc) from exc
    return Changed(wijk_code=wijk_code, version=version)
