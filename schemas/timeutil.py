"""Time rules of the platform: working days, SLA deadlines, nightlife and school hours.

All local reasoning is in Europe/Amsterdam wall-clock time; every result is an aware UTC
datetime. Minutes and hours are elapsed time (a 1-hour deadline is 60 real minutes, also on
the night the clocks change); working days keep the local wall-clock time (reported Friday
10:00, three working days later is Wednesday 10:00 local, whatever the clocks did in between).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from schemas.taxonomy import WEEKDAYS, Priority, Window, taxonomy

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

# The library extends itself to any year asked for; no hand-kept list of dates.
_DUTCH_HOLIDAYS = holidays.country_holidays("NL")


def _aware(dt: datetime, name: str = "datetime") -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {dt.isoformat()}")
    return dt


def is_public_holiday(day: date) -> bool:
    """A Dutch public holiday (``holidays`` library, category public)."""
    return day in _DUTCH_HOLIDAYS


@lru_cache(maxsize=4096)
def is_working_day(day: date) -> bool:
    """Monday to Friday and not a Dutch public holiday (remembered: every deadline of every
    report asks about the same few days)."""
    return day.weekday() < 5 and not is_public_holiday(day)


def _local(day: date, wall: time) -> datetime:
    # Through UTC so a wall time in the spring-forward gap lands on a real instant.
    return datetime.combine(day, wall, tzinfo=AMSTERDAM).astimezone(UTC)


def add_working_days(start: datetime, days: int) -> datetime:
    """``days`` working days after ``start``, at the same local wall-clock time.

    A start outside a working day counts from 00:00 of the next working day, so "one working
    day" after a Saturday report is the end of Monday (Tuesday 00:00).
    """
    if days < 0:
        raise ValueError("days must be >= 0")
    local = _aware(start, "start").astimezone(AMSTERDAM)
    day, wall = local.date(), local.timetz().replace(tzinfo=None)
    if not is_working_day(day):
        day, wall = _next_working_day(day), time(0, 0)
    for _ in range(days):
        day = _next_working_day(day)
    return _local(day, wall)


@lru_cache(maxsize=4096)
def _next_working_day(day: date) -> date:
    day += timedelta(days=1)
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def add_window(start: datetime, window: Window) -> datetime:
    """``start`` plus a taxonomy time window, as aware UTC."""
    start = _aware(start, "start").astimezone(UTC)
    match window.unit:
        case "minutes":
            return start + timedelta(minutes=window.amount)
        case "hours":
            return start + timedelta(hours=window.amount)
        case "working_days":
            return add_working_days(start, window.amount)


def deadlines(priority: Priority, reported_at: datetime) -> tuple[datetime, datetime]:
    """(acknowledge_by, handle_by) for an incident of ``priority`` reported at ``reported_at``."""
    level = taxonomy().priority(priority)
    return (
        add_window(reported_at, level.acknowledge_within),
        add_window(reported_at, level.handle_within),
    )


def is_nightlife(dt: datetime) -> bool:
    """Whether ``dt`` falls in nightlife hours (taxonomy ``nightlife``), Europe/Amsterdam.

    A night belongs to the evening it starts on; nights before public holidays count when the
    taxonomy says so (King's Night is the night before King's Day).
    """
    rule = taxonomy().nightlife
    local = _aware(dt).astimezone(AMSTERDAM)
    wall = local.time()
    if rule.starts <= rule.ends:
        night = local.date() if rule.starts <= wall < rule.ends else None
    elif wall >= rule.starts:
        night = local.date()
    elif wall < rule.ends:
        night = local.date() - timedelta(days=1)
    else:
        night = None
    if night is None:
        return False
    if WEEKDAYS[night.weekday()] in rule.nights:
        return True
    return rule.nights_before_public_holidays and is_public_holiday(night + timedelta(days=1))


def is_school_hours(dt: datetime) -> bool:
    """Whether ``dt`` falls in school hours (taxonomy ``school_hours``), Europe/Amsterdam
    wall-clock time: a listed weekday, from ``starts`` up to ``ends``, and not a public
    holiday (unless the taxonomy says holidays count)."""
    rule = taxonomy().school_hours
    local = _aware(dt).astimezone(AMSTERDAM)
    if WEEKDAYS[local.weekday()] not in rule.days:
        return False
    if not rule.public_holidays and is_public_holiday(local.date()):
        return False
    return rule.starts <= local.time() < rule.ends


def floor_quarter_hour(dt: datetime) -> datetime:
    """``dt`` rounded down to the quarter hour, in UTC (coarse recipients see no finer time).

    Amsterdam's offsets are whole hours, so the quarter is the same in local time.
    """
    dt = _aware(dt).astimezone(UTC)
    return dt.replace(minute=dt.minute - dt.minute % 15, second=0, microsecond=0)
