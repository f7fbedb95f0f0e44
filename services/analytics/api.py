"""The JSON API behind the dashboard and the wijk reports (OpenAPI on ``/docs``).

Every route needs a staff token (:mod:`services.common.staff`); any staff role may read. The
``ops`` role sees exact counts and may ask for rolling windows and single days; every other
role gets calendar months, quarters and years only, with small cells suppressed (``<5``, and
``x`` for a cell hidden to protect one) from the same cube in every view and export.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from schemas import geo
from schemas.taxonomy import taxonomy
from schemas.timeutil import AMSTERDAM
from services.analytics import plans, stats
from services.analytics.kafka_monitor import MONITOR, KafkaMonitor
from services.analytics.suppression import ALL, Cube
from services.common.problems import PROBLEM, Problem
from services.common.runtime import Runtime, runtime
from services.common.staff import Staff, require_role

STREAM_EVERY = 2.0
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid staff token", **PROBLEM},
    403: {"description": "A period only the ops role may ask for", **PROBLEM},
    422: {"description": "Invalid period or code", **PROBLEM},
}
router = APIRouter(prefix="/v1", tags=["analytics"], responses=ERRORS)

StaffMember = Annotated[Staff, Depends(require_role())]
Rt = Annotated[Runtime, Depends(runtime)]
PERIOD_PATTERN = (
    r"^(?:(?:19\d{2}|2\d{3})(?:-Q[1-4]|-(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?)?"
    r"|24h|7d|30d)$"
)
"""The periods :func:`services.analytics.stats.parse_period` reads (years 1900..2999)."""
PeriodText = Annotated[
    str | None,
    Query(
        alias="period",
        pattern=PERIOD_PATTERN,
        description="YYYY, YYYY-Qn or YYYY-MM (calendar, Europe/Amsterdam; default: this "
        "month); ops only: YYYY-MM-DD, 24h, 7d, 30d",
    ),
]
Count = int | Literal["<5", "x"]
ZORGSIGNAAL = "zorgsignaal"


def exact_for(staff: Staff) -> bool:
    return staff.role == "ops"


def period_for(staff: Staff, text: str | None) -> stats.Period:
    """The period asked for, if this role may see it."""
    try:
        period = stats.parse_period(text) if text else stats.current_month()
    except stats.PeriodError as exc:
        raise Problem(422, "invalid-period", "Invalid period", str(exc)) from exc
    if not period.calendar and not exact_for(staff):
        raise Problem(
            403,
            "forbidden",
            "Not allowed",
            "roles other than ops see calendar periods only (YYYY, YYYY-Qn, YYYY-MM): "
            "overlapping windows could be subtracted to reveal small counts",
        )
    return period


def _codes(*codes: str) -> dict[str, object]:
    """An enum in the OpenAPI document: the codes a parameter accepts (the service checks)."""
    return {"enum": list(codes)}


WIJK_CODES = tuple(geo.wijk_names())
CATEGORY = Query(
    description="A category code, or * for all",
    json_schema_extra=_codes(ALL, stats.UNKNOWN, *taxonomy().category_codes),
)
CategoryCode = Annotated[str, CATEGORY]
AreaCode = Annotated[
    str,
    Query(
        description="* (the city), a wijk or a buurt code",
        json_schema_extra=_codes(ALL, *WIJK_CODES, *(b.code for b in geo.buurten())),
    ),
]
WijkQuery = Annotated[str | None, Query(json_schema_extra=_codes(*WIJK_CODES))]
WijkPath = Annotated[str, PathParam(json_schema_extra=_codes(*WIJK_CODES))]
NOT_A_WIJK: dict[int | str, dict[str, object]] = {
    404: {"description": "Not a wijk of Haarlem", **PROBLEM}
}


def _check_area(code: str) -> str:
    if code == ALL or code in geo.wijk_names():
        return code
    try:
        geo.buurt(code)
    except KeyError as exc:
        raise Problem(422, "invalid-area", "Unknown area", exc.args[0]) from None
    return code


def _check_category(code: str) -> str:
    if code in (ALL, stats.UNKNOWN) or code in taxonomy().category_codes:
        return code
    raise Problem(
        422, "invalid-category", "Unknown category", f"{code!r} is not a category code or *"
    )


# --- incidents --------------------------------------------------------------------------------


class AreaCount(BaseModel):
    code: str
    name: str
    wijk: str | None
    count: Count


class AreaCounts(BaseModel):
    period: str
    level: Literal["wijk", "buurt"]
    category: str
    exact: bool
    total: Count
    areas: list[AreaCount]


def area_rows(cube: Cube, level: str, category: str, period: str) -> list[AreaCount]:
    """Every wijk or buurt of Haarlem (zeros too), then the unknown areas that have counts."""
    if level == "wijk":
        rows = [
            AreaCount(code=code, name=name, wijk=code, count=cube.shown(code, category, period))
            for code, name in geo.wijk_names().items()
        ]
        unknown = [(stats.UNKNOWN, None)]
    else:
        rows = [
            AreaCount(
                code=b.code,
                name=b.name,
                wijk=b.wijk_code,
                count=cube.shown(b.code, category, period),
            )
            for b in geo.buurten()
        ]
        unknown = [(f"{w}:{stats.UNKNOWN}", w) for w in geo.wijk_names()]
        unknown.append((stats.UNKNOWN, None))
    for code, wijk in unknown:
        count = cube.shown(code, category, period)
        if count != 0:
            rows.append(AreaCount(code=code, name="onbekend", wijk=wijk, count=count))
    return rows


@router.get("/incidents/areas", response_model=AreaCounts, summary="Incidents per wijk or buurt")
async def incidents_by_area(
    rt: Rt,
    staff: StaffMember,
    period: PeriodText = None,
    level: Literal["wijk", "buurt"] = "wijk",
    category: CategoryCode = ALL,
) -> AreaCounts:
    """Incidents that happened in the period, per area, for one category or all (`*`)."""
    return await area_counts(rt, staff, "incidents", period, level, _check_category(category))


async def area_counts(
    rt: Runtime,
    staff: Staff,
    family: str,
    period: str | None,
    level: Literal["wijk", "buurt"],
    category: str,
) -> AreaCounts:
    """One cube family's counts per area, for one category or all (`*`)."""
    when = period_for(staff, period)
    async with rt.pool.acquire() as conn:
        cube = await stats.cube(conn, family, when, exact=exact_for(staff))
    return AreaCounts(
        period=when.label,
        level=level,
        category=category,
        exact=exact_for(staff),
        total=cube.shown(ALL, category, when.label),
        areas=area_rows(cube, level, category, when.label),
    )


