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
   wijk's safety plan while it runs (``plans``: managed data, none by default). Together
   they raise at most two steps (:data:`MAX_GENERAL_STEPS`): circumstances make planned work
   (P4) urgent (P2) at most;
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
from datetime import UTC, date, datetime
from typing import get_args

from schemas.events import Flags
from schemas.taxonomy import Category, Priority, priority_rank, taxonomy
from schemas.timeutil import AMSTERDAM, deadlines
from services.triage.plans import NO_PLANS, SafetyPlans
from services.triage.routing import conditions_holding

QUEUE_PRIORITY: Priority = "P3"
MAX_GENERAL_STEPS = 2
_PRIORITIES: tuple[Priority, ...] = get_args(Priority)


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
    category: Category,
    flags: Flags,
    wijk_code: str | None,
    report_count: int,
    plans: SafetyPlans,
    day: date,
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
    if plans.covers(wijk_code, category.code, day):
        yield f"{category.code} is in the safety plan of {wijk_code}"


def decide_priority(
    category: str,
    flags: Flags,
    wijk_code: str | None,
    report_count: int = 1,
    *,
    at: datetime | None = None,
    plans: SafetyPlans = NO_PLANS,
) -> PriorityDecision:
    """The priority of an incident and why (module docstring for the policy).

    ``at`` (when it happened; default now) is needed for taxonomy raises on
    ``nightlife_centre`` and for whether a safety plan of ``plans`` runs on that day.
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
    day = (at or datetime.now(UTC)).astimezone(AMSTERDAM).date()
    for raiser in _general_raisers(cat, flags, wijk_code, report_count, plans, day):
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
