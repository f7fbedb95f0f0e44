"""Triage's pure core for a consumed batch of reports: new incident or duplicate, merges,
priority raises, history and the events to publish. No I/O, no clock: the shell
(``handlers``) loads a snapshot of the open incidents the batch may merge with, calls
:func:`decide_batch`, and writes what it returns with set-based SQL in one transaction.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

from schemas.events import (
    Event,
    IncidentMerged,
    IncidentPriorityChanged,
    IncidentReported,
    IncidentTriaged,
)
from schemas.taxonomy import Priority, priority_rank
from schemas.urgency import is_urgent, may_be_urgent
from services.triage.decide import TriageDecision, duplicate_windows, metres_between
from services.triage.priority import decide_priority

# Roughly 1 m in degrees at Haarlem's latitude: the box that narrows candidates before
# haversine (the same box the duplicate query always used, so the same reports merge).
DEG_LAT_PER_M = 1 / 111_320
DEG_LON_PER_M = 1 / 68_000


class Redecide(Protocol):
    """A new decision for an incident's first report with category and priority given
    (``Triage.decide``): deterministic, no I/O."""

    def __call__(
        self,
        report: IncidentReported,
        *,
        category: str | None = None,
        priority: Priority | None = None,
        report_count: int = 1,
        reviewed: bool = False,
    ) -> TriageDecision: ...


@dataclass(slots=True)
class OpenIncident:
    """An open, not merged incident a report may be merged into: one from the snapshot, or
    one opened earlier in the same batch. Mutable while the batch is decided."""

    incident_id: UUID
    report: IncidentReported
    """Its first report (the event as received)."""
    category: str
    occurred_at: datetime
    received_at: datetime
    lat: float | None
    lon: float | None
    wijk_code: str | None
    effective_priority: Priority
    needs_review: bool
    report_count: int
    partners: set[str]
    """The different partners that reported it (itself and what was merged into it)."""
    raised: TriageDecision | None = None
    """Its new decision when the batch raised its priority."""


@dataclass(frozen=True, slots=True)
class NewIncident:
    """An incident row to insert, in its state at the end of the batch."""

    report: IncidentReported
    decision: TriageDecision
    status: Literal["triaged", "merged"]
    merged_into: UUID | None
    report_count: int


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """A snapshot incident the batch changed: its report count, and its new decision when
    its priority was raised."""

    incident_id: UUID
    report_count: int  # as this batch saw it
    decision: TriageDecision | None
    # Reports this batch added: what is written (report_count = report_count + added), so
    # that triage's main and urgent consumers merging into one incident at once lose none.
    added: int = 0


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    incident_id: UUID
    kind: str
    actor: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """What became of one report; its events go out on the report's trace."""

    report: IncidentReported
    decision: TriageDecision
    merged_into: UUID | None
    events: tuple[Event, ...]
    lane_report: IncidentReported | None
    """Set when the outcome concerns a P1/P2 incident: this report and the events also take
    the urgent lane (decision 0006)."""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    inserts: list[NewIncident]
    updates: list[IncidentUpdate]
    history: list[HistoryEntry]
    outcomes: list[ReportOutcome]
    """In the order the reports were decided: maybe-urgent first."""


@dataclass(slots=True)
class Merged:
    """What one merge into ``first`` produced (shared by the batch and the staff merge)."""

    history: list[HistoryEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    lane_report: IncidentReported | None = None


def _header(incident_id: UUID, now: datetime) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "incident_id": incident_id,
        "occurred_at": now,
        "recorded_at": now,
        "producer": "triage",
    }


def triaged_event(
    report: IncidentReported, decision: TriageDecision, report_count: int, now: datetime
) -> IncidentTriaged:
    return IncidentTriaged(
        **_header(report.incident_id, now),
        category=decision.category,
        priority=decision.effective_priority,
        confidence=decision.confidence,
        reasons=decision.reasons,
        top_categories=decision.top3,
        needs_review=decision.needs_review,
        buurt_code=report.location.buurt_code,
        wijk_code=report.location.wijk_code,
        acknowledge_by=decision.acknowledge_by,
        handle_by=decision.handle_by,
        recipients=decision.recipients,
        report_count=report_count,
    )


