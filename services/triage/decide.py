"""One triage decision for one report: category, priority, deadlines, recipients, reasons.

Pure: the classifier, the priority policy and the routing table decide; this module puts
them together in the order a person would (what is it, how urgent, who must know) and
explains the result. Duplicate detection over a batch is in ``domain`` (pure too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from schemas.events import CategoryProbability, IncidentReported, Recipient
from schemas.taxonomy import Priority, taxonomy
from schemas.timeutil import deadlines
from services.common.observability import tracer
from services.triage.classifier import Classifier, Decision, Text
from services.triage.plans import NO_PLANS, SafetyPlans
from services.triage.priority import decide_priority
from services.triage.routing import (
    ConfigError,
    RoutingInput,
    RoutingTable,
    TraceEntry,
    read_yaml,
)

DUPLICATES_PATH = Path(__file__).with_name("duplicates.yaml")


@dataclass(frozen=True, slots=True)
class TriageDecision:
    category: str
    priority: Priority | None
    effective_priority: Priority
    confidence: float
    needs_review: bool
    reasons: tuple[str, ...]
    top3: tuple[CategoryProbability, ...]
    recipients: tuple[Recipient, ...]
    acknowledge_by: datetime
    handle_by: datetime
    routing: tuple[TraceEntry, ...] = ()
    """Every routing rule checked, in order: which matched, why, and whom each added."""


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    metres: PositiveInt
    minutes: PositiveInt


class DuplicateWindows(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default: Window
    categories: dict[str, Window] = Field(default_factory=dict)

    def for_category(self, category: str) -> Window:
        return self.categories.get(category, self.default)


@cache
def duplicate_windows(path: Path = DUPLICATES_PATH) -> DuplicateWindows:
    windows = DuplicateWindows.model_validate(read_yaml(path))
    unknown = set(windows.categories) - set(taxonomy().category_codes)
    if unknown:
        raise ConfigError(str(path), [f"categories: unknown category {c!r}" for c in unknown])
    return windows


def metres_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine); plenty precise within a city."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def _text(report: IncidentReported) -> Text:
    return Text(report.description, report.category_hint, report.flags, report.partner_kind)


class Triage:
    """The decision-making parts, built once per process (the classifier trains at start)."""

    def __init__(self, classifier: Classifier, routes: RoutingTable) -> None:
        self.classifier = classifier
        self.routes = routes
        # The wijken's safety plans, replaced whole whenever one changes (plan_store.follow).
        self.plans: SafetyPlans = NO_PLANS

    def decide_many(self, reports: Sequence[IncidentReported]) -> list[TriageDecision]:
        """Decide on a batch of reports, classified together in one model call."""
        with tracer.start_as_current_span("triage.classify", attributes={"reports": len(reports)}):
            classified = self.classifier.classify_many([_text(r) for r in reports])
        return [self.decide(r, classified=c) for r, c in zip(reports, classified, strict=True)]

    def decide(
        self,
        report: IncidentReported,
        *,
        category: str | None = None,
        priority: Priority | None = None,
        report_count: int = 1,
        reviewed: bool = False,
        classified: Decision | None = None,
    ) -> TriageDecision:
        """Decide on ``report``; ``category``/``priority`` given by a person override the
        classifier and the policy (then the decision no longer needs review). ``classified``
        is the classifier's decision when the caller classified a batch at once."""
        result = classified
        if result is None:
            with tracer.start_as_current_span("triage.classify"):
                result = self.classifier.classify_many([_text(report)])[0]
        reasons = list(result.reasons)
        needs_review = result.needs_review and not reviewed and category is None
        chosen = category or result.category
        if category is not None and category != result.category:
            reasons.append(f"category set by triage staff: {category}")
        decided = decide_priority(
            chosen,
            report.flags,
            report.location.wijk_code,
            report_count,
            at=report.occurred_at,
            plans=self.plans,
        )
        reasons += decided.reasons
        effective = priority or decided.effective
        final = priority or decided.priority
        if priority is not None and priority != decided.effective:
            reasons.append(f"priority set by triage staff: {priority}")
        # The clock starts when the platform received the report, not when it happened.
        acknowledge_by, handle_by = deadlines(effective, report.recorded_at)
        # routes.yaml decides what an uncertain report may reach: an uncertain P1/P2 still
        # alerts police, fire or care (a delay costs more), an uncertain P3/P4 waits.
        with tracer.start_as_current_span("triage.route"):
            routed = self.routes.route(
                RoutingInput.of_report(
                    report,
                    category=chosen,
                    priority=final,
                    source=report.partner_kind,
                    needs_review=needs_review,
                )
            )
        recipients = routed.recipients
        reasons += [
            f"route {entry.rule}: " + ", ".join(r.code for r in entry.added)
            for entry in routed.trace
            if entry.matched and entry.added
        ]
        if not recipients:
            needs_review = True
            reasons.append("nobody to notify: waits in the triage queue")
        return TriageDecision(
            category=chosen,
            priority=final,
            effective_priority=effective,
            confidence=1.0 if category is not None else result.confidence,
            needs_review=needs_review,
            reasons=tuple(r[:500] for r in reasons[:20]),
            top3=tuple(CategoryProbability(category=c, probability=p) for c, p in result.top3),
            recipients=recipients,
            acknowledge_by=acknowledge_by,
            handle_by=handle_by,
            routing=tuple(routed.trace),
        )
