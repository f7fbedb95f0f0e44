"""The pure parts of feedback to the reporting partner: cursors, bounded dates, Open311's
window, the withdrawal event and the workflow's withdraw action."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from schemas.disclosure import minimise
from schemas.events import IncidentStatusChanged, IncidentWithdrawalRequested
from schemas.examples import EXAMPLES
from services.intake.feedback import (
    CURSOR_PATTERN,
    WITHDRAWN_NOTE,
    BadCursor,
    Position,
    bounded_moment,
    clamped_moment,
    decode_cursor,
    encode_cursor,
    open311_window,
)
from services.intake.handlers import _public
from services.triage.workflow import ACTIONS, IllegalAction, check_action

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_cursor_round_trips_to_the_microsecond() -> None:
    position = Position(datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC), uuid4())
    cursor = encode_cursor(position)
    assert decode_cursor(cursor) == position
    assert re.fullmatch(CURSOR_PATTERN, cursor)  # what the OpenAPI document promises
    # ... and every string of that pattern is a position: no schema-valid cursor is refused.
    assert decode_cursor("0_" + "0" * 32) == Position(datetime(1970, 1, 1, tzinfo=UTC), UUID(int=0))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "bm90LWEtY3Vyc29y",  # base64 of something else
        "@@@",
        _b64(b"[1, 2]"),
        _b64(b'["2026-11-24T09:00:00", "5f0c2a8e-3c1b-4e7a-9d2f-0a1b2c3d4e5f"]'),  # naive
        _b64(b'["2026-11-24T09:00:00+00:00", "not-a-uuid"]'),
        _b64(b'{"a": 1}'),
        _b64(b"\xff\xfe"),
        "1732442400123456_5F0C2A8E3C1B4E7A9D2F0A1B2C3D4E5F",  # upper-case hex
        "123456789012345678_5f0c2a8e3c1b4e7a9d2f0a1b2c3d4e5f",  # beyond year 5138
        "1732442400123456-5f0c2a8e3c1b4e7a9d2f0a1b2c3d4e5f",
    ],
)
def test_a_cursor_not_made_here_is_refused(cursor: str) -> None:
    with pytest.raises(BadCursor, match="not a cursor of this API"):
        decode_cursor(cursor)


def test_dates_are_bounded() -> None:
    assert bounded_moment("since", NOW, NOW) == NOW
    plus_one = timezone(timedelta(hours=1))
    assert bounded_moment("since", datetime(2026, 11, 24, 10, tzinfo=plus_one), NOW) == datetime(
        2026, 11, 24, 9, tzinfo=UTC
    )
    for moment, reason in (
        (datetime(2026, 11, 24, 10), "needs a time zone"),
        (datetime(1, 1, 1, tzinfo=plus_one), "before 2000"),  # cannot even be converted
        (datetime(1999, 12, 31, tzinfo=UTC), "before 2000"),
        (NOW + timedelta(seconds=1), "in the future"),
    ):
        with pytest.raises(ValueError, match=reason):
            bounded_moment("since", moment, NOW)


def test_a_lower_bound_is_clamped_from_2000_on() -> None:
    plus_one, minus_five = timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))
    assert clamped_moment(datetime(2026, 11, 24, 10, tzinfo=plus_one)) == datetime(
        2026, 11, 24, 9, tzinfo=UTC
    )
    assert clamped_moment(datetime(1999, 12, 31, tzinfo=UTC)) == datetime(2000, 1, 1, tzinfo=UTC)
    assert clamped_moment(datetime(1, 1, 1, tzinfo=plus_one)) == datetime(2000, 1, 1, tzinfo=UTC)
    far = clamped_moment(datetime(9999, 12, 31, 23, tzinfo=minus_five))
    assert far == datetime.max.replace(tzinfo=UTC)


def test_the_open311_window_defaults_to_the_last_90_days() -> None:
    window = open311_window(None, None, NOW)
    assert (window.start, window.end) == (NOW - timedelta(days=90), NOW)
    start = NOW - timedelta(days=10)
    assert open311_window(start, None, NOW).end == NOW  # never past now
    old = NOW - timedelta(days=200)
    assert open311_window(old, None, NOW).end == old + timedelta(days=90)
    assert open311_window(None, old, NOW).start == old - timedelta(days=90)
    end_of_today = NOW + timedelta(hours=11)
    assert open311_window(start, end_of_today, NOW).end == end_of_today


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (NOW - timedelta(days=91), NOW, "at most 90 days"),
        (NOW, NOW - timedelta(days=1), "end_date must be after start_date"),
        (None, NOW + timedelta(days=2), "end_date is in the future"),
        (datetime(2026, 1, 1), None, "start_date needs a time zone"),
        (datetime(1990, 1, 1, tzinfo=UTC), None, "start_date is before 2000"),
    ],
)
def test_a_bad_open311_window_says_why(
    start: datetime | None, end: datetime | None, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        open311_window(start, end, NOW)


def test_the_withdrawal_event_carries_a_reason_that_coarse_recipients_never_see() -> None:
    example = EXAMPLES[IncidentWithdrawalRequested]
    assert example.producer == "intake"
    coarse = minimise(example, "coarse")
    assert "reason" not in coarse and "partner" not in coarse and "external_id" not in coarse
    assert minimise(example, "operational")["reason"] == example.reason
    fields = example.model_dump()
    for bad in ({"reason": ""}, {"reason": "x" * 1001}, {"producer": "notify"}):
        with pytest.raises(ValidationError):
            IncidentWithdrawalRequested.model_validate({**fields, **bad})


def test_only_an_open_incident_can_be_withdrawn() -> None:
    assert set(ACTIONS["withdraw"]) == {
        "reported",
        "triaged",
        "acknowledged",
        "in_progress",
        "on_hold",
        "reopened",
    }
    assert check_action("withdraw", "in_progress") == "cancelled"
    for closed in ("resolved", "merged", "cancelled"):
        with pytest.raises(IllegalAction, match=f"cannot withdraw an incident that is {closed}"):
            check_action("withdraw", closed)


def test_the_partner_reads_a_cancellation_as_its_own_withdrawal() -> None:
    cancelled = IncidentStatusChanged.model_validate(
        {
            **EXAMPLES[IncidentStatusChanged].model_dump(),
            "new_status": "cancelled",
            "reason": "Bewoner was zelf de sleutel kwijt",
            "actor": "partner:politie",
        }
    )
    # The public note is fixed text: never the actor, never internal reasons.
    assert _public(cancelled) == ("cancelled", WITHDRAWN_NOTE)