def merge_into(
    first: OpenIncident,
    *,
    duplicate_id: UUID,
    partner: str | None,
    reports: int,
    reason: str | None,
    actor: str | None,
    redecide: Redecide,
    now: datetime,
) -> Merged:
    """The one merge use case: the duplicate adds its ``reports`` (and its ``partner``, when
    known) to ``first``, both histories say so, IncidentMerged goes out, and more independent
    reports may raise ``first``'s priority (never lower it). Updates ``first`` in place."""
    done = Merged()
    first.report_count += reports
    if partner is not None:
        first.partners.add(partner)
    count = first.report_count
    done.history += [
        HistoryEntry(
            duplicate_id, "merged", actor, {"into": str(first.incident_id), "why": reason}
        ),
        HistoryEntry(
            first.incident_id,
            "report added",
            actor,
            {"duplicate": str(duplicate_id), "report_count": count},
        ),
    ]
    done.events.append(
        IncidentMerged(
            **_header(first.incident_id, now),
            duplicate_incident_id=duplicate_id,
            report_count=count,
            actor=actor,
            reason=reason,
        )
    )
    if is_urgent(first.effective_priority):
        done.lane_report = first.report
    _raise_for_reports(first, count, redecide, now, done)
    return done


def _raise_for_reports(
    first: OpenIncident, count: int, redecide: Redecide, now: datetime, done: Merged
) -> None:
    """Independent means from different partners: one partner resending a report under new
    external ids cannot raise an incident by itself."""
    independent = len(first.partners)
    again = decide_priority(
        first.category,
        first.report.flags,
        first.wijk_code,
        independent,
        at=first.report.occurred_at,
    )
    old = first.effective_priority
    if priority_rank(again.effective) >= priority_rank(old):
        return
    decision = redecide(
        first.report,
        category=first.category,
        priority=again.effective,
        report_count=independent,
        reviewed=not first.needs_review,
    )
    why = f"{count} reports from {independent} partners"
    done.history.append(
        HistoryEntry(
            first.incident_id,
            "priority raised",
            None,
            {"old": old, "new": again.effective, "why": why},
        )
    )
    done.events += [
        IncidentPriorityChanged(
            **_header(first.incident_id, now),
            old_priority=old,
            new_priority=again.effective,
            acknowledge_by=decision.acknowledge_by,
            handle_by=decision.handle_by,
            reason=why,
        ),
        triaged_event(first.report, decision, count, now),
    ]
    if is_urgent(again.effective):
        done.lane_report = first.report
    # Later reports of the batch see the incident as it is now.
    first.raised = decision
    first.category = decision.category
    first.effective_priority = decision.effective_priority
    first.needs_review = decision.needs_review


def _order(incident: OpenIncident) -> tuple[datetime, datetime]:
    return incident.occurred_at, incident.received_at


def find_first(
    report: IncidentReported, decision: TriageDecision, open_incidents: Sequence[OpenIncident]
) -> tuple[OpenIncident, float] | None:
    """The earliest open incident of the decided category within the category's distance
    and time window of ``report``, and the distance to it. A report that needs review, or
    has no point (only a buurt or an address), is never merged automatically."""
    lat, lon = report.location.lat, report.location.lon
    if decision.needs_review or lat is None or lon is None:
        return None
    window = duplicate_windows().for_category(decision.category)
    span = timedelta(minutes=window.minutes)
    dlat, dlon = window.metres * DEG_LAT_PER_M, window.metres * DEG_LON_PER_M
    for incident in open_incidents:  # in (occurred_at, received_at) order
        if (
            incident.category != decision.category
            or incident.incident_id == report.incident_id
            or incident.lat is None
            or incident.lon is None
            or not report.occurred_at - span <= incident.occurred_at <= report.occurred_at + span
            or not lat - dlat <= incident.lat <= lat + dlat
            or not lon - dlon <= incident.lon <= lon + dlon
        ):
            continue
        distance = metres_between(lat, lon, incident.lat, incident.lon)
        if distance <= window.metres:
            return incident, distance
    return None


def lane_first(report: IncidentReported) -> bool:
    """Sort key: within a batch, what may be urgent is decided first."""
    return not may_be_urgent(report.flags, report.category_hint)


