"""Which reports take the urgent lane before triage has decided, and which decisions do."""

from __future__ import annotations

import pytest

from schemas.events import Flags
from schemas.urgency import is_urgent, may_be_urgent


@pytest.mark.parametrize("priority", ["P1", "P2"])
def test_p1_and_p2_are_urgent(priority: str) -> None:
    assert is_urgent(priority)  # type: ignore[arg-type]


@pytest.mark.parametrize("priority", ["P3", "P4", None])
def test_p3_p4_and_undecided_are_not(priority: str | None) -> None:
    assert not is_urgent(priority)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "flags",
    [
        Flags(in_progress=True),
        Flags(weapon=True),
        Flags(injuries=True),
        Flags(public_task_victim=True, victim_role="buschauffeur"),
    ],
)
def test_a_stated_raising_flag_takes_the_lane(flags: Flags) -> None:
    assert may_be_urgent(flags, None)


def test_a_fire_hint_takes_the_lane_vandalism_does_not() -> None:
    assert may_be_urgent(Flags(), "brand")
    assert not may_be_urgent(Flags(), "vandalisme")


def test_no_flags_no_hint_or_an_unknown_hint_waits_for_triage() -> None:
    assert not may_be_urgent(Flags(), None)
    assert not may_be_urgent(Flags(), "niet-bestaand")
