"""The incident workflow: which status changes and which staff actions are allowed, as data.

Statuses are the event contract's (:data:`schemas.events.IncidentStatus`), because events carry
them and the log is replayed forever. The informal names of the workflow map onto them:

==============  =====================  ================================================
informal        contract               why
==============  =====================  ================================================
new             ``reported``           IncidentReported is an incident's first fact
triaged         ``triaged``
needs_review    ``triaged``            a property of the triaged incident
                                       (IncidentTriaged.needs_review), not a status: a
                                       report in the review queue keeps its deadlines
notified        ``triaged``            notification is per recipient (notification
                                       events), not a state of the incident
acknowledged    ``acknowledged``       the first recipient took responsibility
in_progress     ``in_progress``
(waiting)       ``on_hold``            waiting for information or a third party
resolved        ``resolved``           IncidentResolved closes with an outcome, so
closed          ``resolved``           there is no separate closed status
duplicate       ``merged``             IncidentMerged closes the later incident
reopened        ``reopened``           a resolved or merged incident is open again
cancelled       ``cancelled``          withdrawn by the reporting partner or called
                                       off by staff; final
==============  =====================  ================================================
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal, get_args

from schemas.events import IncidentStatus
from services.common.staff import Role

STATUSES: tuple[IncidentStatus, ...] = get_args(IncidentStatus)

# Open statuses: someone may still act on the incident.
OPEN_STATUSES: tuple[IncidentStatus, ...] = (
    "triaged",
    "acknowledged",
    "in_progress",
    "on_hold",
    "reopened",
)

ALLOWED_TRANSITIONS: Mapping[IncidentStatus, frozenset[IncidentStatus]] = {
    "reported": frozenset({"triaged", "merged", "cancelled"}),
    "triaged": frozenset({"acknowledged", "on_hold", "merged", "resolved", "cancelled"}),
    "acknowledged": frozenset({"in_progress", "on_hold", "merged", "resolved", "cancelled"}),
    "in_progress": frozenset({"on_hold", "merged", "resolved", "cancelled"}),
    # Back to triaged when nobody had acknowledged it yet, else work resumes.
    "on_hold": frozenset({"triaged", "in_progress", "merged", "resolved", "cancelled"}),
    # Re-triaged (new priority, recipients) or picked up again by a recipient.
    "reopened": frozenset(
        {"triaged", "acknowledged", "in_progress", "merged", "resolved", "cancelled"}
    ),
    "resolved": frozenset({"reopened"}),
    "merged": frozenset({"reopened"}),  # unmerge
    "cancelled": frozenset(),
}
"""old status -> the statuses it may change to."""

Action = Literal[
    "acknowledge",
    "reclassify",
    "change_priority",
    "merge",
    "unmerge",
    "resolve",
    "reopen",
    "withdraw",
    "assign",
    "start",
    "hold",
    "cancel",
]


def _stay(*statuses: IncidentStatus) -> dict[IncidentStatus, IncidentStatus]:
    return {s: s for s in statuses}


def _to(target: IncidentStatus, *statuses: IncidentStatus) -> dict[IncidentStatus, IncidentStatus]:
    return dict.fromkeys(statuses, target)


ACTIONS: Mapping[Action, Mapping[IncidentStatus, IncidentStatus]] = {
    # Every recipient acknowledges for itself; the first one moves the incident on.
    "acknowledge": {
        **_to("acknowledged", "triaged", "reopened"),
        **_stay("acknowledged", "in_progress", "on_hold"),
    },
    "reclassify": _stay(*OPEN_STATUSES),
    "change_priority": _stay(*OPEN_STATUSES),
    # Of the later (duplicate) incident, also straight from intake when triage spots it.
    "merge": _to("merged", "reported", *OPEN_STATUSES),
    "unmerge": _to("reopened", "merged"),
    "resolve": _to("resolved", *OPEN_STATUSES),
    "reopen": _to("reopened", "resolved"),
    # The reporting partner withdraws its report (through intake): only while it is open.
    "withdraw": _to("cancelled", "reported", *OPEN_STATUSES),
    # Staff in the console: an owner (claim is assigning oneself), work started (someone
    # took it, or it comes back from hold), waiting with a resume time, called off.
    "assign": _stay(*OPEN_STATUSES),
    "start": _to("in_progress", "acknowledged", "on_hold", "reopened"),
    "hold": _to("on_hold", "triaged", "acknowledged", "in_progress"),
    "cancel": _to("cancelled", *OPEN_STATUSES),
}
"""action -> {status it is allowed in: status it leads to}."""


def _listed(statuses: Collection[str]) -> str:
    # In workflow order, not set order, so messages read the same every time.
    return ", ".join(s for s in STATUSES if s in statuses) or "nothing"


def _known(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; statuses: {', '.join(STATUSES)}")


class IllegalTransition(ValueError):
    def __init__(self, old: IncidentStatus, new: IncidentStatus) -> None:
        self.old, self.new = old, new
        self.allowed = ALLOWED_TRANSITIONS[old]
        super().__init__(
            f"an incident cannot go from {old} to {new}; "
            f"allowed from {old}: {_listed(self.allowed)}"
        )


class IllegalAction(ValueError):
    def __init__(self, action: Action, status: IncidentStatus) -> None:
        self.action, self.status = action, status
        self.allowed_in = frozenset(ACTIONS[action])
        super().__init__(
            f"cannot {action.replace('_', ' ')} an incident that is {status}; "
            f"allowed when: {_listed(self.allowed_in)}"
        )


def check_transition(old: IncidentStatus, new: IncidentStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``old`` may change to ``new``."""
    _known(old)
    _known(new)
    if new not in ALLOWED_TRANSITIONS[old]:
        raise IllegalTransition(old, new)


ACTOR_ROLES: tuple[Role, ...] = ("triage", "admin")
"""The roles that act on incidents and can be given one (``ops`` reads)."""

STAFF_ACTIONS: tuple[Action, ...] = tuple(a for a in ACTIONS if a != "withdraw")
"""What triage staff may do (a withdrawal is the reporting partner's)."""


def allowed_actions(status: IncidentStatus) -> list[Action]:
    """The staff actions allowed in ``status``, in table order (what the console offers)."""
    return [a for a in STAFF_ACTIONS if status in ACTIONS[a]]


def resumed_status(acknowledged: bool) -> IncidentStatus:
    """Where an incident on hold goes when its resume time passes: back to ``triaged`` when
    nobody had acknowledged it yet, else work resumes (``in_progress``)."""
    resumed: IncidentStatus = "in_progress" if acknowledged else "triaged"
    check_transition("on_hold", resumed)
    return resumed


def check_action(action: Action, status: IncidentStatus) -> IncidentStatus:
    """The status ``action`` leads to from ``status`` (the same when it does not change it);
    :class:`IllegalAction` when it is not allowed there."""
    _known(status)
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    try:
        return ACTIONS[action][status]
    except KeyError:
        raise IllegalAction(action, status) from None
