"""Routing rules: the shipped routes.yaml, matchers, DST nights, validation and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from types import EllipsisType
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from schemas.events import Flags, IncidentReported
from schemas.examples import EXAMPLES
from schemas.taxonomy import Priority, Profile, taxonomy
from schemas.timeutil import AMSTERDAM
from services.cli import app
from services.triage.routing import (
    DEFAULT_PATH,
    ConfigError,
    RoutingInput,
    RoutingResult,
    RoutingTable,
    load_routes,
    parse_routes,
)

OUDE_STAD = "WK039201"
BINNENSTAD = "BU03920102"  # a buurt of Oude Stad
AMSTERDAMSEWIJK = "WK039207"
ZIJLWEG = "WK039203"
ZIJLWEG_BUURT = "BU03920301"
SATURDAY_NIGHT = datetime(2026, 11, 28, 23, 30, tzinfo=AMSTERDAM)
TUESDAY_AFTERNOON = datetime(2026, 11, 24, 15, 0, tzinfo=AMSTERDAM)


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return load_routes()


def incident(
    category: str,
    *,
    at: datetime = TUESDAY_AFTERNOON,
    priority: Priority | EllipsisType | None = ...,
    wijk: str | None = None,
    buurt: str | None = None,
    source: str | None = None,
    partner: str | None = None,
    needs_review: bool = False,
    **flags: bool,
) -> RoutingInput:
    # The category's default priority unless given.
    if isinstance(priority, EllipsisType):
        priority = taxonomy().category(category).default_priority
    return RoutingInput(
        category=category,
        priority=priority,
        wijk_code=wijk,
        buurt_code=buurt,
        source=source,
        partner=partner,
        flags=Flags(**flags),
        at=at,
        needs_review=needs_review,
    )


def codes(result: RoutingResult) -> list[str]:
    return [r.code for r in result.recipients]


def matched(result: RoutingResult) -> list[str]:
    return [e.rule for e in result.trace if e.matched]


def notes(result: RoutingResult) -> list[str]:
    return [n for e in result.trace for n in e.notes]


def table_of(*rules: dict[str, Any]) -> RoutingTable:
    return parse_routes({"version": 1, "routes": list(rules)})


def problems(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_routes(data)
    return caught.value.problems


def one_rule_problems(rule: dict[str, Any]) -> list[str]:
    return problems({"version": 1, "routes": [{"name": "ok", "category_defaults": True}, rule]})


# --- the shipped rules: one test per rule and per brief point --------------------------------

# Every category with wijk, buurt and partner known, Tuesday afternoon (school hours), no flags.
DEFAULTS: dict[str, list[str]] = {
    "hic.woninginbraak": [f"buurtpreventie.{BINNENSTAD}", f"politie.wijkagent.{OUDE_STAD}"],
    "hic.overval": ["politie.meldkamer"],
    "hic.straatroof": ["politie.meldkamer"],
    "hic.geweld": ["politie.meldkamer"],
    "brand": ["brandweer", "politie.meldkamer"],
    "gevaarlijke-stoffen": ["brandweer"],
    "vpt": [f"politie.wijkagent.{OUDE_STAD}", "vpt.werkgever.spaarnelijn"],
    "uitgaansoverlast": ["handhaving"],
    "jeugdoverlast": [
        f"scholen.{OUDE_STAD}",
        f"politie.wijkagent.{OUDE_STAD}",
        "jeugd.team",
        f"buurtpapas.{OUDE_STAD}",
    ],
    "jeugdcriminaliteit": [f"scholen.{OUDE_STAD}", f"politie.wijkagent.{OUDE_STAD}", "jeugd.team"],
    "verward-gedrag": ["zorg.veiligheidshuis"],
    "drugsoverlast": [f"politie.wijkagent.{OUDE_STAD}", "handhaving"],
    "woonoverlast": ["handhaving", "zorg.veiligheidshuis"],
    "vandalisme": ["handhaving"],
    "verdachte-situatie": [f"politie.wijkagent.{OUDE_STAD}", f"buurtpreventie.{BINNENSTAD}"],
    "privacy.datalek": ["gemeente.fg", "gemeente.ciso"],
    "overig": [],
}


def test_the_table_covers_every_category() -> None:
    assert set(DEFAULTS) == set(taxonomy().category_codes)


@pytest.mark.parametrize("category", DEFAULTS)
def test_every_category_reaches_its_recipients_with_taxonomy_profiles(
    table: RoutingTable, category: str
) -> None:
    result = table.route(
        incident(category, wijk=OUDE_STAD, buurt=BINNENSTAD, partner="spaarnelijn")
    )
    assert codes(result) == DEFAULTS[category]
    for recipient in result.recipients:
        assert recipient.profile is taxonomy().recipient_profile(recipient.code)


def test_triage_queue_overig_reaches_nobody(table: RoutingTable) -> None:
    result = table.route(incident("overig", wijk=OUDE_STAD, weapon=True))
    assert result.recipients == ()
    assert matched(result) == ["triage-queue"]


def test_review_queue_holds_uncertain_p3_p4(table: RoutingTable) -> None:
    result = table.route(incident("vandalisme", wijk=OUDE_STAD, needs_review=True))
    assert result.recipients == ()
    assert matched(result) == ["review-queue"]


def test_review_queue_lets_uncertain_p1_through(table: RoutingTable) -> None:
    result = table.route(incident("brand", wijk=OUDE_STAD, needs_review=True))
    assert codes(result) == ["brandweer", "politie.meldkamer"]
    assert matched(result) == ["category-defaults"]


def test_burglary_alerts_buurtpreventie_coarse_and_continues_to_police(
    table: RoutingTable,
) -> None:
    result = table.route(
        incident("hic.woninginbraak", wijk=OUDE_STAD, buurt=BINNENSTAD, in_progress=True)
    )
    assert matched(result) == ["buurtpreventie-woninginbraak", "category-defaults"]
    assert result.trace[2].continued
    assert codes(result) == [
        f"buurtpreventie.{BINNENSTAD}",
        f"politie.wijkagent.{OUDE_STAD}",
        "politie.meldkamer",
    ]
    assert result.recipients[0].profile is Profile.COARSE


def test_shipped_rules_do_not_repeat_taxonomy_defaults(table: RoutingTable) -> None:
    for rule in table.rules:
        for category in taxonomy().categories:
            if rule.match.category and any(
                fnmatchcase(category.code, p) for p in rule.match.category
            ):
                assert not set(rule.recipients) & {r.code for r in category.recipients}, rule.name


# --- nightlife: SUS-team in the centre during nightlife hours, else enforcement --------------


def nightlife_recipients(table: RoutingTable, at: datetime, wijk: str = OUDE_STAD) -> list[str]:
    return codes(table.route(incident("uitgaansoverlast", at=at, wijk=wijk)))


def test_saturday_night_in_oude_stad_goes_to_the_sus_team(table: RoutingTable) -> None:
    result = table.route(incident("uitgaansoverlast", at=SATURDAY_NIGHT, wijk=OUDE_STAD))
    assert codes(result) == ["sus-team"]
    assert result.recipients[0].profile is Profile.OPERATIONAL
    assert "handhaving: skipped, unless nightlife_centre" in notes(result)


def test_tuesday_afternoon_in_oude_stad_goes_to_enforcement(table: RoutingTable) -> None:
    assert nightlife_recipients(table, TUESDAY_AFTERNOON) == ["handhaving"]


def test_saturday_night_in_another_wijk_goes_to_enforcement(table: RoutingTable) -> None:
    assert nightlife_recipients(table, SATURDAY_NIGHT, wijk=AMSTERDAMSEWIJK) == ["handhaving"]


def test_kings_night_is_a_nightlife_night(table: RoutingTable) -> None:
    # Sunday 26 April 2026, the night before King's Day; an ordinary Sunday night is not.
    assert nightlife_recipients(table, datetime(2026, 4, 26, 23, 30, tzinfo=AMSTERDAM)) == [
        "sus-team"
    ]
    assert nightlife_recipients(table, datetime(2026, 11, 29, 23, 30, tzinfo=AMSTERDAM)) == [
        "handhaving"
    ]


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET, so 02:30 local happens twice.
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "sus-team"),  # 02:30 CEST
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "sus-team"),  # 02:30 CET
        (datetime(2026, 10, 25, 3, 30, tzinfo=UTC), "sus-team"),  # 04:30 CET (05:30 in CEST)
        (datetime(2026, 10, 25, 3, 59, tzinfo=UTC), "sus-team"),  # 04:59 CET
        (datetime(2026, 10, 25, 4, 1, tzinfo=UTC), "handhaving"),  # 05:01 CET
        # Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST.
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "sus-team"),  # 01:59 CET
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "sus-team"),  # 03:00 CEST
        (datetime(2026, 3, 29, 2, 59, tzinfo=UTC), "sus-team"),  # 04:59 CEST
        (datetime(2026, 3, 29, 3, 1, tzinfo=UTC), "handhaving"),  # 05:01 CEST (04:01 in CET)
    ],
)
def test_nightlife_boundaries_on_dst_nights(
    table: RoutingTable, utc: datetime, expected: str
) -> None:
    assert nightlife_recipients(table, utc) == [expected]


def test_local_wall_clock_on_the_fall_back_sunday(table: RoutingTable) -> None:
    # The same instants written as local times: fold=1 is the second 02:30.
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=AMSTERDAM)
    assert second.astimezone(UTC).hour == 1
    assert nightlife_recipients(table, second) == ["sus-team"]
    assert nightlife_recipients(table, datetime(2026, 10, 25, 4, 59, tzinfo=AMSTERDAM)) == [
        "sus-team"
    ]
    assert nightlife_recipients(table, datetime(2026, 10, 25, 5, 1, tzinfo=AMSTERDAM)) == [
        "handhaving"
    ]


# --- care first, VPT, resident coordinators -------------------------------------------------


def test_confused_person_without_danger_reaches_only_care(table: RoutingTable) -> None:
    result = table.route(incident("verward-gedrag", wijk=OUDE_STAD, in_progress=True))
    assert codes(result) == ["zorg.veiligheidshuis"]
    assert "politie.meldkamer: skipped, needs danger" in notes(result)


@pytest.mark.parametrize("danger", ["weapon", "injuries"])
def test_confused_person_with_danger_also_reaches_the_control_room(
    table: RoutingTable, danger: str
) -> None:
    result = table.route(incident("verward-gedrag", wijk=OUDE_STAD, **{danger: True}))
    assert codes(result) == ["zorg.veiligheidshuis", "politie.meldkamer"]


def test_vpt_reaches_police_and_the_reporting_employer(table: RoutingTable) -> None:
    result = table.route(
        incident("vpt", wijk=ZIJLWEG, partner="spaarnelijn", source="ov", public_task_victim=True)
    )
    assert [(r.code, r.profile) for r in result.recipients] == [
        (f"politie.wijkagent.{ZIJLWEG}", Profile.FULL),
        ("vpt.werkgever.spaarnelijn", Profile.OPERATIONAL),
    ]


def test_vpt_in_progress_with_danger_also_reaches_the_control_room(table: RoutingTable) -> None:
    result = table.route(
        incident("vpt", wijk=ZIJLWEG, partner="mendel", in_progress=True, weapon=True)
    )
    assert codes(result) == [
        f"politie.wijkagent.{ZIJLWEG}",
        "politie.meldkamer",
        "vpt.werkgever.mendel",
    ]


def test_vpt_without_wijk_falls_back_to_the_control_room(table: RoutingTable) -> None:
    result = table.route(incident("vpt", partner="mendel"))
    assert codes(result) == ["vpt.werkgever.mendel", "politie.meldkamer"]
    assert "politie.wijkagent.{wijk}: dropped, no wijk known" in notes(result)
    assert any("fallback" in n for n in notes(result))


def test_vpt_without_partner_drops_the_employer(table: RoutingTable) -> None:
    result = table.route(incident("vpt", wijk=ZIJLWEG))
    assert codes(result) == [f"politie.wijkagent.{ZIJLWEG}"]
    assert "vpt.werkgever.{partner}: dropped, no partner known" in notes(result)


def test_suspicious_situation_reaches_the_buurt_coarsely(table: RoutingTable) -> None:
    result = table.route(incident("verdachte-situatie", wijk=ZIJLWEG, buurt=ZIJLWEG_BUURT))
    assert [(r.code, r.profile) for r in result.recipients] == [
        (f"politie.wijkagent.{ZIJLWEG}", Profile.FULL),
        (f"buurtpreventie.{ZIJLWEG_BUURT}", Profile.COARSE),
    ]


def test_youth_nuisance_reaches_the_buurtpapas_of_the_wijk(table: RoutingTable) -> None:
    result = table.route(incident("jeugdoverlast", wijk=ZIJLWEG))
    assert (f"buurtpapas.{ZIJLWEG}", Profile.COARSE) in [
        (r.code, r.profile) for r in result.recipients
    ]


# --- missing or foreign locations -------------------------------------------------------------


def test_burglary_without_wijk_falls_back_to_the_control_room(table: RoutingTable) -> None:
    result = table.route(incident("hic.woninginbraak"))
    assert codes(result) == ["politie.meldkamer"]
    assert "buurtpreventie.{buurt}: dropped, no buurt known" in notes(result)


def test_p3_without_location_reaches_nobody_and_says_why(table: RoutingTable) -> None:
    result = table.route(incident("verdachte-situatie"))
    assert result.recipients == ()
    assert notes(result) == [
        "politie.wijkagent.{wijk}: dropped, no wijk known",
        "buurtpreventie.{buurt}: dropped, no buurt known",
    ]


def test_a_location_outside_haarlem_drops_local_recipients(table: RoutingTable) -> None:
    # Heemstede (GM0397): the codes fill in but are no recipients of Haarlem.
    result = table.route(
        incident("hic.woninginbraak", wijk="WK039701", buurt="BU03970101", partner="politie")
    )
    assert codes(result) == ["politie.meldkamer"]
    assert "politie.wijkagent.WK039701: dropped, not a recipient (location outside Haarlem?)" in (
        notes(result)
    )


def test_input_of_a_reported_event() -> None:
    report = EXAMPLES[IncidentReported]
    assert isinstance(report, IncidentReported)
    routed = RoutingInput.of_report(
        report, category="hic.woninginbraak", priority="P1", source="police"
    )
    assert (routed.wijk_code, routed.buurt_code, routed.partner) == (
        OUDE_STAD,
        BINNENSTAD,
        "politie",
    )
    assert routed.flags.in_progress and routed.at == report.occurred_at
    assert codes(load_routes().route(routed)) == [
        f"buurtpreventie.{BINNENSTAD}",
        f"politie.wijkagent.{OUDE_STAD}",
        "politie.meldkamer",
    ]


def test_input_needs_an_aware_time_and_a_known_category() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        incident("vandalisme", at=datetime(2026, 11, 24, 15, 0))
    with pytest.raises(KeyError, match="unknown category"):
        incident("fietsendiefstal", priority="P4")


# --- rule semantics ---------------------------------------------------------------------------


def test_first_match_wins_and_continue_keeps_going() -> None:
    table = table_of(
        {"name": "first", "match": {"category": "hic.*"}, "recipients": ["horeca.khn"]},
        {"name": "never", "recipients": ["handhaving"]},
    )
    result = table.route(incident("hic.geweld"))
    assert codes(result) == ["horeca.khn"]
    assert [e.rule for e in result.trace] == ["first"]  # later rules are not checked

    table = table_of(
        {"name": "first", "recipients": ["handhaving"], "continue": True},
        {"name": "second", "category_defaults": True},
    )
    result = table.route(incident("vandalisme", wijk=OUDE_STAD))
    assert codes(result) == ["handhaving"]
    assert result.trace[1].notes == ("handhaving: already reached",)


def test_matchers() -> None:
    table = table_of(
        {
            "name": "police-at-night",
            "match": {
                "category": ["hic.*", "drugsoverlast"],
                "priority": ["P1", "P2"],
                "wijk": OUDE_STAD,
                "source": "police",
                "partner": "politie",
                "flags": {"danger": True, "in_progress": False},
                "nightlife": True,
                "time": [{"days": ["saturday"], "from": "22:00", "to": "05:00"}],
            },
            "recipients": ["horeca.khn"],
        },
        {"name": "rest"},
    )
    base = {"at": SATURDAY_NIGHT, "wijk": OUDE_STAD, "source": "police", "partner": "politie"}
    hit = table.route(incident("hic.overval", weapon=True, **base))
    assert codes(hit) == ["horeca.khn"]
    assert "danger: yes (wanted yes)" in hit.trace[0].why

    misses: list[RoutingInput] = [
        incident("vandalisme", weapon=True, **base),
        incident("hic.overval", injuries=True, priority="P3", **base),
        incident("hic.overval", injuries=True, **{**base, "wijk": ZIJLWEG}),
        incident("hic.overval", injuries=True, **{**base, "source": "citizen"}),
        incident("hic.overval", injuries=True, **{**base, "partner": "other"}),
        incident("hic.overval", **base),
        incident("hic.overval", weapon=True, in_progress=True, **base),
        incident("hic.overval", weapon=True, **{**base, "at": TUESDAY_AFTERNOON}),
        # Friday night: nightlife hours, but not in the Saturday window.
        incident("hic.overval", weapon=True, **{**base, "at": SATURDAY_NIGHT.replace(day=27)}),
    ]
    for miss in misses:
        result = table.route(miss)
        assert matched(result) == ["rest"], (miss, result.trace[0].why)


def test_a_time_window_past_midnight_belongs_to_the_day_it_starts() -> None:
    table = table_of(
        {
            "name": "friday-night",
            "match": {"time": {"days": ["friday"], "from": "22:00", "to": "05:00"}},
            "recipients": ["handhaving"],
        },
        {"name": "rest"},
    )

    def hits(*local: int) -> bool:
        at = datetime(*local, tzinfo=AMSTERDAM)  # type: ignore[misc]
        return matched(table.route(incident("vandalisme", at=at))) == ["friday-night"]

    assert hits(2026, 11, 27, 22, 0)  # Friday
    assert hits(2026, 11, 28, 4, 59)  # Saturday morning: still Friday night
    assert not hits(2026, 11, 28, 5, 0)
    assert not hits(2026, 11, 28, 23, 0)  # Saturday night
    assert not hits(2026, 11, 27, 4, 0)  # Friday morning: Thursday night

    # Wall-clock time on the DST nights (Friday night -> Saturday 24 October / 28 March).
    saturday = table_of(
        {
            "name": "saturday-night",
            "match": {"time": {"days": "saturday", "from": "22:00", "to": "05:00"}},
            "recipients": ["handhaving"],
        },
        {"name": "rest"},
    )
    for utc, inside in [
        (datetime(2026, 10, 25, 3, 59, tzinfo=UTC), True),  # 04:59 CET
        (datetime(2026, 10, 25, 4, 0, tzinfo=UTC), False),  # 05:00 CET
        (datetime(2026, 3, 29, 2, 59, tzinfo=UTC), True),  # 04:59 CEST
        (datetime(2026, 3, 29, 3, 0, tzinfo=UTC), False),  # 05:00 CEST
    ]:
        result = saturday.route(incident("vandalisme", at=utc))
        assert (matched(result) == ["saturday-night"]) is inside, result.trace[0].why


def test_needs_review_and_unknown_values_do_not_match() -> None:
    table = table_of(
        {"name": "by-source", "match": {"source": "school"}, "recipients": ["handhaving"]},
        {"name": "rest"},
    )
    result = table.route(incident("vandalisme"))
    assert matched(result) == ["rest"]
    assert result.trace[0].why == "source (unknown) does not match school"


# --- validation -------------------------------------------------------------------------------


def test_a_typo_in_a_recipient_names_the_rule(tmp_path: Path) -> None:
    routes = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    routes["routes"].insert(
        3,
        {
            "name": "sus-team-nachtleven",
            "match": {"category": "uitgaansoverlast", "nightlife": True},
            "recipients": ["sus-teem"],
        },
    )
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(routes), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_routes(path)
    assert caught.value.problems == [
        "rule 3 'sus-team-nachtleven': recipients[0]: unknown recipient 'sus-teem' "
        "(did you mean 'sus-team'?)"
    ]
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"name": "x", "match": {"category": "uitgangsoverlast"}},
            "rule 1 'x': match.category[0]: unknown category 'uitgangsoverlast' "
            "(did you mean 'uitgaansoverlast'?)",
        ),
        (
            {"name": "x", "match": {"category": "hik.*"}},
            "rule 1 'x': match.category[0]: unknown category 'hik.*'",
        ),
        (
            {"name": "x", "match": {"categroy": "vpt"}},
            "rule 1 'x': match: unknown key 'categroy' (did you mean 'category'?); "
            "known: category, priority, wijk, buurt, source, partner, flags, needs_review, "
            "nightlife, school_hours, time",
        ),
        (
            {"name": "x", "recipients": ["politie.wijkagent.{wjik}"]},
            "rule 1 'x': recipients[0]: unknown recipient 'politie.wijkagent.{wjik}' "
            "(did you mean 'politie.wijkagent.{wijk}'?)",
        ),
        (
            {"name": "x", "recipients": ["buurtpreventie.{wijk}"]},
            "rule 1 'x': recipients[0]: unknown recipient 'buurtpreventie.{wijk}' "
            "(did you mean 'buurtpreventie.{buurt}'?)",
        ),
        (
            {"name": "x", "match": {"time": {"from": "22:00", "to": "25:00"}}},
            "rule 1 'x': match.time[0].to: Input should be in a valid time format, "
            "hour value is outside expected range of 0-23",
        ),
        (
            {"name": "x", "match": {"time": {"from": 1320, "to": "05:00"}}},
            "rule 1 'x': match.time[0].from: write the time as a quoted \"HH:MM\" string",
        ),
        (
            {"name": "x", "match": {"time": {"from": "22:00", "to": "22:00"}}},
            "rule 1 'x': match.time[0]: 'from' and 'to' are equal: the window is empty",
        ),
        (
            {
                "name": "x",
                "match": {"time": {"days": ["zaterdag"], "from": "22:00", "to": "05:00"}},
            },
            "rule 1 'x': match.time[0].days[0]: Input should be 'monday', 'tuesday', "
            "'wednesday', 'thursday', 'friday', 'saturday' or 'sunday'",
        ),
        (
            {"name": "x", "match": {"wijk": "WK039299"}},
            "rule 1 'x': match.wijk[0]: 'WK039299' is not a wijk of Haarlem",
        ),
        (
            {"name": "x", "match": {"flags": {"armed": True}}},
            "rule 1 'x': match.flags.armed.[key]: Input should be 'in_progress', 'weapon', "
            "'injuries', 'public_task_victim', 'danger' or 'nightlife_centre'",
        ),
        (
            {"name": "x", "continue": True},
            "rule 1 'x': a rule that continues must add recipients or category_defaults",
        ),
        (
            {"name": "ok", "recipients": ["handhaving"]},
            "rule 1 'ok': name: also the name of rule 0",
        ),
    ],
)
def test_invalid_rules_are_named(rule: dict[str, Any], expected: str) -> None:
    assert one_rule_problems(rule) == [expected]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "version": 1,
            "routes": [
                {"name": "a", "recipients": ["sus-teem"]},
                {"match": {"priority": "P5"}},
            ],
        }
    )
    assert found[0].startswith("rule 0 'a': recipients[0]: unknown recipient")
    assert "rule 1 (unnamed): name: Field required" in found
    assert any(p.startswith("rule 1 (unnamed): match.priority[0]: Input should be") for p in found)


def test_file_level_problems(tmp_path: Path) -> None:
    assert problems({"routes": []}) == [
        "version: Field required",
        "routes: give at least one value",
    ]
    path = tmp_path / "routes.yaml"
    path.write_text("version: 1\nroutes:\n  - name: a\n    name: b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 4: duplicate key 'name'"):
        load_routes(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_routes(path)


# --- veilig routes ----------------------------------------------------------------------------

runner = CliRunner()


def test_cli_routes_test_saturday_night() -> None:
    result = runner.invoke(
        app,
        [
            "routes",
            "test",
            "--category",
            "uitgaansoverlast",
            "--wijk",
            OUDE_STAD,
            "--at",
            "2026-11-28T23:30",
            "--priority",
            "P3",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "at:       Saturday 2026-11-28 23:30 CET (nightlife hours)" in lines
    assert "  [0] triage-queue: no: category uitgaansoverlast does not match overig" in lines
    assert "  [4] category-defaults: MATCH: matches every incident" in lines
    assert "        handhaving: skipped, unless nightlife_centre" in lines
    assert "        + sus-team (operational)" in lines
    assert lines[-2:] == ["recipients:", "  sus-team                         operational"]


def test_cli_routes_test_decides_priority_and_fills_wijk_from_buurt() -> None:
    result = runner.invoke(
        app,
        [
            "routes",
            "test",
            "--category",
            "hic.woninginbraak",
            "--buurt",
            BINNENSTAD,
            "--flag",
            "in_progress",
            "--at",
            "2026-11-24T15:00+01:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "priority: P1 (decided: default of hic.woninginbraak: P2; happening now: P2 -> P1)" in (
        result.output
    )
    assert "[2] buurtpreventie-woninginbraak: MATCH, continue:" in result.output
    assert f"  politie.wijkagent.{OUDE_STAD}       full" in result.output


def test_cli_routes_test_queue_and_bad_input() -> None:
    result = runner.invoke(
        app, ["routes", "test", "--category", "overig", "--at", "2026-11-24T15:00"]
    )
    assert result.exit_code == 0, result.output
    assert "priority: none" in result.output
    assert (
        result.output.splitlines()[-1] == "recipients: none, the report waits in the triage queue"
    )

    result = runner.invoke(app, ["routes", "test", "--category", "vpt", "--flag", "armed"])
    assert result.exit_code == 2
    assert "unknown armed" in result.output


def test_cli_routes_check(tmp_path: Path) -> None:
    result = runner.invoke(app, ["routes", "check"])
    assert result.exit_code == 0, result.output
    assert "5 rules, valid" in result.output

    bad = tmp_path / "routes.yaml"
    bad.write_text(
        "version: 1\nroutes:\n  - name: sus\n    recipients: [sus-teem]\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["routes", "check", str(bad)])
    assert result.exit_code == 1
    assert "rule 0 'sus': recipients[0]: unknown recipient 'sus-teem'" in result.output