@router.get(
    "/zorgsignalen/areas", response_model=AreaCounts, summary="Zorgsignalen per wijk or buurt"
)
async def zorgsignalen_by_area(
    rt: Rt,
    staff: StaffMember,
    period: PeriodText = None,
    level: Literal["wijk", "buurt"] = "wijk",
) -> AreaCounts:
    """Prevention signals (care-relevant reports coming back to one spot) raised in the
    period, per area; suppressed like every count."""
    return await area_counts(rt, staff, "zorgsignalen", period, level, ZORGSIGNAAL)


class HicMonth(BaseModel):
    month: str
    count: Count
    year_before: Count
    """The same month a year earlier."""
    trend_percent: float | None
    """Change against the year before; None when either count is hidden or zero before."""


class HicArea(BaseModel):
    code: str
    name: str
    months: list[HicMonth]


class HicView(BaseModel):
    """High impact crimes per wijk per month against the same month a year earlier."""

    period: str
    exact: bool
    categories: list[str]
    city: HicArea
    wijken: list[HicArea]


@router.get("/hic", response_model=HicView, summary="High impact crimes against a year before")
async def high_impact_crimes(rt: Rt, staff: StaffMember, period: PeriodText = None) -> HicView:
    """Incidents of the high impact crime categories (the taxonomy's ``hic``) that happened
    in each month of a calendar period, per wijk and for the city, each against the same
    month a year earlier; suppressed like every count."""
    when = period_for(staff, period)
    if not when.calendar_year:
        raise Problem(422, "invalid-period", "Invalid period", "give YYYY, YYYY-Qn or YYYY-MM")
    year_before = stats.parse_period(str(when.calendar_year - 1), bounded=False)
    exact = exact_for(staff)
    async with rt.pool.acquire() as conn:
        cube = await stats.cube(conn, "hic", when, exact=exact)
        earlier = await stats.cube(conn, "hic", year_before, exact=exact)

    def area(code: str, name: str) -> HicArea:
        months = []
        for month in stats.months_in(when):
            before = f"{when.calendar_year - 1}{month[4:]}"
            months.append(
                HicMonth(
                    month=month,
                    count=cube.shown(code, ALL, month),
                    year_before=earlier.shown(code, ALL, before),
                    trend_percent=_trend(
                        cube.known(code, ALL, month), earlier.known(code, ALL, before)
                    ),
                )
            )
        return HicArea(code=code, name=name, months=months)

    return HicView(
        period=when.label,
        exact=exact,
        categories=list(stats.HIC_CATEGORIES),
        city=area(ALL, "Haarlem"),
        wijken=[area(code, name) for code, name in geo.wijk_names().items()],
    )


