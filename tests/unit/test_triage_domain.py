"""Triage's pure core for a batch of reports (services/triage/domain.py), as stories with
in-memory inputs: no broker, no database, no classifier."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from schemas.events import (
    Flags,
    IncidentMerged,
    IncidentPriorityChanged,
    IncidentReported,
    IncidentTriaged,
)
from schemas.geo import locate
from schemas.taxonomy import Priority, priority_rank
from schemas.timeutil import deadlines
from services.triage.decide import TriageDecision
from services.triage.domain import (
    BatchOutcome,
    OpenIncident,
    decide_batch,
    opened,
)
from services.triage.priority import decide_priority

SCHALKWIJK = (52.3590, 4.6560)
NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # a Tuesday afternoon: no night-time raises


def report(
    *,
    at: datetime = NOW - timedelta(minutes=10),
    lat: float | None = SCHALKWIJK[0],
    lon: float | None = SCHALKWIJK[1],
    partner: str = "bewonersportaal",
    hint: str | None = None,
    flags: Flags | None = None,
) -> IncidentReported:
    return IncidentReported(
        event_id=uuid.uuid4(),
        incident_id=uuid.uuid4(),
        occurred_at=at,
        recorded_at=at + timedelta(seconds=30),
        producer="intake",
        partner=partner,
        partner_kind="citizen",
        channel="http",
        external_id=uuid.uuid4().hex,
        description="iets gezien",
        category_hint=hint,
        location=locate(lat=lat, lon=lon),
        flags=flags or Flags(),
    )


def decision(
    category: str, priority: Priority, *, needs_review: bool = False, at: datetime = NOW
) -> TriageDecision:
    acknowledge_by, handle_by = deadlines(priority, at)
    return TriageDecision(
        category=category,
        priority=priority,
        effective_priority=priority,
        confidence=0.9,
        needs_review=needs_review,
        reasons=(f"decided {category} {priority}",),
        top3=(),
        recipients=(),
        acknowledge_by=acknowledge_by,
        handle_by=handle_by,
    )


def policy(category: str, reported: IncidentReported) -> Priority:
    """The priority the policy gives one report, so that a merge alone raises nothing."""
    where = reported.location.wijk_code
    return decide_priority(category, reported.flags, where, 1, at=reported.occurred_at).effective


def redecide(
    report: IncidentReported,
    *,
    category: str | None = None,
    priority: Priority | None = None,
    report_count: int = 1,
    reviewed: bool = False,
) -> TriageDecision:
    """Stands in for Triage.decide: what a person (or the raise) set is what it decides."""
    assert category is not None and priority is not None
    return decision(category, priority, at=report.recorded_at)


def decide(
    reports: Sequence[IncidentReported],
    decisions: Sequence[TriageDecision],
    snapshot: Sequence[OpenIncident] = (),
) -> BatchOutcome:
    return decide_batch(reports, decisions, snapshot, NOW, redecide=redecide)


def in_snapshot(first: IncidentReported, category: str, priority: Priority) -> OpenIncident:
    """An incident triaged in an earlier batch, as the shell loads it."""
    return opened(first, decision(category, priority))


def nearby(lat_offset: float = 0.0006, lon_offset: float = 0.0009) -> tuple[float, float]:
    """About 90 m north-east of Schalkwijk's point."""
    return SCHALKWIJK[0] + lat_offset, SCHALKWIJK[1] + lon_offset


def test_two_reports_of_one_fire_in_one_batch_become_one_incident_with_two_reports() -> None:
    first = report(at=NOW - timedelta(minutes=10))
    lat, lon = nearby()
    second = report(at=NOW - timedelta(minutes=5), lat=lat, lon=lon)  # the same partner
    fire = decision("brand", policy("brand", first))

    outcome = decide([first, second], [fire, fire])

    incident, duplicate = outcome.inserts
    assert (incident.report, incident.status, incident.report_count) == (first, "triaged", 2)
    assert (duplicate.report, duplicate.status) == (second, "merged")
    assert duplicate.merged_into == first.incident_id
    assert outcome.updates == []  # nothing from an earlier batch changed
    opened_, merged = outcome.outcomes
    assert [type(e) for e in opened_.events] == [IncidentTriaged]
    (event,) = merged.events
    assert isinstance(event, IncidentMerged)
    assert (event.incident_id, event.duplicate_incident_id) == (
        first.incident_id,
        second.incident_id,
    )
    assert event.report_count == 2
    assert event.reason == "same category brand 90 m and 5 min apart"
    assert [(h.incident_id, h.kind) for h in outcome.history] == [
        (first.incident_id, "triaged"),
        (second.incident_id, "merged"),
        (first.incident_id, "report added"),
    ]
    # A P1/P2 fire: both outcomes take the urgent lane, with the report that opened it.
    assert opened_.lane_report == first and merged.lane_report == first


