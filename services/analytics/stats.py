"""The numbers: counts, backlog, SLA, deliveries and response times, read from the facts.

Every count is a cube (see :mod:`services.analytics.suppression`) built from one query. For a
calendar period (``2025``, ``2025-Q1``, ``2025-03``) the cube always spans the whole calendar
year, month by month with quarter and year totals, so every view of that year, for every
role, is cut from the same cube and suppression is the same in all of them. Rolling windows
(``24h``, ``7d``, ``30d``) and arbitrary days are exact numbers for the ``ops`` role only:
overlapping windows could be subtracted from each other.

Counts are by when an incident happened (``occurred_at``, local time Europe/Amsterdam): that
is what a wijk safety plan is about. Response times run from when intake received the report.
A duplicate merged into another incident is not an incident of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import asyncpg

from schemas.taxonomy import taxonomy
from schemas.timeutil import AMSTERDAM
from services.analytics.suppression import ALL, Cube, Dimension, Key, Shown, flat

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
_CALENDAR = re.compile(r"^(\d{4})(?:-(?:Q([1-4])|(0[1-9]|1[0-2])))?$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
CLOSED = ("resolved", "cancelled", "merged")
UNKNOWN = "?"


class PeriodError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Period:
    """A span of time [start, end) in UTC, as named by its label."""

    label: str
    start: datetime
    end: datetime
    calendar_year: int | None
    """The calendar year for a month, quarter or year; None for a window or a day."""

    @property
    def calendar(self) -> bool:
        return self.calendar_year is not None

    def previous(self) -> Period:
        """The period just before, of the same kind (for trends)."""
        if self.calendar_year is None:
            span = self.end - self.start
            return Period(f"previous {self.label}", self.start - span, self.start, None)
        year, quarter, month = _parts(self.label)
        # Unbounded (here and in _time): the year before the first a client may ask for
        # (1900) is still a period.
        if month:
            return parse_period(f"{year - (month == 1)}-{(month - 2) % 12 + 1:02d}", bounded=False)
        if quarter:
            return parse_period(f"{year - (quarter == 1)}-Q{(quarter - 2) % 4 + 1}", bounded=False)
        return parse_period(str(year - 1), bounded=False)


def _parts(label: str) -> tuple[int, int | None, int | None]:
    match = _CALENDAR.match(label)
    assert match is not None
    return int(match[1]), int(match[2]) if match[2] else None, int(match[3]) if match[3] else None


def _local(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=AMSTERDAM).astimezone(UTC)


FIRST_YEAR, LAST_YEAR = 1900, 2999  # beyond them the calendar arithmetic overflows


def parse_period(text: str, now: datetime | None = None, *, bounded: bool = True) -> Period:
    """``2025`` | ``2025-Q1`` | ``2025-03`` (calendar, local time), ``2025-03-28`` (a day),
    or ``24h`` | ``7d`` | ``30d`` (ending now). ``bounded``: the year within
    FIRST_YEAR..LAST_YEAR, as asked of a client."""
    if text in WINDOWS:
        end = now or datetime.now(UTC)
        return Period(text, end - WINDOWS[text], end, None)
    if match := _DAY.match(text):
        if not FIRST_YEAR <= int(match[1]) <= LAST_YEAR:
            raise PeriodError(f"{text!r}: the year must be within {FIRST_YEAR}..{LAST_YEAR}")
        try:
            start = datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=AMSTERDAM)
        except ValueError as exc:
            raise PeriodError(f"{text!r}: {exc}") from None
        end = (start + timedelta(days=1)).replace(tzinfo=AMSTERDAM)  # wall-clock midnight
        return Period(text, start.astimezone(UTC), end.astimezone(UTC), None)
    if not _CALENDAR.match(text):
        raise PeriodError(
            f"{text!r} is not a period: YYYY, YYYY-Qn, YYYY-MM, YYYY-MM-DD, 24h, 7d or 30d"
        )
    year, quarter, month = _parts(text)
    if bounded and not FIRST_YEAR <= year <= LAST_YEAR:
        raise PeriodError(f"{text!r}: the year must be within {FIRST_YEAR}..{LAST_YEAR}")
    if month:
        first, months = month, 1
    elif quarter:
        first, months = 3 * quarter - 2, 3
    else:
        first, months = 1, 12
    last = first + months
    end = _local(year + 1, 1) if last > 12 else _local(year, last)
    return Period(text, _local(year, first), end, year)


def current_month(now: datetime | None = None) -> Period:
    local = (now or datetime.now(UTC)).astimezone(AMSTERDAM)
    return parse_period(f"{local.year}-{local.month:02d}")


# --- dimensions ---------------------------------------------------------------------------


def _area_parent(code: str) -> str | None:
    # buurt BU03920102 -> wijk WK039201 -> city; an unknown buurt of a wijk and an unknown
    # area sit under their wijk and the city, so every total is exactly its children's sum.
    if code == ALL:
        return None
    if code.startswith("BU"):
        return f"WK{code[2:8]}"
    if code.endswith(f":{UNKNOWN}"):
        return code.split(":")[0]
    return ALL


def _month_parent(label: str) -> str | None:
    year, quarter, month = _parts(label)
    if month:
        return f"{year}-Q{(month - 1) // 3 + 1}"
    return str(year) if quarter else None


AREA = Dimension("area", _area_parent)
CATEGORY = flat("category")
CALENDAR = Dimension("period", _month_parent)
WINDOW = Dimension("period", lambda _label: None)


def _time(period: Period) -> tuple[datetime, datetime, Dimension]:
    if period.calendar_year is None:
        return period.start, period.end, WINDOW
    year = parse_period(str(period.calendar_year), bounded=False)
    return year.start, year.end, CALENDAR


def _bucket(period: Period) -> str:
    """SQL for the base time key of a row: its month for calendar cubes, else the label."""
    if period.calendar:
        return "to_char(occurred_at AT TIME ZONE 'Europe/Amsterdam', 'YYYY-MM')"
    return "$3::text"


async def _cube(
    conn: asyncpg.Connection,
    sql: str,
    period: Period,
    dimensions: tuple[Dimension, ...],
    *,
    exact: bool,
) -> Cube:
    start, end, time = _time(period)
    args: list[Any] = [start, end] + ([] if period.calendar else [period.label])
    rows = await conn.fetch(sql, *args)
    return _built(frozenset((tuple(row[:-1]), row[-1]) for row in rows), (*dimensions, time), exact)


@lru_cache(maxsize=16)
def _built(
    base: frozenset[tuple[Key, int]], dimensions: tuple[Dimension, ...], exact: bool
) -> Cube:
    """A cube per distinct content: suppression takes a second on a year of Haarlem, while
    every dashboard refresh asks again for the same, mostly unchanged, numbers."""
    return Cube.build(dict(base), dimensions, exact=exact)


# Each cube query returns the base keys (text) and a count, for [$1, $2).
_INCIDENTS = """
SELECT coalesce(buurt, wijk || ':?', '?'), coalesce(category, '?'), {bucket}, count(*)
FROM incident_facts
WHERE merged_into IS NULL AND occurred_at >= $1 AND occurred_at < $2
GROUP BY 1, 2, 3
"""
_DELIVERIES = """
SELECT recipient, outcome, {bucket}, count(*)
FROM events
WHERE type LIKE 'notification.%' AND occurred_at >= $1 AND occurred_at < $2
GROUP BY 1, 2, 3
"""
_PARTNERS = """
SELECT coalesce(partner, '?'), {bucket}, count(*)
FROM incident_facts
WHERE occurred_at >= $1 AND occurred_at < $2
GROUP BY 1, 2
"""
_DUPLICATES = """
SELECT {bucket}, count(*)
FROM events
WHERE type = 'incident.merged' AND occurred_at >= $1 AND occurred_at < $2
GROUP BY 1
"""
# High impact crimes (the taxonomy's hic categories) by area, one constant category: the
# programme's yardstick, compared month by month with the year before.
HIC_CATEGORIES = tuple(c.code for c in taxonomy().categories if c.hic)
if not all(re.fullmatch(r"[a-z0-9.-]+", code) for code in HIC_CATEGORIES):
    raise ValueError(f"hic category codes are written into SQL: {HIC_CATEGORIES}")
_HIC = f"""
SELECT coalesce(buurt, wijk || ':?', '?'), 'hic', {{bucket}}, count(*)
FROM incident_facts
WHERE merged_into IS NULL AND category IN ({", ".join(f"'{c}'" for c in HIC_CATEGORIES)})
  AND occurred_at >= $1 AND occurred_at < $2
