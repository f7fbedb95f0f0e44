"""Priority decisions: defaults, each raiser with its reason, caps, floors and safety plans."""

from __future__ import annotations

from datetime import datetime

import pytest
import yaml
from typer.testing import CliRunner

from schemas.events import Flags
from schemas.taxonomy import DEFAULT_PATH as TAXONOMY_PATH
from schemas.taxonomy import parse_taxonomy, taxonomy
from schemas.timeutil import AMSTERDAM, deadlines
from services.cli import app
from services.triage import priority as priority_module
from services.triage.plans import NO_PLANS, PlanError, SafetyPlan, SafetyPlans, parse_plan
from services.triage.priority import QUEUE_PRIORITY, decide_priority

OUDE_STAD = "WK039201"
MEERWIJK = "WK039221"
SATURDAY_NIGHT = datetime(2026, 11, 28, 23, 30, tzinfo=AMSTERDAM)


def decide(category: str, report_count: int = 1, **flags: bool) -> tuple[str | None, list[str]]:
    decision = decide_priority(category, Flags(**flags), None, report_count, plans=NO_PLANS)
    return decision.priority, decision.reasons


@pytest.mark.parametrize(
    "category", [c.code for c in taxonomy().categories if c.default_priority is not None]
)
def test_without_circumstances_the_category_default(category: str) -> None:
    default = taxonomy().category(category).default_priority
    assert decide(category) == (default, [f"default of {category}: {default}"])


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"weapon": True}, "weapon involved: P3 -> P2"),
        ({"injuries": True}, "injuries: P3 -> P2"),
        ({"in_progress": True}, "happening now: P3 -> P2"),
        ({"public_task_victim": True}, "public-task victim: P3 -> P2"),
    ],
)
def test_each_flag_raises_one_step(flags: dict[str, bool], reason: str) -> None:
    assert decide("drugsoverlast", **flags) == (
        "P2",
        ["default of drugsoverlast: P3", reason],
    )


@pytest.mark.parametrize("count", [2, 5, 40])
def test_several_reports_raise_one_step_however_many(count: int) -> None:
    assert decide("woonoverlast", count) == (
        "P3",
        ["default of woonoverlast: P4", f"{count} independent reports: P4 -> P3"],
    )


def test_a_vpt_report_is_not_raised_for_its_own_victim() -> None:
    assert decide("vpt", public_task_victim=True) == ("P2", ["default of vpt: P2"])


def test_general_raisers_add_at_most_two_steps() -> None:
    assert decide("vandalisme", 3, weapon=True, injuries=True, in_progress=True) == (
        "P2",
        [
            "default of vandalisme: P4",
            "weapon involved: P4 -> P3",
            "injuries: P3 -> P2",
            "happening now: no further raise, at most 2 steps",
            "3 independent reports: no further raise, at most 2 steps",
        ],
    )


def test_never_above_p1() -> None:
    assert decide("hic.geweld", weapon=True) == (
        "P1",
        ["default of hic.geweld: P1", "weapon involved: already P1"],
    )


def test_taxonomy_raise_burglary_in_progress() -> None:
    assert decide("hic.woninginbraak", in_progress=True)[0] == "P1"
    assert decide("vpt", in_progress=True, weapon=True)[0] == "P1"


def test_a_category_raise_is_a_floor_after_the_general_raisers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A taxonomy where vandalism in progress is at least P2 and in the centre at night P1.
    data = yaml.safe_load(TAXONOMY_PATH.read_text(encoding="utf-8"))
    vandalism = next(c for c in data["categories"] if c["code"] == "vandalisme")
    vandalism["raised_priority"] = [
        {"priority": "P2", "when": ["in_progress"]},
        {"priority": "P1", "when": ["nightlife_centre"]},
    ]
    monkeypatch.setattr(priority_module, "taxonomy", lambda: parse_taxonomy(yaml.safe_dump(data)))

    assert decide("vandalisme", in_progress=True) == (
        "P2",
        [
            "default of vandalisme: P4",
            "happening now: P4 -> P3",
            "vandalisme when in_progress: at least P2: P3 -> P2",
        ],
    )
    assert decide("vandalisme", weapon=True, injuries=True, in_progress=True)[0] == "P2"
    # nightlife_centre needs the time and the wijk.
    at_night = decide_priority("vandalisme", Flags(), OUDE_STAD, at=SATURDAY_NIGHT, plans=NO_PLANS)
    assert at_night.priority == "P1"
    assert decide_priority("vandalisme", Flags(), OUDE_STAD, plans=NO_PLANS).priority == "P4"


