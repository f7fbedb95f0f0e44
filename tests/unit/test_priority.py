"""Priority decisions: defaults, each raiser with its reason, caps, floors and safety plans."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from schemas.events import Flags
from schemas.taxonomy import DEFAULT_PATH as TAXONOMY_PATH
from schemas.taxonomy import parse_taxonomy, taxonomy
from schemas.timeutil import AMSTERDAM, deadlines
from services.cli import app
from services.triage import priority as priority_module
from services.triage.priority import (
    QUEUE_PRIORITY,
    SafetyPlans,
    decide_priority,
    load_safety_plans,
)
from services.triage.routing import ConfigError

NO_PLANS = SafetyPlans(version=1, plans={})
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


def test_a_safety_plan_category_is_raised_in_its_wijk_only() -> None:
    plans = SafetyPlans(version=1, plans={MEERWIJK: ("jeugdoverlast",)})
    raised = decide_priority("jeugdoverlast", Flags(), MEERWIJK, plans=plans)
    assert (raised.priority, raised.reasons) == (
        "P2",
        [
            "default of jeugdoverlast: P3",
            f"jeugdoverlast is in the safety plan of {MEERWIJK}: P3 -> P2",
        ],
    )
    assert decide_priority("jeugdoverlast", Flags(), OUDE_STAD, plans=plans).priority == "P3"
    assert decide_priority("jeugdoverlast", Flags(), None, plans=plans).priority == "P3"
    assert decide_priority("drugsoverlast", Flags(), MEERWIJK, plans=plans).priority == "P3"


def test_the_shipped_safety_plans_load_and_apply() -> None:
    plans = load_safety_plans()
    assert plans.covers(MEERWIJK, "jeugdoverlast")
    assert decide_priority("jeugdoverlast", Flags(), MEERWIJK).priority == "P2"


def plan_problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "safety_plans.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_safety_plans(path)
    assert str(path) in str(caught.value)
    return caught.value.problems


def test_safety_plan_errors_name_the_entry(tmp_path: Path) -> None:
    assert plan_problems(
        tmp_path,
        "version: 1\n"
        "plans:\n"
        "  WK039299: [jeugdoverlast]\n"
        "  WK039201: [drugsoverlast, drugoverlast, overig]\n"
        "  WK039221: [vandalisme, vandalisme]\n"
        "  WK039207: []\n",
    ) == [
        "plans.WK039299.[key]: 'WK039299' is not a wijk of Haarlem",
        "plans.WK039201[1]: unknown category 'drugoverlast'; known: "
        + ", ".join(taxonomy().category_codes),
        "plans.WK039201[2]: 'overig' has no priority to raise",
        "plans.WK039221: listed more than once: vandalisme",
        "plans.WK039207: give at least one value",
    ]


def test_safety_plan_file_errors(tmp_path: Path) -> None:
    assert plan_problems(tmp_path, "version: 1\nplan: {}\n") == [
        "unknown key 'plan' (did you mean 'plans'?); known: version, plans"
    ]
    assert plan_problems(
        tmp_path, "version: 1\nplans:\n  WK039201: [vpt]\n  WK039201: [brand]\n"
    ) == ["line 4: duplicate key 'WK039201'"]


def test_cli_priority_and_plans(tmp_path: Path) -> None:
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

    result = runner.invoke(app, ["triage", "plans"])
    assert result.exit_code == 0, result.output
    assert f"{MEERWIJK} Meerwijk: jeugdoverlast, woonoverlast" in result.output