GROUP BY 1, 2, 3
"""  # noqa: S608 (taxonomy codes, checked above)
# Prevention signals raised, by area (one constant category, so the incidents' views fit).
_ZORGSIGNALEN = """
SELECT coalesce(buurt, wijk || ':?', '?'), 'zorgsignaal', {bucket}, count(*)
FROM events
WHERE type = 'incident.zorgsignaal-raised' AND occurred_at >= $1 AND occurred_at < $2
GROUP BY 1, 2, 3
"""
# Open: not resolved, cancelled or merged. An open incident past its deadline is breached
# now; a closed one was breached if it closed (or was acknowledged) after the deadline.
_OPEN = "status NOT IN ('resolved', 'cancelled', 'merged')"
_ACK_BREACHED = (
    f"acknowledge_by < coalesce(acknowledged_at, resolved_at, CASE WHEN {_OPEN} THEN now() END)"
)
_HANDLE_BREACHED = f"handle_by < coalesce(resolved_at, CASE WHEN {_OPEN} THEN now() END)"
_SLA = f"""
SELECT kind, coalesce(priority, '?'), {{bucket}}, count(*)
FROM incident_facts,
     LATERAL (VALUES ('acknowledge', {_ACK_BREACHED}), ('handle', {_HANDLE_BREACHED}))
         AS sla(kind, breached)
