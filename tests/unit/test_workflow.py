"""The incident workflow: the transition table, illegal changes and staff actions."""

from __future__ import annotations

from collections import deque

import pytest
from typer.testing import CliRunner

from schemas.events import IncidentStatus
from services.cli import app
from services.triage.workflow import (
    ACTIONS,
    ALLOWED_TRANSITIONS,
    STATUSES,
    Action,
    IllegalAction,
    IllegalTransition,
    allowed_actions,
    check_action,
    check_transition,
)

ALLOWED = [(old, new) for old in STATUSES for new in STATUSES if new in ALLOWED_TRANSITIONS[old]]
ILLEGAL = [
    (old, new) for old in STATUSES for new in STATUSES if new not in ALLOWED_TRANSITIONS[old]
]
CLOSED: set[IncidentStatus] = {"resolved", "merged", "cancelled"}


def test_the_table_covers_exactly_the_contract_statuses() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(STATUSES)
    for old, targets in ALLOWED_TRANSITIONS.items():
        assert targets <= set(STATUSES)
        assert old not in targets  # the events refuse a change to the same status


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_every_allowed_transition_passes(old: IncidentStatus, new: IncidentStatus) -> None:
    check_transition(old, new)


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_every_other_transition_is_refused(old: IncidentStatus, new: IncidentStatus) -> None:
    with pytest.raises(IllegalTransition) as caught:
        check_transition(old, new)
    assert (caught.value.old, caught.value.new) == (old, new)
    assert caught.value.allowed == ALLOWED_TRANSITIONS[old]


def test_the_message_lists_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition) as caught:
        check_transition("reported", "resolved")
    assert str(caught.value) == (
        "an incident cannot go from reported to resolved; "
        "allowed from reported: triaged, merged, cancelled"
    )
    with pytest.raises(IllegalTransition) as caught:
        check_transition("cancelled", "reopened")
    assert str(caught.value).endswith("allowed from cancelled: nothing")


def test_unknown_statuses_are_named() -> None:
    with pytest.raises(ValueError, match="unknown status 'closed'; statuses: reported, "):
        check_transition("resolved", "closed")  # type: ignore[arg-type]


def test_every_status_is_reachable_and_every_open_one_can_close() -> None:
    reachable, todo = {"reported"}, deque(["reported"])
    while todo:
        for new in ALLOWED_TRANSITIONS[todo.popleft()] - reachable:
            reachable.add(new)
            todo.append(new)
    assert reachable == set(STATUSES)
    for status in set(STATUSES) - CLOSED:
        assert ALLOWED_TRANSITIONS[status] & CLOSED, status


# --- staff actions ----------------------------------------------------------------------------

MOVES = [(action, old, new) for action, moves in ACTIONS.items() for old, new in moves.items()]


@pytest.mark.parametrize(("action", "old", "new"), MOVES)
def test_every_action_is_a_status_change_the_table_allows(
    action: Action, old: IncidentStatus, new: IncidentStatus
) -> None:
    assert check_action(action, old) == new
    if new != old:
        check_transition(old, new)


@pytest.mark.parametrize(
    ("action", "status", "allowed"),
    [
        ("acknowledge", "resolved", "triaged, acknowledged, in_progress, on_hold, reopened"),
        ("reclassify", "reported", "triaged, acknowledged, in_progress, on_hold, reopened"),
        ("change_priority", "merged", "triaged, acknowledged, in_progress, on_hold, reopened"),
        ("merge", "cancelled", "reported, triaged, acknowledged, in_progress, on_hold, reopened"),
        ("unmerge", "resolved", "merged"),
        ("resolve", "resolved", "triaged, acknowledged, in_progress, on_hold, reopened"),
        ("reopen", "in_progress", "resolved"),
        ("assign", "resolved", "triaged, acknowledged, in_progress, on_hold, reopened"),
        ("start", "triaged", "acknowledged, on_hold, reopened"),
        ("hold", "reopened", "triaged, acknowledged, in_progress"),
        ("cancel", "merged", "triaged, acknowledged, in_progress, on_hold, reopened"),
    ],
)
def test_an_action_out_of_place_names_where_it_is_allowed(
    action: Action, status: IncidentStatus, allowed: str
) -> None:
    with pytest.raises(IllegalAction) as caught:
        check_action(action, status)
    assert str(caught.value).endswith(f"that is {status}; allowed when: {allowed}")


def test_acknowledging_twice_keeps_the_status() -> None:
    assert check_action("acknowledge", "triaged") == "acknowledged"
    assert check_action("acknowledge", "in_progress") == "in_progress"


def test_the_console_workflow_reaches_in_progress_on_hold_and_cancelled() -> None:
    assert check_action("hold", "triaged") == "on_hold"
    assert check_action("start", "on_hold") == "in_progress"  # resumed
    assert check_action("hold", "in_progress") == "on_hold"
    assert check_action("assign", "on_hold") == "on_hold"  # an owner changes no status
    assert check_action("cancel", "on_hold") == "cancelled"


def test_the_console_offers_what_the_status_allows() -> None:
    assert allowed_actions("on_hold") == [
        "acknowledge", "reclassify", "change_priority", "merge", "resolve", "assign", "start",
        "cancel",
    ]  # fmt: skip
    assert allowed_actions("resolved") == ["reopen"]
    assert allowed_actions("cancelled") == []
    assert "withdraw" not in allowed_actions("triaged")  # the reporting partner's


def test_unknown_action() -> None:
    with pytest.raises(ValueError, match="unknown action 'escalate'"):
        check_action("escalate", "triaged")  # type: ignore[arg-type]


def test_cli_transitions() -> None:
    result = CliRunner().invoke(app, ["triage", "transitions"])
    assert result.exit_code == 0, result.output
    assert "  cancelled     -> (final)" in result.output.splitlines()
    assert "  unmerge          merged -> reopened" in result.output.splitlines()
