"""What must hold after a fault, checked from the ground truth (pure: no I/O here).

The inputs are what a partner was told (:class:`Report`), what is on the topics as a real
consumer reads it (:class:`IncidentFact`, :class:`NotificationFact`, :class:`DeadLetter`),
what the receivers accepted (:class:`Delivery`) and what analytics holds. :func:`check` turns
them into a :class:`Verdict`:

- every accepted report has exactly one ``incident.reported`` event (distinct event ids), and
  one partner report (external id) is one incident;
- every reported incident has exactly one triage outcome: its first ``IncidentTriaged``
  (``report_count`` 1) or the ``IncidentMerged`` that closed it as a duplicate;
- every recipient a decision routed the incident to received a message (a verified signature
  for webhooks); a second *distinct* message id for the same incident, recipient and purpose
  (alert/update/cancel) is a duplicated effect, the same message id received again is an
  allowed at-least-once redelivery, counted apart;
- nothing was dead-lettered;
- analytics holds exactly the events of those incidents that the topics hold.

An accepted incident is *lost* when any of its reported event, triage outcome or deliveries
is missing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

MessageKind = Literal["alert", "update", "cancel"]


@dataclass(frozen=True, slots=True)
class Report:
    """One report as the partner saw it: accepted when it got an incident id back."""

    external_id: str
    status: int  # last HTTP status; 0: no answer
    incident_id: str | None
    attempts: int = 1
    answered: float = 0.0  # wall clock of the last answer


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: from when to when (wall clock), and what it was."""

    start: float
    end: float
    what: str


@dataclass(frozen=True, slots=True)
class IncidentFact:
    """An event off incident-events (the fields the invariants need)."""

    event_id: str
    incident_id: str
    type: str  # reported, triaged, merged, priority-changed, ...
    external_id: str | None = None  # reported
    report_count: int | None = None  # triaged, merged
    duplicate_incident_id: str | None = None  # merged: the incident closed as a duplicate
    recipients: tuple[str, ...] = ()  # triaged
    needs_review: bool = False  # triaged: waits in the triage queue, nobody alerted yet


@dataclass(frozen=True, slots=True)
class NotificationFact:
    """An event off notification-events."""

    event_id: str
    incident_id: str
    type: str  # dispatched, delivered, failed, escalated, acknowledged
    message_id: str
    recipient: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message a receiver accepted (webhook: 2xx given; e-mail: 250 given)."""

    message_id: str  # webhook-id, or the id in the e-mail's Message-ID
    incident_id: str | None
    route: str  # the receiver's path (a recipient kind) or the e-mail address
    kind: MessageKind
    received_at: float
    verified: bool = True  # webhooks: the signature checked out
    channel: Literal["webhook", "email"] = "webhook"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    key: str | None
    reason: str | None
    timestamp: float


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything one scenario's check looks at."""

    reports: Sequence[Report]
    incident_events: Sequence[IncidentFact]
    notification_events: Sequence[NotificationFact]
    deliveries: Sequence[Delivery]
    dead_letters: Sequence[DeadLetter]
    analytics_events: Mapping[str, Collection[str]]  # incident id -> event ids analytics has
    analytics_incidents: Collection[str]  # incident ids with a row in incident_facts
    faults: Sequence[Fault]  # recovery is measured from the end of each


@dataclass
class Verdict:
    sent: int
    accepted: int
    lost: int
    duplicated: int
    dead_lettered: int
    redelivered: int  # same message id received again: allowed
    recovery_seconds: float | None  # the longest; None: not every accepted report delivered
    analytics_off: int  # events analytics lacks or has extra, and incidents it has no row of
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _identity(code: str) -> str:
    return code