WHERE merged_into IS NULL AND breached AND occurred_at >= $1 AND occurred_at < $2
GROUP BY 1, 2, 3
"""  # noqa: S608 (constant fragments)

PRIORITY, KIND = flat("priority"), flat("kind")
FAMILIES: dict[str, tuple[str, tuple[Dimension, ...]]] = {
    "incidents": (_INCIDENTS, (AREA, CATEGORY)),
    "deliveries": (_DELIVERIES, (flat("recipient"), flat("outcome"))),
    "partners": (_PARTNERS, (flat("partner"),)),
    "duplicates": (_DUPLICATES, ()),
    "sla": (_SLA, (KIND, PRIORITY)),
    "zorgsignalen": (_ZORGSIGNALEN, (AREA, CATEGORY)),
    "hic": (_HIC, (AREA, CATEGORY)),
}
BACKLOG = (PRIORITY, flat("status"))
AT_RISK = (KIND, PRIORITY)


async def cube(conn: asyncpg.Connection, family: str, period: Period, *, exact: bool) -> Cube:
    """The cube of ``family`` that holds ``period`` (its calendar year, or the window)."""
    sql, dimensions = FAMILIES[family]
    return await _cube(conn, sql.format(bucket=_bucket(period)), period, dimensions, exact=exact)


# --- snapshots (now) ----------------------------------------------------------------------

_BACKLOG = f"""
SELECT coalesce(priority, '?'), status, count(*)
FROM incident_facts WHERE {_OPEN} AND merged_into IS NULL
GROUP BY 1, 2
"""  # noqa: S608 (constant fragments)
# At risk: open, not yet past the deadline, and less than a quarter of the time allowed left.
_AT_RISK = f"""
SELECT kind, coalesce(priority, '?'), count(*)
FROM incident_facts,
     LATERAL (VALUES ('acknowledge', acknowledge_by, acknowledged_at),
                     ('handle', handle_by, resolved_at)) AS d(kind, deadline, done)
WHERE {_OPEN} AND merged_into IS NULL AND done IS NULL AND deadline > now()
  AND now() > received_at + 0.75 * (deadline - received_at)