def test_a_report_merges_into_an_incident_of_an_earlier_batch() -> None:
    first = report(at=NOW - timedelta(minutes=20), hint="vandalisme")
    earlier = in_snapshot(first, "vandalisme", "P4")
    lat, lon = nearby()
    later = report(at=NOW - timedelta(minutes=2), lat=lat, lon=lon)

    outcome = decide([later], [decision("vandalisme", "P4")], [earlier])

    (row,) = outcome.inserts
    assert (row.status, row.merged_into) == ("merged", first.incident_id)
    (update,) = outcome.updates
    assert (update.incident_id, update.report_count, update.decision) == (
        first.incident_id,
        2,
        None,
    )
    (merged,) = outcome.outcomes
    assert merged.lane_report is None  # a P4 stays in the ordinary lane
    assert earlier.report_count == 1  # the caller's snapshot is left as loaded


def test_one_partner_resending_cannot_raise_an_incident_another_partners_report_does() -> None:
    text = "woonoverlast"
    t0 = NOW - timedelta(minutes=20)
    first = report(at=t0, hint=text)
    before = decide_priority(text, first.flags, first.location.wijk_code, 1, at=t0).effective
    earlier = in_snapshot(first, text, before)
    resent = report(at=t0 + timedelta(minutes=1), hint=text)  # the same partner again
    other = report(at=t0 + timedelta(minutes=2), hint=text, partner="wijkapp")

    outcome = decide([resent, other], [decision(text, before)] * 2, [earlier])

    resent_outcome, other_outcome = outcome.outcomes
    assert [type(e) for e in resent_outcome.events] == [IncidentMerged]
    merged, raised, triaged = other_outcome.events
    assert isinstance(merged, IncidentMerged) and merged.report_count == 3
    assert isinstance(raised, IncidentPriorityChanged)
    assert raised.old_priority == before
    assert priority_rank(raised.new_priority) == priority_rank(before) - 1
    assert raised.reason == "3 reports from 2 partners"
    assert isinstance(triaged, IncidentTriaged)
    assert (triaged.priority, triaged.report_count) == (raised.new_priority, 3)
    (update,) = outcome.updates
    assert update.report_count == 3
    assert update.decision is not None
    assert update.decision.effective_priority == raised.new_priority
    assert [h.kind for h in outcome.history if h.incident_id == first.incident_id] == [
        "report added",
        "report added",
        "priority raised",
    ]


def test_a_third_partner_raises_no_further_more_reports_confirm_not_aggravate() -> None:
    text = "woonoverlast"
    t0 = NOW - timedelta(minutes=20)
    first = report(at=t0, hint=text)
    two = decide_priority(text, first.flags, first.location.wijk_code, 2, at=t0).effective
    earlier = in_snapshot(first, text, two)
    earlier.partners.add("wijkapp")
    earlier.report_count = 2
    third = report(at=t0 + timedelta(minutes=3), hint=text, partner="politie")

    outcome = decide([third], [decision(text, two)], [earlier])

    (merged,) = outcome.outcomes
    assert [type(e) for e in merged.events] == [IncidentMerged]
    (update,) = outcome.updates
    assert (update.report_count, update.decision) == (3, None)


def test_a_report_without_a_point_never_merges() -> None:
    first = report(hint="vandalisme")
    earlier = in_snapshot(first, "vandalisme", "P4")
    same_time = report(hint="vandalisme")
    only_a_buurt = report(lat=None, lon=None, hint="vandalisme")
    graffiti = decision("vandalisme", "P4")

    outcome = decide([only_a_buurt, same_time], [graffiti, graffiti], [earlier])

    assert [(r.report, r.status) for r in outcome.inserts] == [
        (only_a_buurt, "triaged"),
        (same_time, "merged"),  # the one with a point does merge
    ]


def test_a_report_that_needs_review_never_merges() -> None:
    first = report()
    earlier = in_snapshot(first, "vandalisme", "P4")
    unsure = report()

    outcome = decide([unsure], [decision("vandalisme", "P4", needs_review=True)], [earlier])

    assert [r.status for r in outcome.inserts] == ["triaged"]
    assert outcome.updates == []


def test_outside_the_category_window_or_category_is_a_new_incident() -> None:
    first = report(at=NOW - timedelta(hours=3))
    earlier = in_snapshot(first, "vandalisme", "P4")
    lat, lon = nearby(lat_offset=0.01)  # over a kilometre away
    too_late, too_far, other_kind = report(), report(lat=lat, lon=lon), report()
    p4 = decision("vandalisme", "P4")

    outcome = decide(
        [too_late, too_far, other_kind], [p4, p4, decision("woonoverlast", "P4")], [earlier]
    )

    assert [r.status for r in outcome.inserts] == ["triaged", "triaged", "triaged"]


def test_the_urgent_ones_come_first_and_the_rest_merge_into_them() -> None:
    graffiti = report(hint="vandalisme")
    smoke = report(at=NOW - timedelta(minutes=8))  # no flag, no hint: not known urgent yet
    fire = report(at=NOW - timedelta(minutes=6), flags=Flags(in_progress=True))

    outcome = decide(
        [graffiti, smoke, fire],
        [decision("vandalisme", "P4"), decision("brand", "P1"), decision("brand", "P1")],
    )

    assert [o.report for o in outcome.outcomes] == [fire, graffiti, smoke]
    first, vandalism, duplicate = outcome.outcomes
    assert first.lane_report == fire and vandalism.lane_report is None
    # The report that may be urgent opened the incident, though it happened later.
    assert duplicate.merged_into == fire.incident_id
    assert duplicate.lane_report == fire
