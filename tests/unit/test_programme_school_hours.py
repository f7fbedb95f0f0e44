"""School hours as data, the schools' routing rule, and the chains ending at the duty officer."""

from __future__ import annotations

from datetime import datetime

import pytest
from typer.testing import CliRunner

from schemas.events import Flags
from schemas.taxonomy import DEFAULT_PATH, Profile, TaxonomyError, parse_taxonomy, taxonomy
from schemas.timeutil import AMSTERDAM, is_school_hours
from services.cli import app
from services.notify.registry import registry
from services.triage.routing import RoutingInput, RoutingResult, load_routes

OUDE_STAD = "WK039201"


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=AMSTERDAM)  # type: ignore[misc]


def test_school_hours_are_data_in_the_taxonomy() -> None:
    hours = taxonomy().school_hours
    assert hours.days == ("monday", "tuesday", "wednesday", "thursday", "friday")
    assert (hours.starts.isoformat(), hours.ends.isoformat()) == ("08:00:00", "17:00:00")
    assert hours.public_holidays is False


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (local(2026, 11, 24, 10, 0), True),  # Tuesday morning
        (local(2026, 11, 23, 8, 0), True),  # Monday, the first minute
        (local(2026, 11, 23, 7, 59), False),
        (local(2026, 11, 27, 16, 59), True),  # Friday, the last minute
        (local(2026, 11, 27, 17, 0), False),
        (local(2026, 11, 28, 10, 0), False),  # Saturday
        (local(2026, 11, 22, 10, 0), False),  # Sunday
        (local(2026, 4, 27, 10, 0), False),  # King's Day, a Monday
        (local(2026, 5, 14, 10, 0), False),  # Ascension Day, a Thursday
        (local(2026, 12, 25, 10, 0), False),  # Christmas, a Friday
        (local(2026, 3, 30, 8, 30), True),  # the Monday after the clocks went forward
        (datetime.fromisoformat("2026-11-24T09:30:00+00:00"), True),  # 10:30 in Haarlem
        (datetime.fromisoformat("2026-11-24T16:30:00+00:00"), False),  # 17:30 in Haarlem
    ],
)
def test_is_school_hours(moment: datetime, expected: bool) -> None:
    assert is_school_hours(moment) is expected


def test_school_hours_must_end_after_they_start() -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    broken = text.replace(
        '  starts: "08:00"\n  ends: "17:00"', '  starts: "17:00"\n  ends: "08:00"'
    )
    assert broken != text
    with pytest.raises(TaxonomyError, match=r"school_hours: .*end after they start"):
        parse_taxonomy(broken)


def route(category: str, at: datetime, wijk: str | None = OUDE_STAD) -> RoutingResult:
    return load_routes().route(
        RoutingInput(
            category=category,
            priority=taxonomy().category(category).default_priority,
            wijk_code=wijk,
            flags=Flags(),
            at=at,
        )
    )


@pytest.mark.parametrize("category", ["jeugdoverlast", "jeugdcriminaliteit"])
def test_youth_incidents_in_school_hours_reach_the_wijks_schools_coarsely(category: str) -> None:
    result = route(category, local(2026, 11, 24, 10, 0))
    assert (f"scholen.{OUDE_STAD}", Profile.COARSE) in [
        (r.code, r.profile) for r in result.recipients
    ]
    (rule,) = [e for e in result.trace if e.rule == "scholen-jeugd"]
    assert rule.matched and rule.continued
    assert "school hours: yes (wanted yes)" in rule.why
    # The taxonomy's own recipients still follow.
    assert f"politie.wijkagent.{OUDE_STAD}" in [r.code for r in result.recipients]


@pytest.mark.parametrize(
    ("category", "at"),
    [
        ("jeugdoverlast", local(2026, 11, 22, 10, 0)),  # Sunday
        ("jeugdoverlast", local(2026, 11, 24, 20, 0)),  # Tuesday evening
        ("jeugdoverlast", local(2026, 12, 25, 10, 0)),  # Christmas
        ("vandalisme", local(2026, 11, 24, 10, 0)),  # not a youth incident
    ],
)
def test_otherwise_the_schools_are_not_told(category: str, at: datetime) -> None:
    assert not [r for r in route(category, at).recipients if r.code.startswith("scholen.")]


def test_without_a_wijk_there_are_no_schools_to_tell() -> None:
    result = route("jeugdoverlast", local(2026, 11, 24, 10, 0), wijk=None)
    assert not [r for r in result.recipients if r.code.startswith("scholen.")]
    assert "scholen.{wijk}: dropped, no wijk known" in [n for e in result.trace for n in e.notes]


def test_routes_test_shows_the_schools_rule() -> None:
    result = CliRunner().invoke(
        app,
        [
            "routes",
            "test",
            "--category",
            "jeugdoverlast",
            "--wijk",
            OUDE_STAD,
            "--at",
            "2026-11-24T10:00",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert (
        "  [3] scholen-jeugd: MATCH, continue: category jeugdoverlast matches jeugdoverlast, "
        in ("\n".join(lines))
    )
    assert "        + scholen.WK039201 (coarse)" in lines


def test_the_duty_officer_ends_the_police_chains_and_is_full_profile() -> None:
    assert taxonomy().recipient_profile("politie.ovd") is Profile.FULL
    assert taxonomy().recipient_profile("scholen.WK039214") is Profile.COARSE
    reg = registry()
    for code in ("politie.wijkagent.WK039201", "politie.meldkamer", "brandweer", "jeugd.team"):
        assert reg.chain(code, wijk="WK039201")[-1] == "politie.ovd", code
    assert reg.entry("politie.ovd").acknowledges
    assert reg.entry("politie.ovd").format == "cap"
    assert not reg.entry("scholen.WK039214").acknowledges