def test_overig_goes_to_the_queue_with_placeholder_deadlines() -> None:
    reported = datetime(2026, 11, 24, 15, 0, tzinfo=AMSTERDAM)
    decision = decide_priority("overig", Flags(), OUDE_STAD, plans=NO_PLANS)
    assert decision.priority is None
    assert decision.effective == QUEUE_PRIORITY == "P3"
    assert decision.reasons == ["overig has no default priority: triage queue, deadlines of P3"]
    assert decision.deadlines(reported) == deadlines("P3", reported)

    armed = decide_priority("overig", Flags(weapon=True), None, plans=NO_PLANS)
    assert (armed.priority, armed.effective) == (None, "P2")
    assert armed.reasons[-1] == "weapon involved: P3 -> P2"


def test_deadlines_follow_the_decided_priority() -> None:
    reported = datetime(2026, 11, 27, 16, 0, tzinfo=AMSTERDAM)
    decision = decide_priority("vandalisme", Flags(weapon=True), None, plans=NO_PLANS)
    assert decision.deadlines(reported) == deadlines("P3", reported)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="report_count"):
        decide("vandalisme", 0)
    with pytest.raises(KeyError, match="unknown category"):
        decide("fietsendiefstal")


# --- safety plans -----------------------------------------------------------------------------


def meerwijk_plan(**changes: object) -> SafetyPlan:
    data = {
        "wijk_code": MEERWIJK,
        "categories": ["jeugdoverlast"],
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
        "adopted_by": "Wijkraad Meerwijk",
        "adopted_on": "2025-12-10",
        **changes,
    }
    return parse_plan(data)


def test_a_safety_plan_category_is_raised_in_its_wijk_only_while_it_runs() -> None:
    plans = SafetyPlans({MEERWIJK: meerwijk_plan()})
    raised = decide_priority("jeugdoverlast", Flags(), MEERWIJK, at=SATURDAY_NIGHT, plans=plans)
    assert (raised.priority, raised.reasons) == (
        "P2",
        [
            "default of jeugdoverlast: P3",
            f"jeugdoverlast is in the safety plan of {MEERWIJK}: P3 -> P2",
        ],
    )
    at = SATURDAY_NIGHT
    assert decide_priority("jeugdoverlast", Flags(), OUDE_STAD, at=at, plans=plans).priority == "P3"
    assert decide_priority("jeugdoverlast", Flags(), None, at=at, plans=plans).priority == "P3"
    assert decide_priority("drugsoverlast", Flags(), MEERWIJK, at=at, plans=plans).priority == "P3"
    # Its first and last day count, local time; the day after it ended does not.
    first = datetime(2026, 1, 1, 0, 30, tzinfo=AMSTERDAM)  # 2025-12-31 23:30 UTC
    after = datetime(2027, 1, 1, 0, 30, tzinfo=AMSTERDAM)
    assert (
        decide_priority("jeugdoverlast", Flags(), MEERWIJK, at=first, plans=plans).priority == "P2"
    )
    assert (
        decide_priority("jeugdoverlast", Flags(), MEERWIJK, at=after, plans=plans).priority == "P3"
    )


def test_no_plans_by_default() -> None:
    assert decide_priority("jeugdoverlast", Flags(), MEERWIJK).priority == "P3"


def plan_problems(**changes: object) -> str:
    with pytest.raises(PlanError) as caught:
        meerwijk_plan(**changes)
    return str(caught.value)


def test_safety_plan_errors_name_the_field() -> None:
    assert plan_problems(
        wijk_code="WK039299", categories=["drugsoverlast", "drugoverlast", "overig"]
    ) == "; ".join(
        [
            "wijk_code: 'WK039299' is not a wijk of Haarlem",
            "categories[1]: unknown category 'drugoverlast'; known: "
            + ", ".join(taxonomy().category_codes),
            "categories[2]: 'overig' has no priority to raise",
        ]
    )
    assert plan_problems(categories=["vandalisme", "vandalisme"]) == (
        "categories: listed more than once: vandalisme"
    )
    assert plan_problems(categories=[]) == "categories: give at least one value"
    assert (
        plan_problems(ends_on="2025-12-31") == "ends_on 2025-12-31 is before starts_on 2026-01-01"
    )
    assert plan_problems(adopted_by="") == "adopted_by: String should have at least 1 character"


def test_cli_priority() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "triage",
            "priority",
            "--category",
            "vandalisme",
            "--flag",
            "weapon",
            "--at",
            "2026-11-27T16:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "priority: P3",
        "  default of vandalisme: P4",
        "  weapon involved: P4 -> P3",
        "reported:        Friday 2026-11-27 16:00 CET",
        "acknowledge by:  Friday 2026-11-27 18:00 CET",
        "handle by:       Wednesday 2026-12-02 16:00 CET",
    ]
