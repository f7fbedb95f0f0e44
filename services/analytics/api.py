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
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from schemas import geo
from schemas.taxonomy import taxonomy
from schemas.timeutil import AMSTERDAM
from services.analytics import stats
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
PeriodText = Annotated[
    str | None,
    Query(
        alias="period",
        description="YYYY, YYYY-Qn or YYYY-MM (calendar, Europe/Amsterdam; default: this "
        "month); ops only: YYYY-MM-DD, 24h, 7d, 30d",
    ),
]
Count = int | Literal["<5", "x"]


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


@cache
def wijk_names() -> dict[str, str]:
    """Haarlem's wijken by code."""
    return dict(sorted({b.wijk_code: b.wijk_name for b in geo.buurten()}.items()))


def _check_area(code: str) -> str:
    if code == ALL or code in wijk_names():
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
            for code, name in wijk_names().items()
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
        unknown = [(f"{w}:{stats.UNKNOWN}", w) for w in wijk_names()]
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
    category: str = ALL,
) -> AreaCounts:
    """Incidents that happened in the period, per area, for one category or all (`*`)."""
    when = period_for(staff, period)
    category = _check_category(category)
    async with rt.pool.acquire() as conn:
        cube = await stats.cube(conn, "incidents", when, exact=exact_for(staff))
    return AreaCounts(
        period=when.label,
        level=level,
        category=category,
        exact=exact_for(staff),
        total=cube.shown(ALL, category, when.label),
        areas=area_rows(cube, level, category, when.label),
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
    rt: Rt, staff: StaffMember, period: PeriodText = None, area: str = ALL
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
    area: str = ALL,
    category: str = ALL,
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
    wijk: str | None = None,
    category: str | None = None,
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


def _trend(now: int | None, before: int | None) -> float | None:
    if now is None or before is None or before == 0:
        return None
    return round(100 * (now - before) / before, 1)


async def wijk_report(rt: Runtime, staff: Staff, wijk: str, period: str | None) -> WijkReport:
    names = wijk_names()
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
    return out.getvalue()


@router.get(
    "/reports/wijk/{wijk}.csv",
    summary="Wijk report as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The report as CSV"}},
)
async def wijk_report_csv(
    wijk: str, rt: Rt, staff: StaffMember, period: PeriodText = None
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
@router.get("/reports/wijk/{wijk}", response_model=WijkReport, summary="Wijk report")
async def wijk_report_json(
    wijk: str, rt: Rt, staff: StaffMember, period: PeriodText = None
) -> WijkReport:
    """For a wijk safety plan: counts per category with the trend against the previous
    period, the top buurten and the response times. Also as CSV (`.csv`) and as a printable
    page (`/reports/wijk/{wijk}`)."""
    return await wijk_report(rt, staff, wijk, period)