GROUP BY 1, 2
"""  # noqa: S608 (constant fragments)


# Open incidents by area and category: what a wijk's plan priorities still have open.
_OPEN_BY_AREA = f"""
SELECT coalesce(buurt, wijk || ':?', '?'), coalesce(category, '?'), count(*)
FROM incident_facts WHERE {_OPEN} AND merged_into IS NULL
GROUP BY 1, 2
"""  # noqa: S608 (constant fragments)


async def _snapshot(
    conn: asyncpg.Connection, sql: str, dimensions: tuple[Dimension, ...], *, exact: bool
) -> Cube:
    rows = await conn.fetch(sql)
    return _built(frozenset(((r[0], r[1]), r[2]) for r in rows), dimensions, exact)


async def backlog(conn: asyncpg.Connection, *, exact: bool) -> Cube:
    """Open incidents by priority and status, now."""
    return await _snapshot(conn, _BACKLOG, BACKLOG, exact=exact)


async def at_risk(conn: asyncpg.Connection, *, exact: bool) -> Cube:
    """Open incidents close to their acknowledge or handle deadline, by priority, now."""
    return await _snapshot(conn, _AT_RISK, AT_RISK, exact=exact)


async def open_by_area(conn: asyncpg.Connection, *, exact: bool) -> Cube:
    """Open incidents by area (buurt, wijk, city) and category, now."""
    return await _snapshot(conn, _OPEN_BY_AREA, (AREA, CATEGORY), exact=exact)


# --- response times -------------------------------------------------------------------------

MEASURES = {
    "triage": "triaged_at",
    "first_delivery": "first_delivered_at",
    "acknowledgement": "acknowledged_at",
    "resolution": "resolved_at",
}
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class Distribution:
    n: int
    seconds: tuple[float, float, float] | None  # p50, p90, p99


async def response_times(
    conn: asyncpg.Connection,
    period: Period,
    *,
    wijk: str | None = None,
    category: str | None = None,
) -> dict[str, Distribution]:
    """Time from receipt to triage, first delivery, acknowledgement and resolution, for the
    incidents received in ``period`` (p50, p90, p99 in seconds; continuous percentiles)."""
    parts = []
    for column in MEASURES.values():
        seconds = f"extract(epoch FROM {column} - received_at)"
        parts.append(f"count({column})")
        parts.append(f"percentile_cont(ARRAY{list(QUANTILES)}) WITHIN GROUP (ORDER BY {seconds})")
    row = await conn.fetchrow(
        f"SELECT {', '.join(parts)} FROM incident_facts "  # noqa: S608 (fixed columns)
        "WHERE merged_into IS NULL AND received_at >= $1 AND received_at < $2 "
        "AND ($3::text IS NULL OR wijk = $3) AND ($4::text IS NULL OR category = $4)",
        period.start,
        period.end,
        wijk,
        category,
    )
    assert row is not None
    result = {}
    for i, name in enumerate(MEASURES):
        n, quantiles = row[2 * i], row[2 * i + 1]
        result[name] = Distribution(n, tuple(quantiles) if n else None)  # type: ignore[arg-type]
    return result


def shown_distribution(d: Distribution, *, exact: bool) -> dict[str, Shown | float | None]:
    """A distribution as a role may see it: outside ops, percentiles of fewer than 5
    incidents would show single incidents' times, and the exact n could unlock a hidden
    count, so n is a band."""
    p50, p90, p99 = d.seconds or (None, None, None)
    if exact:
        return {"n": d.n, "p50": p50, "p90": p90, "p99": p99}
    if d.n < 5:
        return {"n": "<5" if d.n else 0, "p50": None, "p90": None, "p99": None}
    return {"n": ">=5", "p50": p50, "p90": p90, "p99": p99}


# --- series for the dashboard ---------------------------------------------------------------


STEPS = ("hour", "day", "week")


def bucket_starts(step: str, period: Period) -> list[datetime]:
    """The local hours, days or ISO weeks that overlap ``period``."""
    if step == "hour":  # Amsterdam's offsets are whole hours: local hours are UTC hours
        hour = period.start.replace(minute=0, second=0, microsecond=0)
        count = -(-(period.end - hour) // timedelta(hours=1))
        return [hour + timedelta(hours=i) for i in range(count)]
    day = period.start.astimezone(AMSTERDAM).date()
    if step == "week":
        day -= timedelta(days=day.weekday())
    starts = []
    # Local midnights, made per date so a daylight-saving night is still one bucket.
    while (start := datetime.combine(day, datetime.min.time(), tzinfo=AMSTERDAM)) < period.end:
        starts.append(start)
        day += timedelta(days=7 if step == "week" else 1)
    return starts


async def incident_series(
    conn: asyncpg.Connection, step: str, period: Period, area: str = ALL, category: str = ALL
) -> list[tuple[datetime, int]]:
    """Incidents per local hour, day or week overlapping ``period``, each bucket counted
    whole, for an area (city, wijk or buurt) and a category (exact: the ops role only)."""
    starts = bucket_starts(step, period)
    rows = await conn.fetch(
        "SELECT date_trunc($1, occurred_at, 'Europe/Amsterdam'), count(*) FROM incident_facts "
        "WHERE merged_into IS NULL AND occurred_at >= $2 AND occurred_at < $3 "
        "AND ($4 = '*' OR wijk = $4 OR buurt = $4) AND ($5 = '*' OR coalesce(category, '?') = $5) "
        "GROUP BY 1",
        step,
        starts[0],
        period.end,
        area,
        category,
    )
    counts = {r[0]: r[1] for r in rows}
    return [(start, counts.get(start, 0)) for start in starts]


def months_in(period: Period) -> list[str]:
    """The months of a calendar period, as ``YYYY-MM``."""
    year, quarter, month = _parts(period.label)
    if month:
        return [period.label]
    months = range(3 * quarter - 2, 3 * quarter + 1) if quarter else range(1, 13)
    return [f"{year}-{m:02d}" for m in months]
