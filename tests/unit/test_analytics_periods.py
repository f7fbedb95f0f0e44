"""Periods of analytics: calendar months, quarters and years in Haarlem's local time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.timeutil import AMSTERDAM
from services.analytics.stats import PeriodError, bucket_starts, parse_period


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_calendar_periods_start_at_local_midnight() -> None:
    march = parse_period("2025-03")
    assert (march.start, march.end) == (utc(2025, 2, 28, 23), utc(2025, 3, 31, 22))  # DST
    assert march.calendar_year == 2025 and march.calendar
    q2 = parse_period("2025-Q2")
    assert (q2.start, q2.end) == (utc(2025, 3, 31, 22), utc(2025, 6, 30, 22))
    year = parse_period("2025")
    assert (year.start, year.end) == (utc(2024, 12, 31, 23), utc(2025, 12, 31, 23))


def test_the_previous_period_is_of_the_same_kind() -> None:
    assert parse_period("2025-01").previous().label == "2024-12"
    assert parse_period("2025-07").previous().label == "2025-06"
    assert parse_period("2025-Q1").previous().label == "2024-Q4"
    assert parse_period("2025").previous().label == "2024"


def test_windows_and_days_are_not_calendar_periods() -> None:
    now = utc(2025, 3, 30, 12)
    window = parse_period("7d", now)
    assert (window.end - window.start).days == 7 and not window.calendar
    day = parse_period("2025-03-30")  # the night the clocks go forward: 23 hours
    assert (day.end - day.start).total_seconds() == 23 * 3600 and not day.calendar


@pytest.mark.parametrize("text", ["2025-13", "2025-Q5", "last week", "2025-02-30", ""])
def test_other_text_is_no_period(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_period(text)


def test_buckets_are_local_hours_days_and_iso_weeks() -> None:
    spring = parse_period("2025-03-30")  # 23 hours
    assert len(bucket_starts("hour", spring)) == 23
    march = parse_period("2025-03")
    days = bucket_starts("day", march)
    assert len(days) == 31 and days[0] == utc(2025, 2, 28, 23) and days[-1] == utc(2025, 3, 30, 22)
    weeks = bucket_starts("week", march)  # 1 March 2025 is a Saturday: its week counts whole
    assert weeks[0] == utc(2025, 2, 23, 23) and len(weeks) == 6
    assert all(w.astimezone(AMSTERDAM).weekday() == 0 for w in weeks)


@pytest.mark.parametrize(
    ("text", "before"), [("1900", "1899"), ("1900-01", "1899-12"), ("1900-Q1", "1899-Q4")]
)
def test_the_first_year_a_client_may_ask_for_has_a_previous_period(text: str, before: str) -> None:
    """The wijk report compares with the period before (found by schemathesis: a 500)."""
    assert parse_period(text).previous().label == before
    with pytest.raises(PeriodError):
        parse_period(before)