class CategoryCount(BaseModel):
    code: str
    label: str
    count: Count


class CategoryCounts(BaseModel):
    period: str
    area: str
    exact: bool
    total: Count
    categories: list[CategoryCount]


def category_rows(cube: Cube, area: str, period: str) -> list[CategoryCount]:
    rows = [
        CategoryCount(code=c.code, label=c.label_nl, count=cube.shown(area, c.code, period))
        for c in taxonomy().categories
    ]
    unknown = cube.shown(area, stats.UNKNOWN, period)
    if unknown != 0:
        rows.append(CategoryCount(code=stats.UNKNOWN, label="nog niet bepaald", count=unknown))
    return rows


@router.get(
    "/incidents/categories", response_model=CategoryCounts, summary="Incidents per category"
)
async def incidents_by_category(
    rt: Rt, staff: StaffMember, period: PeriodText = None, area: AreaCode = ALL
) -> CategoryCounts:
    """Incidents that happened in the period in one area (city `*`, a wijk or a buurt)."""
    when = period_for(staff, period)
    area = _check_area(area)
    async with rt.pool.acquire() as conn:
        cube = await stats.cube(conn, "incidents", when, exact=exact_for(staff))
    return CategoryCounts(
        period=when.label,
        area=area,
        exact=exact_for(staff),
        total=cube.shown(area, ALL, when.label),
        categories=category_rows(cube, area, when.label),
    )


class Point(BaseModel):
    label: str
    count: Count
    start: datetime | None = None
    """Where an hour, day or week begins."""


class Series(BaseModel):
    title: str
    points: list[Point]


DAYS = ("ma", "di", "wo", "do", "vr", "za", "zo")
STEP_TITLES = {"hour": "uur", "day": "dag", "week": "week", "month": "maand"}


def _series(title: str, step: str, found: list[tuple[datetime, int]]) -> Series:
    def label(start: datetime) -> str:
        local = start.astimezone(AMSTERDAM)
        if step == "hour":
            return f"{local:%H}"
        if step == "week":
            return f"{local:%G-W%V}"
        return f"{DAYS[local.weekday()]} {local:%d}"

    return Series(title=title, points=[Point(label=label(t), count=n, start=t) for t, n in found])


@router.get("/incidents/series", response_model=Series, summary="Incidents over time")
async def incidents_series(
    rt: Rt,
    staff: StaffMember,
    period: PeriodText = None,
    step: Literal["month", "week", "day", "hour"] = "month",
    area: AreaCode = ALL,
    category: CategoryCode = ALL,
) -> Series:
    """Incidents per month of a calendar period (every role), or per local hour, day or ISO
    week of any period (ops only: finer buckets of small areas are mostly small counts)."""
    when = period_for(staff, period)
    area, category = _check_area(area), _check_category(category)
    title = f"Incidenten per {STEP_TITLES[step]}, {when.label}"
    async with rt.pool.acquire() as conn:
        if step == "month":
            if not when.calendar:
                raise Problem(
                    422, "invalid-period", "Invalid period", "months need YYYY, YYYY-Qn or YYYY-MM"
                )
            cube = await stats.cube(conn, "incidents", when, exact=exact_for(staff))
            points = [
                Point(label=m, count=cube.shown(area, category, m)) for m in stats.months_in(when)
            ]
            return Series(title=title, points=points)
        if not exact_for(staff):
            raise Problem(403, "forbidden", "Not allowed", "hours, days and weeks: ops only")
        found = await stats.incident_series(conn, step, when, area, category)
    return _series(title, step, found)