def check(observed: Observed, kind_of: Callable[[str], str] = _identity) -> Verdict:
    """The verdict on one scenario. ``kind_of`` maps a concrete recipient code to the kind
    whose receiver path it is delivered on (``politie.wijkagent.WK039201`` →
    ``politie.wijkagent.{wijk}``), for a delivery whose message id no event names."""
    accepted = {r.incident_id for r in observed.reports if r.incident_id is not None}
    problems: list[str] = []
    details: dict[str, Any] = {}

    reported, by_external = _reported(observed.incident_events, accepted)
    no_report = sorted(i for i in accepted if not reported[i])
    extra_reports = sum(len(ids) - 1 for ids in reported.values() if len(ids) > 1)
    ours = {r.external_id for r in observed.reports}
    split_reports = {x: sorted(ids) for x, ids in by_external.items() if len(ids) > 1 and x in ours}
    # A report the partner never saw accepted may still have been stored (the answer was
    # lost): fine, as long as it is one incident.
    answered = {r.external_id for r in observed.reports if r.incident_id is not None}
    unanswered = sorted(x for x in by_external if x in ours and x not in answered)

    outcomes = _outcomes(observed.incident_events, accepted)
    no_outcome = sorted(i for i in accepted if reported[i] and not outcomes[i])
    extra_outcomes = sum(len(ids) - 1 for ids in outcomes.values() if len(ids) > 1)

    routed = _routed(observed.incident_events, accepted)
    recipient_of = {n.message_id: n.recipient for n in observed.notification_events}
    messages: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    receipts: dict[str, int] = defaultdict(int)
    first_receipt: dict[tuple[str, str], float] = {}
    unverified = 0
    for d in observed.deliveries:
        if d.incident_id not in accepted:
            continue
        if not d.verified:
            unverified += 1
            continue
        recipient = recipient_of.get(d.message_id) or _by_route(
            routed.get(d.incident_id, set()), d.route, kind_of
        )
        messages[(d.incident_id, recipient, d.kind)].add(d.message_id)
        receipts[d.message_id] += 1
        key = (d.incident_id, recipient)
        first_receipt[key] = min(first_receipt.get(key, d.received_at), d.received_at)
    undelivered = sorted(
        f"{i} → {r}" for i, rs in routed.items() for r in rs if (i, r) not in first_receipt
    )
    extra_messages = {k: sorted(v) for k, v in messages.items() if len(v) > 1}
    redelivered = sum(n - 1 for n in receipts.values())

    lost_ids = set(no_report) | set(no_outcome) | {u.split(" → ")[0] for u in undelivered}
    duplicated = (
        extra_reports
        + sum(len(v) - 1 for v in split_reports.values())
        + extra_outcomes
        + sum(len(v) - 1 for v in extra_messages.values())
    )

    expected = _events_by_incident(observed, accepted)
    missing: dict[str, list[str]] = {}
    extra: dict[str, list[str]] = {}
    for incident in accepted:
        has, wanted = (
            set(observed.analytics_events.get(incident, ())),
            expected.get(incident, set()),
        )
        if wanted - has:
            missing[incident] = sorted(wanted - has)
        if has - wanted:
            extra[incident] = sorted(has - wanted)
    no_facts = sorted(i for i in accepted if reported[i] and i not in observed.analytics_incidents)
    analytics_off = sum(map(len, missing.values())) + sum(map(len, extra.values())) + len(no_facts)

    if no_report:
        problems.append(f"{len(no_report)} accepted reports have no incident.reported event")
    if extra_reports:
        problems.append(f"{extra_reports} extra incident.reported events (same incident)")
    if split_reports:
        problems.append(f"{len(split_reports)} reports became more than one incident")
    if no_outcome:
        problems.append(f"{len(no_outcome)} reported incidents have no triage outcome")
    if extra_outcomes:
        problems.append(f"{extra_outcomes} extra triage outcomes")
    if undelivered:
        problems.append(f"{len(undelivered)} routed recipients never received their message")
    if extra_messages:
        problems.append(
            f"{sum(len(v) - 1 for v in extra_messages.values())} duplicated messages "
            "(a second message id for the same incident, recipient and purpose)"
        )
    if unverified:
        problems.append(f"{unverified} deliveries failed signature verification")
    if observed.dead_letters:
        problems.append(f"{len(observed.dead_letters)} records dead-lettered")
    if analytics_off:
        problems.append(
            f"analytics differs from the topics: {sum(map(len, missing.values()))} events "
            f"missing, {sum(map(len, extra.values()))} extra, {len(no_facts)} incidents "
            "without facts"
        )

    delivered_at = _delivered_at(routed, first_receipt)
    recoveries = [] if lost_ids else _recoveries(observed, delivered_at)
    recovery = max((r for _, r in recoveries), default=None)

    details.update(
        {
            "not_reported": no_report[:20],
            "split_reports": dict(list(split_reports.items())[:20]),
            "stored_unanswered": len(unanswered),
            "no_triage_outcome": no_outcome[:20],
            "undelivered": undelivered[:20],
            "duplicated_messages": {" / ".join(k): v for k, v in list(extra_messages.items())[:20]},
            "routed_recipients": sum(len(r) for r in routed.values()),
            "unverified_deliveries": unverified,
            "dead_letters": _dead_letter_summary(observed.dead_letters),
            "analytics_missing": dict(list(missing.items())[:10]),
            "analytics_extra": dict(list(extra.items())[:10]),
            "analytics_without_facts": no_facts[:20],
            "retried_reports": sum(r.attempts > 1 for r in observed.reports),
            "most_attempts": max((r.attempts for r in observed.reports), default=0),
            # A report accepted late (its partner retried through the fault) is delivered
            # late: part of the recovery time, and this shows how much.
            "last_accepted_after_fault_seconds": _last_accepted(observed),
            "recovery_per_fault": [
                {"fault": f.what, "seconds": round(r, 2)} for f, r in recoveries
            ],
        }
    )
    return Verdict(
        sent=len(observed.reports),
        accepted=len(accepted),
        lost=len(lost_ids),
        duplicated=duplicated,
        dead_lettered=len(observed.dead_letters),
        redelivered=redelivered,
        recovery_seconds=recovery,
        analytics_off=analytics_off,
        problems=problems,
        details=details,
    )


