"""Priority of an incident: the category's default, raised by what is known about it.

The policy (DOMAIN.md "Priorities"), applied in this order:

1. Start from the category's default priority (taxonomy). ``overig`` has none: the decision's
   ``priority`` is None (the triage queue: a human decides) and the steps below work on
   :data:`QUEUE_PRIORITY` (P3, "soon, this shift") to give the queue its deadlines, so an
   unclear report with a weapon still gets P2 deadlines and escalates.
2. General raisers, one step each, in this order: weapon involved; injuries; happening now
   (``in_progress``); a public-task victim (not for categories that are VPT themselves, whose
   default already counts it); several independent reports (``report_count >= 2``; one step
   however many: more reports confirm the incident, not its danger); a category in the
   wijk's safety plan (``safety_plans.yaml``). Together they raise at most two steps
   (:data:`MAX_GENERAL_STEPS`): circumstances make planned work (P4) urgent (P2) at most;
   acute (P1) from P4 takes a category rule or a human.
3. The category-specific raises of the taxonomy (``raised_priority``, when all their
   conditions hold) set a floor: the result is at least that urgent (burglary in progress is
   P1). Applied after the general raisers so that one circumstance is not counted twice.

Never above P1. Every step taken or refused is a human-readable reason
("weapon involved: P3 -> P2"), for the triaged event and for triage staff.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, ValidationError

from schemas.events import Flags
from schemas.taxonomy import Category, Priority, priority_rank, taxonomy
from schemas.timeutil import deadlines
from services.triage.routing import (
    ConfigError,
    ConfigModel,
    HaarlemWijk,
    OneOrMore,
    conditions_holding,
    error_messages,
    read_yaml,
)

SAFETY_PLANS_PATH = Path(__file__).with_name("safety_plans.yaml")
QUEUE_PRIORITY: Priority = "P3"
MAX_GENERAL_STEPS = 2
_PRIORITIES: tuple[Priority, ...] = get_args(Priority)


def _plannable(code: str) -> str:
    try:
        category = taxonomy().category(code)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    if category.needs_human:
        raise ValueError(f"{code!r} has no priority to raise")
    return code


def _unique(codes: tuple[str, ...]) -> tuple[str, ...]:
    repeated = sorted({c for c in codes if codes.count(c) > 1})
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return codes


PlanCategories = Annotated[
    OneOrMore[Annotated[str, AfterValidator(_plannable)]], AfterValidator(_unique)
]


class SafetyPlans(ConfigModel):
    """Per wijk, the categories its residents put in their wijkveiligheidsplan."""

    version: Literal[1]
    plans: dict[HaarlemWijk, PlanCategories]

    def covers(self, wijk_code: str | None, category: str) -> bool:
        return wijk_code is not None and category in self.plans.get(wijk_code, ())


def load_safety_plans(path: Path = SAFETY_PLANS_PATH) -> SafetyPlans:
    """Load and validate safety plans; :class:`ConfigError` names the wijk and the entry."""
    try:
        return SafetyPlans.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(str(path), error_messages(exc)) from exc


@cache
def safety_plans() -> SafetyPlans:
    """The project's safety plans, loaded and validated once per process."""
    return load_safety_plans()


@dataclass(frozen=True, slots=True)
class PriorityDecision:
    priority: Priority | None
    """None for a category without default priority: the triage queue decides."""
    reasons: list[str]
    effective: Priority
    """The priority deadlines are set by: ``priority``, or the queue's for None."""

    def deadlines(self, reported_at: datetime) -> tuple[datetime, datetime]:
        """(acknowledge_by, handle_by) in UTC."""
        return deadlines(self.effective, reported_at)


def _general_raisers(
    category: Category, flags: Flags, wijk_code: str | None, report_count: int, plans: SafetyPlans
) -> Iterator[str]:
    if flags.weapon:
        yield "weapon involved"
    if flags.injuries:
        yield "injuries"
    if flags.in_progress:
        yield "happening now"
    if flags.public_task_victim and not category.vpt:
        yield "public-task victim"
    if report_count >= 2:
        yield f"{report_count} independent reports"
    if plans.covers(wijk_code, category.code):
        yield f"{category.code} is in the safety plan of {wijk_code}"


def decide_priority(
    category: str,
    flags: Flags,
    wijk_code: str | None,
    report_count: int = 1,
    *,
    at: datetime | None = None,
    plans: SafetyPlans | None = None,
) -> PriorityDecision:
    """The priority of an incident and why (module docstring for the policy).

    ``at`` (when it happened) is needed only for taxonomy raises on ``nightlife_centre``;
    ``plans`` defaults to the project's ``safety_plans.yaml``.
    """
    if report_count < 1:
        raise ValueError(f"report_count must be >= 1, got {report_count}")
    cat = taxonomy().category(category)
    if cat.default_priority is None:
        rank = priority_rank(QUEUE_PRIORITY)
        reasons = [
            f"{category} has no default priority: triage queue, deadlines of {QUEUE_PRIORITY}"
        ]
    else:
        rank = priority_rank(cat.default_priority)
        reasons = [f"default of {category}: {cat.default_priority}"]

    steps = 0
    plans = plans if plans is not None else safety_plans()
    for raiser in _general_raisers(cat, flags, wijk_code, report_count, plans):
        if rank == 1:
            reasons.append(f"{raiser}: already P1")
        elif steps == MAX_GENERAL_STEPS:
            reasons.append(f"{raiser}: no further raise, at most {MAX_GENERAL_STEPS} steps")
        else:
            reasons.append(f"{raiser}: P{rank} -> P{rank - 1}")
            rank -= 1
            steps += 1

    held = conditions_holding(flags, wijk_code, at)
    for rise in cat.raised_priority:
        if set(rise.when) <= held and priority_rank(rise.priority) < rank:
            reasons.append(
                f"{category} when {' and '.join(rise.when)}: at least {rise.priority}: "
                f"P{rank} -> {rise.priority}"
            )
            rank = priority_rank(rise.priority)

    effective = _PRIORITIES[rank - 1]
    return PriorityDecision(
        priority=None if cat.needs_human else effective, reasons=reasons, effective=effective
    )
