"""The chaos run's invariant checker, on in-memory ground truth: clean, lost, duplicated."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from tools.chaos.invariants import (
    DeadLetter,
    Delivery,
    Fault,
    IncidentFact,
    NotificationFact,
    Observed,
    Report,
    check,
)

T0 = 1_000.0
FAULT = Fault(T0 + 5, T0 + 15, "PostgreSQL stopped")


def _incident(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _events(n: int, recipients: Sequence[str] = ("handhaving",)) -> list[IncidentFact]:
    incident = _incident(n)
    return [
        IncidentFact(f"rep-{n}", incident, "reported", external_id=f"x-{n}"),
        IncidentFact(f"tri-{n}", incident, "triaged", report_count=1, recipients=tuple(recipients)),
    ]


def _notifications(n: int, recipient: str = "handhaving") -> list[NotificationFact]:
    incident = _incident(n)
    return [
        NotificationFact(f"dis-{n}-{recipient}", incident, "dispatched", f"msg-{n}", recipient),
        NotificationFact(f"del-{n}-{recipient}", incident, "delivered", f"msg-{n}", recipient),
    ]


def _delivery(n: int, at: float, message: str | None = None) -> Delivery:
    return Delivery(
        message_id=message or f"msg-{n}",
        incident_id=_incident(n),
        route="handhaving",
        kind="alert",
        received_at=at,
    )


def clean(count: int = 3) -> Observed:
    """``count`` reports, each reported, triaged, delivered once and counted by analytics."""
    incident_events = [e for n in range(count) for e in _events(n)]
    notifications = [e for n in range(count) for e in _notifications(n)]
    analytics: dict[str, set[str]] = {}
    for event in [*incident_events, *notifications]:
        analytics.setdefault(event.incident_id, set()).add(event.event_id)
    return Observed(
        reports=[Report(f"x-{n}", 202, _incident(n), answered=T0 + n * 10) for n in range(count)],
        incident_events=incident_events,
        notification_events=notifications,
        deliveries=[_delivery(n, T0 + n * 10 + 2) for n in range(count)],
        dead_letters=[],
        analytics_events=analytics,
        analytics_incidents={_incident(n) for n in range(count)},
        faults=[FAULT],
    )


def test_a_clean_run_holds_every_invariant_and_measures_recovery() -> None:
    verdict = check(clean())
    assert verdict.ok, verdict.problems
    assert (verdict.sent, verdict.accepted, verdict.lost, verdict.duplicated) == (3, 3, 0, 0)
    assert verdict.dead_lettered == verdict.redelivered == verdict.analytics_off == 0
    # The last report was delivered at T0 + 22, the fault ended at T0 + 15.
    assert verdict.recovery_seconds == pytest.approx(7.0)


def test_a_refused_report_is_sent_but_not_accepted_and_not_lost() -> None:
    observed = clean()
    observed = dataclasses.replace(
        observed, reports=[*observed.reports, Report("x-9", 503, None, attempts=40)]
    )
    verdict = check(observed)
    assert verdict.ok
    assert (verdict.sent, verdict.accepted, verdict.lost) == (4, 3, 0)
    assert verdict.details["retried_reports"] == 1


def test_an_accepted_report_without_its_event_is_lost() -> None:
    observed = clean()
    observed = dataclasses.replace(
        observed,
        incident_events=[e for e in observed.incident_events if e.event_id != "rep-1"],
    )
    verdict = check(observed)
    assert not verdict.ok
    assert verdict.lost == 1
    assert verdict.recovery_seconds is None
    assert any("no incident.reported" in p for p in verdict.problems)


def test_a_routed_recipient_that_got_nothing_is_lost() -> None:
    observed = clean()
    observed = dataclasses.replace(
        observed,
        deliveries=[d for d in observed.deliveries if d.incident_id != _incident(2)],
    )
    verdict = check(observed)
    assert verdict.lost == 1
    assert verdict.details["undelivered"] == [f"{_incident(2)} → handhaving"]
    assert verdict.recovery_seconds is None


def test_an_incident_never_triaged_is_lost() -> None:
    observed = clean()
    observed = dataclasses.replace(
        observed,
        incident_events=[e for e in observed.incident_events if e.event_id != "tri-0"],
    )
    verdict = check(observed)
    assert verdict.lost == 1
    assert verdict.details["no_triage_outcome"] == [_incident(0)]


def test_a_second_message_id_for_the_same_purpose_is_a_duplicated_effect() -> None:
    observed = clean()
    observed = dataclasses.replace(
        observed, deliveries=[*observed.deliveries, _delivery(0, T0 + 30, message="msg-0-again")]
    )
    verdict = check(observed)
    assert not verdict.ok
    assert verdict.duplicated == 1
    assert verdict.redelivered == 0


def test_the_same_message_id_again_is_an_allowed_redelivery() -> None:
    observed = clean()
    observed = dataclasses.replace(
        observed, deliveries=[*observed.deliveries, _delivery(1, T0 + 80)]
    )
    verdict = check(observed)
    assert verdict.ok, verdict.problems
    assert (verdict.duplicated, verdict.redelivered) == (0, 1)
    # Recovery counts the first arrival, not the redelivery.
    assert verdict.recovery_seconds == pytest.approx(7.0)


def test_an_update_is_no_duplicate_of_the_alert() -> None:
    observed = clean()
    update = dataclasses.replace(_delivery(0, T0 + 40, message="msg-0-update"), kind="update")
    verdict = check(dataclasses.replace(observed, deliveries=[*observed.deliveries, update]))
    assert verdict.ok, verdict.problems


def test_duplicated_events_and_split_reports_are_duplicated_effects() -> None:
    observed = clean()
    incident = _incident(0)
    extra = [
        IncidentFact("rep-0-bis", incident, "reported", external_id="x-0"),
        IncidentFact("tri-0-bis", incident, "triaged", report_count=1, recipients=("handhaving",)),
        # A retry of report 1 that became a second incident.
        IncidentFact("rep-1-split", _incident(77), "reported", external_id="x-1"),
    ]
    verdict = check(
        dataclasses.replace(observed, incident_events=[*observed.incident_events, *extra])
    )
    assert verdict.duplicated == 3
    assert verdict.lost == 0
    assert verdict.details["split_reports"] == {"x-1": sorted([_incident(1), _incident(77)])}


def test_a_merge_is_the_triage_outcome_of_the_duplicate() -> None:
    observed = clean(2)
    first, duplicate = _incident(0), _incident(1)
    incident_events = [
        *_events(0),
        IncidentFact("rep-1", duplicate, "reported", external_id="x-1"),
        IncidentFact("mrg-1", first, "merged", report_count=2, duplicate_incident_id=duplicate),
        # The first incident decided again with two reports: no second outcome of its own.
        IncidentFact("tri-0-again", first, "triaged", report_count=2, recipients=("handhaving",)),
    ]
    analytics = {first: {"rep-0", "tri-0", "mrg-1", "tri-0-again", "dis-0-handhaving",
                         "del-0-handhaving"}, duplicate: {"rep-1"}}  # fmt: skip
    verdict = check(
        dataclasses.replace(
            observed,
            incident_events=incident_events,
            notification_events=_notifications(0),
            deliveries=[_delivery(0, T0 + 2)],
            analytics_events=analytics,
        )
    )
    assert verdict.ok, verdict.problems


def test_a_decision_waiting_for_review_alerts_nobody_yet() -> None:
    observed = clean(1)
    waiting = IncidentFact(
        "tri-0", _incident(0), "triaged", report_count=1, recipients=("handhaving",),
        needs_review=True,
    )  # fmt: skip
    verdict = check(
        dataclasses.replace(
            observed,
            incident_events=[observed.incident_events[0], waiting],
            notification_events=[],
            deliveries=[],
            analytics_events={_incident(0): {"rep-0", "tri-0"}},
        )
    )
    assert verdict.ok, verdict.problems


def test_unverified_deliveries_do_not_count_as_received() -> None:
    observed = clean(1)
    forged = dataclasses.replace(observed.deliveries[0], verified=False)
    verdict = check(dataclasses.replace(observed, deliveries=[forged]))
    assert verdict.lost == 1
    assert verdict.details["unverified_deliveries"] == 1


def test_a_delivery_without_an_event_is_matched_by_its_route() -> None:
    """Notify's events may lag: a webhook on the kind's path is the routed recipient of that
    kind."""
    observed = clean(1)
    triaged = dataclasses.replace(
        observed.incident_events[1], recipients=("politie.wijkagent.WK1",)
    )
    verdict = check(
        dataclasses.replace(
            observed,
            incident_events=[observed.incident_events[0], triaged],
            notification_events=[],
            deliveries=[dataclasses.replace(observed.deliveries[0], route="politie.wijkagent")],
            analytics_events={_incident(0): {"rep-0", "tri-0"}},
        ),
        kind_of=lambda code: code.rsplit(".", 1)[0],
    )
    assert verdict.ok, verdict.problems


def test_dead_letters_break_the_run() -> None:
    observed = dataclasses.replace(
        clean(), dead_letters=[DeadLetter("incident-events.dlq", "k", "db down", T0 + 6)]
    )
    verdict = check(observed)
    assert not verdict.ok
    assert verdict.dead_lettered == 1
    assert verdict.details["dead_letters"] == {"incident-events.dlq: db down": 1}


def test_analytics_missing_or_extra_events_is_reported() -> None:
    observed = clean()
    analytics = {i: set(e) for i, e in observed.analytics_events.items()}
    analytics[_incident(0)].discard("del-0-handhaving")
    analytics[_incident(1)].add("not-on-any-topic")
    verdict = check(
        dataclasses.replace(
            observed,
            analytics_events=analytics,
            analytics_incidents={_incident(0), _incident(1)},
        )
    )
    assert not verdict.ok
    assert verdict.analytics_off == 3
    assert verdict.lost == 0


def test_recovery_is_the_longest_over_the_faults() -> None:
    observed = clean()
    first = Fault(T0 - 10, T0 - 5, "SIGKILL intake")  # report 0 (answered T0) came after it
    early = Fault(T0 + 1, T0 + 1, "SIGKILL notify")  # report 0 waited: delivered T0 + 2
    verdict = check(dataclasses.replace(observed, faults=[first, early, FAULT]))
    per_fault = {r["fault"]: r["seconds"] for r in verdict.details["recovery_per_fault"]}
    assert per_fault == {"SIGKILL intake": 0.0, "SIGKILL notify": 1.0, "PostgreSQL stopped": 7.0}
    assert verdict.recovery_seconds == pytest.approx(7.0)