# --- response times, backlog, SLA, deliveries, partners -----------------------------------------


class Distribution(BaseModel):
    n: int | Literal["<5", ">=5"]
    p50: float | None
    p90: float | None
    p99: float | None


class ResponseTimes(BaseModel):
    period: str
    wijk: str | None
    category: str | None
    exact: bool
    seconds: dict[str, Distribution]
    """From receipt of the report to triage, first delivery, acknowledgement, resolution."""


async def response_times_for(
    rt: Runtime, staff: Staff, when: stats.Period, wijk: str | None, category: str | None
) -> ResponseTimes:
    async with rt.pool.acquire() as conn:
        found = await stats.response_times(conn, when, wijk=wijk, category=category)
    exact = exact_for(staff)
    return ResponseTimes(
        period=when.label,
        wijk=wijk,
        category=category,
        exact=exact,
        seconds={
            name: Distribution(**stats.shown_distribution(d, exact=exact))
            for name, d in found.items()
        },
    )


@router.get("/response-times", response_model=ResponseTimes, summary="Response times")
async def response_times(
    rt: Rt,
    staff: StaffMember,
    period: PeriodText = None,
    wijk: WijkQuery = None,
    category: Annotated[str | None, CATEGORY] = None,
) -> ResponseTimes:
    """p50/p90/p99 in seconds for incidents received in the period (optionally one wijk or
    category). Outside ops, fewer than 5 incidents give no percentiles."""
    when = period_for(staff, period)
    if wijk is not None:
        _check_area(wijk)
    if category is not None:
        _check_category(category)
    return await response_times_for(rt, staff, when, wijk, category)


class Breakdown(BaseModel):
    total: Count
    parts: dict[str, Count]


def breakdown(cube: Cube, keys: list[str], *fixed: str, at: int = 0) -> Breakdown:
    """One dimension of a cube (position ``at``) with the others fixed, and its total."""

    def key(value: str) -> tuple[str, ...]:
        return (*fixed[:at], value, *fixed[at:])

    return Breakdown(total=cube.shown(*key(ALL)), parts={k: cube.shown(*key(k)) for k in keys})


PRIORITIES = ["P1", "P2", "P3", "P4"]
STATUSES = ["reported", "triaged", "acknowledged", "in_progress", "on_hold", "reopened"]


class Backlog(BaseModel):
    exact: bool
    by_priority: Breakdown
    by_status: Breakdown


async def backlog_for(rt: Runtime, staff: Staff) -> Backlog:
    async with rt.pool.acquire() as conn:
        cube = await stats.backlog(conn, exact=exact_for(staff))
    return Backlog(
        exact=exact_for(staff),
        by_priority=breakdown(cube, [*PRIORITIES, stats.UNKNOWN], ALL, at=0),
        by_status=breakdown(cube, STATUSES, ALL, at=1),
    )


@router.get("/backlog", response_model=Backlog, summary="Open incidents now")
async def backlog(rt: Rt, staff: StaffMember) -> Backlog:
    """Open incidents (not resolved, cancelled or merged) by priority and by status."""
    return await backlog_for(rt, staff)


class Sla(BaseModel):
    period: str
    exact: bool
    breached: dict[str, Breakdown]
    """Incidents of the period that missed the acknowledge / handle deadline, by priority."""
    at_risk: dict[str, Breakdown]
    """Open incidents now with under a quarter of their time left, by priority."""


async def sla_for(rt: Runtime, staff: Staff, when: stats.Period) -> Sla:
    exact = exact_for(staff)
    async with rt.pool.acquire() as conn:
        breached = await stats.cube(conn, "sla", when, exact=exact)
        risk = await stats.at_risk(conn, exact=exact)
    kinds = ("acknowledge", "handle")
    return Sla(
        period=when.label,
        exact=exact,
        breached={k: breakdown(breached, PRIORITIES, k, when.label, at=1) for k in kinds},
        at_risk={k: breakdown(risk, PRIORITIES, k, at=1) for k in kinds},
    )


@router.get("/sla", response_model=Sla, summary="SLA breaches and incidents at risk")
async def sla(rt: Rt, staff: StaffMember, period: PeriodText = None) -> Sla:
    return await sla_for(rt, staff, period_for(staff, period))