def _reported(
    events: Iterable[IncidentFact], accepted: Collection[str]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """incident -> its reported event ids; external id -> the incidents reported for it."""
    reported: dict[str, set[str]] = {i: set() for i in accepted}
    by_external: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.type != "reported":
            continue
        if e.incident_id in reported:
            reported[e.incident_id].add(e.event_id)
        if e.external_id is not None:
            by_external[e.external_id].add(e.incident_id)
    return reported, by_external


def _outcomes(events: Iterable[IncidentFact], accepted: Collection[str]) -> dict[str, set[str]]:
    """incident -> the event ids of its first decision (later re-decisions after a merge
    carry report_count > 1 and are no outcome of their own)."""
    outcomes: dict[str, set[str]] = {i: set() for i in accepted}
    for e in events:
        if e.type == "triaged" and (e.report_count or 1) == 1 and e.incident_id in outcomes:
            outcomes[e.incident_id].add(e.event_id)
        elif e.type == "merged" and e.duplicate_incident_id in outcomes:
            outcomes[e.duplicate_incident_id].add(e.event_id)
    return outcomes


def _routed(events: Iterable[IncidentFact], accepted: Collection[str]) -> dict[str, set[str]]:
    """incident -> every recipient a decision alerted (one waiting for review alerts none)."""
    routed: dict[str, set[str]] = {}
    for e in events:
        if e.type == "triaged" and e.incident_id in accepted and not e.needs_review:
            routed.setdefault(e.incident_id, set()).update(e.recipients)
    return routed


def _by_route(routed: Collection[str], route: str, kind_of: Callable[[str], str]) -> str:
    """The recipient a delivery on ``route`` was for, when no event names its message id:
    the one routed recipient of that kind, else the route itself."""
    matching = [r for r in routed if r == route or kind_of(r) == route]
    return matching[0] if len(matching) == 1 else route


def _delivered_at(
    routed: Mapping[str, Collection[str]], first: Mapping[tuple[str, str], float]
) -> dict[str, float]:
    """incident -> when the last of its routed recipients got its first message."""
    done = {}
    for incident, recipients in routed.items():
        times = [first.get((incident, r)) for r in recipients]
        if all(t is not None for t in times):
            done[incident] = max((t for t in times if t is not None), default=0.0)
    return done


def _recoveries(observed: Observed, delivered_at: Mapping[str, float]) -> list[tuple[Fault, float]]:
    """Per fault: from its end until every report accepted by then (after the last fault:
    every accepted report) was delivered to all its recipients; 0 when nothing waited."""
    faults = sorted(observed.faults, key=lambda f: f.end)
    found = []
    for n, fault in enumerate(faults):
        last = n == len(faults) - 1
        waiting = [
            delivered_at[r.incident_id]
            for r in observed.reports
            if r.incident_id in delivered_at and (last or r.answered <= fault.end)
        ]
        found.append((fault, max(0.0, max(waiting, default=fault.end) - fault.end)))
    return found


def _last_accepted(observed: Observed) -> float | None:
    answered = [r.answered for r in observed.reports if r.incident_id is not None]
    end = max((f.end for f in observed.faults), default=None)
    if not answered or end is None:
        return None
    return round(max(answered) - end, 2)


def _events_by_incident(observed: Observed, accepted: Collection[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for e in (*observed.incident_events, *observed.notification_events):
        if e.incident_id in accepted:
            found[e.incident_id].add(e.event_id)
    return dict(found)


def _dead_letter_summary(letters: Sequence[DeadLetter]) -> dict[str, int]:
    summary: dict[str, int] = defaultdict(int)
    for letter in letters:
        summary[f"{letter.topic}: {letter.reason or '(no reason)'}"[:200]] += 1
    return dict(summary)
