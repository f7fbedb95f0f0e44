"""Working days, SLA deadlines and nightlife hours in Europe/Amsterdam, across DST switches."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import holidays
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.timeutil import (
    AMSTERDAM,
    add_working_days,
    deadlines,
    is_nightlife,
    is_working_day,
)

YEARS = range(2000, 2061)
# An independent oracle: numpy's business-day calendar with the library's holiday dates.
_HOLIDAYS = list(holidays.country_holidays("NL", years=range(YEARS.start, YEARS.stop + 1)))


def _working_days_between(start: date, end: date) -> int:
    """Working days d with start < d <= end."""
    return int(
        np.busday_count(start + timedelta(days=1), end + timedelta(days=1), holidays=_HOLIDAYS)
    )


def _last_sunday(year: int, month: int) -> date:
    day = date(year, month, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def _local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMSTERDAM)


MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 12, 1), timezones=st.just(UTC)
)
# Friday 00:00 local before a DST switch, plus up to four days: the switch night inside.
DST_MOMENTS = st.builds(
    lambda year, month, offset: (
        datetime.combine(
            _last_sunday(year, month) - timedelta(days=2), time(0), tzinfo=AMSTERDAM
        ).astimezone(UTC)
        + offset
    ),
    st.sampled_from(YEARS),
    st.sampled_from([3, 10]),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4)),
)


@settings(max_examples=150, deadline=None)
@given(start=MOMENTS | DST_MOMENTS, days=st.integers(0, 15))
def test_add_working_days_matches_a_business_day_calendar(start: datetime, days: int) -> None:
    result = add_working_days(start, days)
    assert result.tzinfo is UTC
    local_start, local_result = start.astimezone(AMSTERDAM), result.astimezone(AMSTERDAM)
    assert is_working_day(local_result.date())
    if is_working_day(local_start.date()):
        assert _working_days_between(local_start.date(), local_result.date()) == days
        # The local wall-clock time is kept, whatever the clocks did in between.
        assert local_result.time() == local_start.time()
    else:
        # Counted from 00:00 of the next working day.
        assert _working_days_between(local_start.date(), local_result.date()) == days + 1
        assert local_result.time() == time(0)


@settings(max_examples=100, deadline=None)
@given(reported=MOMENTS | DST_MOMENTS)
def test_deadlines_in_minutes_and_hours_are_elapsed_time(reported: datetime) -> None:
    p1_ack, p1_handle = deadlines("P1", reported)
    p2_ack, p2_handle = deadlines("P2", reported)
    p3_ack, _ = deadlines("P3", reported)
    assert (p1_ack - reported, p1_handle - reported) == (timedelta(minutes=2), timedelta(hours=1))
    assert (p2_ack - reported, p2_handle - reported) == (timedelta(minutes=15), timedelta(hours=8))
    assert p3_ack - reported == timedelta(hours=2)
    for priority in ("P1", "P2", "P3", "P4"):
        ack, handle = deadlines(priority, reported)
        assert reported < ack < handle
        assert ack.tzinfo is UTC and handle.tzinfo is UTC


@settings(max_examples=100, deadline=None)
@given(reported=MOMENTS | DST_MOMENTS)
def test_working_day_deadlines(reported: datetime) -> None:
    _, p3_handle = deadlines("P3", reported)
    p4_ack, p4_handle = deadlines("P4", reported)
    assert p3_handle == add_working_days(reported, 3)
    assert (p4_ack, p4_handle) == (add_working_days(reported, 1), add_working_days(reported, 10))


def test_spring_forward_keeps_wall_clock_for_working_days() -> None:
    # Friday 28 March 2025 10:00 CET; the clocks go forward on Sunday 30 March.
    monday = add_working_days(_local(2025, 3, 28, 10, 0), 1)
    assert monday == _local(2025, 3, 31, 10, 0)
    assert monday - _local(2025, 3, 28, 10, 0) == timedelta(hours=71)


def test_fall_back_keeps_wall_clock_for_working_days() -> None:
    monday = add_working_days(_local(2025, 10, 24, 10, 0), 1)
    assert monday == _local(2025, 10, 27, 10, 0)
    assert monday - _local(2025, 10, 24, 10, 0) == timedelta(hours=73)


def test_a_p1_during_the_switch_gets_sixty_real_minutes() -> None:
    reported = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # 01:30 CET, before 02:00 -> 03:00
    _, handle_by = deadlines("P1", reported)
    assert handle_by.astimezone(AMSTERDAM).isoformat() == "2025-03-30T03:30:00+02:00"


def test_holidays_and_weekends_are_skipped() -> None:
    # Thursday 24 April 2025 + 2 working days: Friday, (King's Day is Saturday) Monday.
    assert add_working_days(_local(2025, 4, 24, 9, 0), 2) == _local(2025, 4, 28, 9, 0)
    # Christmas 2024: Tue 24 Dec + 1 -> Fri 27 Dec (25 and 26 are holidays).
    assert add_working_days(_local(2024, 12, 24, 16, 0), 1) == _local(2024, 12, 27, 16, 0)
    # A Saturday report: one working day is the whole Monday.
    assert add_working_days(_local(2025, 5, 10, 14, 0), 1) == _local(2025, 5, 13, 0, 0)
    assert not is_working_day(date(2025, 5, 29))  # Ascension Day


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deadlines("P1", datetime(2025, 1, 1, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        is_nightlife(datetime(2025, 1, 1, 23, 0))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (_local(2025, 5, 9, 23, 0), True),  # Friday night
        (_local(2025, 5, 10, 4, 59), True),  # still Friday's night
        (_local(2025, 5, 10, 5, 0), False),  # Saturday morning
        (_local(2025, 5, 10, 21, 59), False),
        (_local(2025, 5, 10, 22, 0), True),  # Saturday night
        (_local(2025, 5, 8, 22, 30), True),  # Thursday night
        (_local(2025, 5, 7, 23, 0), False),  # Wednesday night
        (_local(2025, 5, 11, 23, 0), False),  # Sunday night
        (_local(2025, 5, 28, 23, 0), True),  # Wednesday before Ascension Day
        (_local(2026, 4, 26, 23, 0), True),  # King's Night 2026 (a Sunday)
        (_local(2026, 4, 27, 3, 0), True),  # still King's Night
        (_local(2024, 12, 24, 23, 0), True),  # Christmas Eve
        (_local(2025, 12, 31, 23, 30), True),  # New Year's Eve
        (datetime(2025, 3, 30, 2, 30, tzinfo=UTC), True),  # 04:30 CEST after spring-forward
        (datetime(2025, 3, 30, 3, 0, tzinfo=UTC), False),  # 05:00 CEST
        (datetime(2025, 10, 26, 3, 30, tzinfo=UTC), True),  # 04:30 CET after fall-back
    ],
)
def test_nightlife_hours(moment: datetime, expected: bool) -> None:
    assert is_nightlife(moment) is expected