OUTCOMES = ["dispatched", "delivered", "failed", "failed_final", "escalated", "acknowledged"]


class Deliveries(BaseModel):
    period: str
    exact: bool
    outcomes: Breakdown
    recipients: dict[str, Breakdown]


@router.get("/deliveries", response_model=Deliveries, summary="Notifications by recipient")
async def deliveries(rt: Rt, staff: StaffMember, period: PeriodText = None) -> Deliveries:
    """Notification events in the period by recipient and outcome (failed: an attempt failed;
    failed_final: given up)."""
    when = period_for(staff, period)
    async with rt.pool.acquire() as conn:
        cube = await stats.cube(conn, "deliveries", when, exact=exact_for(staff))
    recipients = sorted({key[0] for key in cube.cells if key[0] != ALL})
    return Deliveries(
        period=when.label,
        exact=exact_for(staff),
        outcomes=breakdown(cube, OUTCOMES, ALL, when.label, at=1),
        recipients={r: breakdown(cube, OUTCOMES, r, when.label, at=1) for r in recipients},
    )


class Volumes(BaseModel):
    period: str
    exact: bool
    partners: Breakdown
    """Reports received per partner system (duplicates included: each is a report)."""
    duplicates_merged: Count


@router.get("/partners", response_model=Volumes, summary="Reports per partner, duplicates")
async def partners(rt: Rt, staff: StaffMember, period: PeriodText = None) -> Volumes:
    when = period_for(staff, period)
    exact = exact_for(staff)
    async with rt.pool.acquire() as conn:
        cube = await stats.cube(conn, "partners", when, exact=exact)
        merged = await stats.cube(conn, "duplicates", when, exact=exact)
    codes = sorted({key[0] for key in cube.cells if key[0] != ALL})
    return Volumes(
        period=when.label,
        exact=exact,
        partners=breakdown(cube, codes, when.label, at=0),
        duplicates_merged=merged.shown(when.label),
    )


# --- the live overview ------------------------------------------------------------------------


class TopicRate(BaseModel):
    topic: str
    messages: int
    per_second: float | None


class Lag(BaseModel):
    group: str
    topic: str
    partition: int
    lag: int


class Overview(BaseModel):
    at: datetime
    role: str
    exact: bool
    kafka_error: str | None
    throughput: list[TopicRate]
    throughput_history: list[dict[str, float]]
    lag: list[Lag]
    backlog: Backlog
    sla: Sla
    deliveries_period: str
    deliveries: Breakdown
    series: list[Series]


async def overview_for(rt: Runtime, staff: Staff) -> Overview:
    """The dashboard's live numbers. Kafka numbers are technical (messages, not people) and
    exact for every role; the rest follows the role's suppression."""
    exact = exact_for(staff)
    now = datetime.now(UTC)
    # Ops watch the last 24 hours; other roles the current calendar month.
    window = stats.parse_period("24h", now) if exact else stats.current_month(now)
    monitor: KafkaMonitor | None = rt.extras.get(MONITOR)
    snapshot = monitor.latest if monitor else None
    async with rt.pool.acquire() as conn:
        delivered = await stats.cube(conn, "deliveries", window, exact=exact)
        if exact:
            series = []
            for step, span, title in (("hour", "24h", "24 uur"), ("day", "7d", "7 dagen")):
                found = await stats.incident_series(conn, step, stats.parse_period(span, now))
                series.append(
                    _series(f"Incidenten per {STEP_TITLES[step]}, laatste {title}", step, found)
                )
        else:
            year = stats.parse_period(str(now.astimezone(AMSTERDAM).year))
            cube = await stats.cube(conn, "incidents", year, exact=False)
            series = [
                Series(
                    title=f"Incidenten per maand, {year.label}",
                    points=[
                        Point(label=m[5:], count=cube.shown(ALL, ALL, m))
                        for m in stats.months_in(year)
                    ],
                )
            ]
    return Overview(
        at=now,
        role=staff.role,
        exact=exact,
        kafka_error=snapshot.error if snapshot else "not sampled yet",
        throughput=[
            TopicRate(topic=t, messages=n, per_second=snapshot.per_second.get(t))
            for t, n in (snapshot.messages.items() if snapshot else ())
        ],
        throughput_history=[rates for _, rates in monitor.history] if monitor else [],
        lag=[
            Lag(group=p.group, topic=p.topic, partition=p.partition, lag=p.lag)
            for p in (snapshot.lag if snapshot else ())
        ],
        backlog=await backlog_for(rt, staff),
        sla=await sla_for(rt, staff, window),
        deliveries_period=window.label,
        deliveries=breakdown(delivered, OUTCOMES, ALL, window.label, at=1),
        series=series,
    )


