"""Wijkveiligheidsplannen: per wijk, the categories its residents made a priority.

A plan is managed data (``veilig plans set|list|end`` and the admin API, see
``plan_store``), not configuration: none ships with the platform. While a plan runs
(``starts_on`` to ``ends_on``, local dates), a report of one of its categories in its wijk is
raised one priority step (``services/triage/priority.py`` has the whole policy).

Pure: the models, the validation (taxonomy codes with a default priority, each once, a
Haarlem wijk, a period that does not end before it starts) and the question the priority
policy asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, Self

from pydantic import AfterValidator, Field, ValidationError, model_validator

from schemas.events import check_period
from schemas.taxonomy import taxonomy
from services.triage.routing import ConfigModel, HaarlemWijk, OneOrMore, error_messages


class PlanError(ValueError):
    """A plan change that cannot be made; the text says why."""


class NoPlan(PlanError):
    """The wijk has no plan to change."""


class PlanConflict(PlanError):
    """The change does not fit the plan as it stands (ended already, starts later)."""


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


class SafetyPlan(ConfigModel):
    """One wijk's plan as its residents adopted it."""

    wijk_code: HaarlemWijk
    categories: PlanCategories
    starts_on: date
    ends_on: date | None = None
    adopted_by: Annotated[str, Field(min_length=1, max_length=200)]
    adopted_on: date

    @model_validator(mode="after")
    def _period(self) -> Self:
        check_period(self.starts_on, self.ends_on)
        return self

    def runs_on(self, day: date) -> bool:
        return self.starts_on <= day and (self.ends_on is None or day <= self.ends_on)


def parse_plan(data: Mapping[str, Any]) -> SafetyPlan:
    """A plan from user input; :class:`PlanError` lists every mistake, each with its field."""
    try:
        return SafetyPlan.model_validate(dict(data))
    except ValidationError as exc:
        raise PlanError("; ".join(error_messages(exc))) from exc


@dataclass(frozen=True, slots=True)
class SafetyPlans:
    """Every wijk's current plan (an ended one too: it no longer runs after its end)."""

    by_wijk: Mapping[str, SafetyPlan] = field(default_factory=dict)

    def covers(self, wijk_code: str | None, category: str, day: date) -> bool:
        """Whether a report of ``category`` in ``wijk_code`` on ``day`` is a plan priority."""
        plan = self.by_wijk.get(wijk_code or "")
        return plan is not None and category in plan.categories and plan.runs_on(day)


NO_PLANS = SafetyPlans()