def opened(report: IncidentReported, decision: TriageDecision) -> OpenIncident:
    """A report that became an incident of its own, as later reports may find it."""
    return OpenIncident(
        incident_id=report.incident_id,
        report=report,
        category=decision.category,
        occurred_at=report.occurred_at,
        received_at=report.recorded_at,
        lat=report.location.lat,
        lon=report.location.lon,
        wijk_code=report.location.wijk_code,
        effective_priority=decision.effective_priority,
        needs_review=decision.needs_review,
        report_count=1,
        partners={report.partner},
    )


def decide_batch(
    reports: Sequence[IncidentReported],
    decisions: Sequence[TriageDecision],
    snapshot: Sequence[OpenIncident],
    now: datetime,
    *,
    redecide: Redecide,
) -> BatchOutcome:
    """Decide a batch of classified reports against ``snapshot`` (the open incidents they
    may merge with, at least those of their categories within their windows): each becomes
    a new incident or is merged into an earlier one, from the snapshot or from this batch.
    ``snapshot`` is not changed."""
    pairs = sorted(zip(reports, decisions, strict=True), key=lambda p: lane_first(p[0]))
    candidates = sorted((_copy(i) for i in snapshot), key=_order)
    in_snapshot = {i.incident_id: i for i in candidates}
    batch_new: dict[UUID, OpenIncident] = {}
    inserts: list[tuple[IncidentReported, TriageDecision, UUID | None]] = []
    history: list[HistoryEntry] = []
    outcomes: list[ReportOutcome] = []
    for report, decision in pairs:
        found = find_first(report, decision, candidates)
        if found is None:
            inserts.append((report, decision, None))
            history.append(
                HistoryEntry(
                    report.incident_id, "triaged", None, {"reasons": list(decision.reasons)}
                )
            )
            incident = opened(report, decision)
            batch_new[report.incident_id] = incident
            bisect.insort(candidates, incident, key=_order)
            lane = report if is_urgent(decision.effective_priority) else None
            outcomes.append(
                ReportOutcome(
                    report, decision, None, (triaged_event(report, decision, 1, now),), lane
                )
            )
            continue
        first, metres = found
        minutes = abs((report.occurred_at - first.occurred_at).total_seconds()) / 60
        reason = f"same category {decision.category} {metres:.0f} m and {minutes:.0f} min apart"
        inserts.append((report, decision, first.incident_id))
        merged = merge_into(
            first,
            duplicate_id=report.incident_id,
            partner=report.partner,
            reports=1,
            reason=reason,
            actor=None,
            redecide=redecide,
            now=now,
        )
        history += merged.history
        outcomes.append(
            ReportOutcome(
                report, decision, first.incident_id, tuple(merged.events), merged.lane_report
            )
        )
    rows = [_row(report, decision, into, batch_new) for report, decision, into in inserts]
    loaded = {i.incident_id: i.report_count for i in snapshot}
    updates = [
        IncidentUpdate(
            i.incident_id, i.report_count, i.raised, i.report_count - loaded[i.incident_id]
        )
        for i in in_snapshot.values()
        if i.report_count != loaded[i.incident_id] or i.raised is not None
    ]
    return BatchOutcome(rows, updates, history, outcomes)


def _row(
    report: IncidentReported,
    decision: TriageDecision,
    into: UUID | None,
    batch_new: dict[UUID, OpenIncident],
) -> NewIncident:
    if into is not None:
        return NewIncident(report, decision, "merged", into, 1)
    # Its state at the end of the batch: later reports may have been merged into it.
    incident = batch_new[report.incident_id]
    return NewIncident(report, incident.raised or decision, "triaged", None, incident.report_count)


def _copy(incident: OpenIncident) -> OpenIncident:
    """The batch works on copies: the caller's snapshot stays as loaded."""
    return OpenIncident(
        incident_id=incident.incident_id,
        report=incident.report,
        category=incident.category,
        occurred_at=incident.occurred_at,
        received_at=incident.received_at,
        lat=incident.lat,
        lon=incident.lon,
        wijk_code=incident.wijk_code,
        effective_priority=incident.effective_priority,
        needs_review=incident.needs_review,
        report_count=incident.report_count,
        partners=set(incident.partners),
        raised=incident.raised,
    )