@router.get("/overview", response_model=Overview, summary="The dashboard's live numbers")
async def overview(rt: Rt, staff: StaffMember) -> Overview:
    return await overview_for(rt, staff)


@router.get(
    "/overview/stream",
    summary="The live numbers as server-sent events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`overview` events"}},
)
async def overview_stream(request: Request, rt: Rt, staff: StaffMember) -> StreamingResponse:
    """An `overview` event (the body of `GET /v1/overview`) every 2 seconds."""

    async def events() -> AsyncIterator[str]:
        while not rt.stopping.is_set() and not await request.is_disconnected():
            body = await overview_for(rt, staff)
            yield f"event: overview\ndata: {body.model_dump_json()}\n\n"
            await asyncio.sleep(STREAM_EVERY)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- the wijk report --------------------------------------------------------------------------


class CategoryTrend(BaseModel):
    code: str
    label: str
    count: Count
    previous: Count
    trend_percent: float | None
    """Change against the previous period; None when either count is hidden or zero before."""


class PlanPriority(BaseModel):
    """How one priority of the wijk's safety plan is being handled."""

    code: str
    label: str
    count: Count
    """Incidents that happened in the report's period."""
    previous: Count
    """Incidents that happened in the previous period."""
    acknowledge: Distribution
    """Seconds from receipt to acknowledgement (p50 is the median), incidents received in
    the period."""
    handle: Distribution
    """Seconds from receipt to resolution (p50 is the median), incidents received in the
    period."""
    open: Count
    """Incidents of the category in the wijk that are open now."""


class PlanSection(BaseModel):
    """The wijk's safety plan (wijkveiligheidsplan) and its priorities."""

    categories: list[str]
    starts_on: date
    ends_on: date | None
    adopted_by: str
    adopted_on: date
    runs_today: bool
    priorities: list[PlanPriority]


class WijkReport(BaseModel):
    wijk: str
    name: str
    period: str
    previous_period: str
    exact: bool
    total: Count
    previous_total: Count
    categories: list[CategoryTrend]
    top_buurten: list[AreaCount]
    response_times: ResponseTimes
    plan: PlanSection | None
    """None when the wijk has no safety plan."""
    zorgsignalen: Count
    """Prevention signals raised in the wijk in the period."""


def _trend(now: int | None, before: int | None) -> float | None:
    if now is None or before is None or before == 0:
        return None
    return round(100 * (now - before) / before, 1)


async def wijk_report(rt: Runtime, staff: Staff, wijk: str, period: str | None) -> WijkReport:
    names = geo.wijk_names()
    if wijk not in names:
        raise Problem(404, "not-found", "Not found", f"{wijk!r} is not a wijk of Haarlem")
    when = period_for(staff, period)
    before = when.previous()
    exact = exact_for(staff)
    async with rt.pool.acquire() as conn:
        cube = await stats.cube(conn, "incidents", when, exact=exact)
        earlier = await stats.cube(conn, "incidents", before, exact=exact)
    categories = [
        CategoryTrend(
            code=c.code,
            label=c.label_nl,
            count=cube.shown(wijk, c.code, when.label),
            previous=earlier.shown(wijk, c.code, before.label),
            trend_percent=_trend(
                cube.known(wijk, c.code, when.label), earlier.known(wijk, c.code, before.label)
            ),
        )
        for c in taxonomy().categories
    ]
    async with rt.pool.acquire() as conn:
        plan = await plan_section(conn, staff, wijk, when, cube, earlier)
        signals = await stats.cube(conn, "zorgsignalen", when, exact=exact)
    buurten = [b for b in area_rows(cube, "buurt", ALL, when.label) if b.wijk == wijk]
    # Hidden counts sort last, by code: their order must not hint at their size.
    buurten.sort(key=lambda b: (-b.count, b.code) if isinstance(b.count, int) else (1, b.code))
    return WijkReport(
        wijk=wijk,
        name=names[wijk],
        period=when.label,
        previous_period=before.label,
        exact=exact,
        total=cube.shown(wijk, ALL, when.label),
        previous_total=earlier.shown(wijk, ALL, before.label),
        categories=categories,
        top_buurten=[b for b in buurten if b.count != 0][:5],
        response_times=await response_times_for(rt, staff, when, wijk, None),
        plan=plan,
        zorgsignalen=signals.shown(wijk, ALL, when.label),
    )


