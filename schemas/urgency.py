"""What makes an incident urgent, decided once for every hop's priority lane.

- :func:`is_urgent`: a decided priority belongs in the urgent lane (P1 and P2: acknowledge
  within minutes, DOMAIN.md "Priorities").
- :func:`may_be_urgent`: intake's cheap hint before triage has decided, from what the partner
  stated explicitly: a raising flag (happening now, weapon, injuries, a public-task victim) or
  a category hint whose default priority is urgent. No text is read here: a wrong hint only
  costs the lane a little room, and triage's decision puts every P1/P2 in the lane anyway.
"""

from __future__ import annotations

from typing import Protocol

from schemas.taxonomy import Priority, taxonomy

URGENT_PRIORITIES: tuple[Priority, ...] = ("P1", "P2")


class FlagsLike(Protocol):
    """What a report's flags look like to the urgency rule and the classifier (the events
    schema's Flags and the submission's FlagsIn both fit)."""

    @property
    def in_progress(self) -> bool: ...
    @property
    def weapon(self) -> bool: ...
    @property
    def injuries(self) -> bool: ...
    @property
    def public_task_victim(self) -> bool: ...


def is_urgent(priority: Priority | None) -> bool:
    return priority is not None and priority in URGENT_PRIORITIES


def may_be_urgent(flags: FlagsLike, category_hint: str | None) -> bool:
    if flags.in_progress or flags.weapon or flags.injuries or flags.public_task_victim:
        return True
    if category_hint is None or category_hint not in taxonomy().category_codes:
        return False
    return is_urgent(taxonomy().category(category_hint).default_priority)