async def plan_section(
    conn: asyncpg.Connection,
    staff: Staff,
    wijk: str,
    when: stats.Period,
    cube: Cube,
    earlier: Cube,
) -> PlanSection | None:
    """Per priority of the wijk's plan: incidents this period and the previous one (from the
    report's cubes), median times to acknowledge and to handle, and the open ones now; every
    number suppressed as the rest of the report is."""
    plan = await plans.plan_of(conn, wijk)
    if plan is None:
        return None
    exact = exact_for(staff)
    opened = await stats.open_by_area(conn, exact=exact)
    priorities = []
    for code in plan.categories:
        times = await stats.response_times(conn, when, wijk=wijk, category=code)
        priorities.append(
            PlanPriority(
                code=code,
                label=taxonomy().category(code).label_nl,
                count=cube.shown(wijk, code, when.label),
                previous=earlier.shown(wijk, code, when.previous().label),
                acknowledge=Distribution(
                    **stats.shown_distribution(times["acknowledgement"], exact=exact)
                ),
                handle=Distribution(**stats.shown_distribution(times["resolution"], exact=exact)),
                open=opened.shown(wijk, code),
            )
        )
    return PlanSection(
        categories=list(plan.categories),
        starts_on=plan.starts_on,
        ends_on=plan.ends_on,
        adopted_by=plan.adopted_by,
        adopted_on=plan.adopted_on,
        runs_today=plan.runs_on(datetime.now(AMSTERDAM).date()),
        priorities=priorities,
    )


CSV_COLUMNS = [
    "section",
    "code",
    "name",
    "count",
    "previous",
    "trend_percent",
    "p50_s",
    "p90_s",
    "p99_s",
]


def report_csv(report: WijkReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerow(["total", report.wijk, report.name, report.total, report.previous_total])
    for c in report.categories:
        writer.writerow(["category", c.code, c.label, c.count, c.previous, c.trend_percent])
    for b in report.top_buurten:
        writer.writerow(["top_buurt", b.code, b.name, b.count])
    for name, d in report.response_times.seconds.items():
        writer.writerow(["response_time", name, f"n={d.n}", "", "", "", d.p50, d.p90, d.p99])
    writer.writerow(["zorgsignalen", report.wijk, report.name, report.zorgsignalen])
    for p in report.plan.priorities if report.plan else ():
        writer.writerow(["plan_priority", p.code, p.label, p.count, p.previous])
        for name, d in (("acknowledge", p.acknowledge), ("handle", p.handle)):
            writer.writerow([f"plan_{name}", p.code, f"n={d.n}", "", "", "", d.p50, d.p90, d.p99])
        writer.writerow(["plan_open", p.code, p.label, p.open])
    return out.getvalue()


@router.get(
    "/reports/wijk/{wijk}.csv",
    summary="Wijk report as CSV",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The report as CSV"},
        **NOT_A_WIJK,
    },
)
async def wijk_report_csv(
    wijk: WijkPath, rt: Rt, staff: StaffMember, period: PeriodText = None
) -> Response:
    report = await wijk_report(rt, staff, wijk, period)
    return Response(
        report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="wijkrapport-{wijk}-{report.period}.csv"'
        },
    )


# After the .csv route: {wijk} would match 'WK039201.csv' too.
@router.get(
    "/reports/wijk/{wijk}", response_model=WijkReport, summary="Wijk report", responses=NOT_A_WIJK
)
async def wijk_report_json(
    wijk: WijkPath, rt: Rt, staff: StaffMember, period: PeriodText = None
) -> WijkReport:
    """For a wijk safety plan: counts per category with the trend against the previous
    period, the top buurten and the response times. Also as CSV (`.csv`) and as a printable
    page (`/reports/wijk/{wijk}`)."""
    return await wijk_report(rt, staff, wijk, period)
