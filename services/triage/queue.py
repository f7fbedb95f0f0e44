"""The triage queue: open incidents in views (needs review, unacknowledged P1/P2, deadline at
risk, suspected duplicates), narrowed by filters, with a count per view. One home for the
queries behind the API's ``/v1/queue`` and the console's live queue.
"""

from __future__ import annotations

from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, Field

from services.triage.workflow import OPEN_STATUSES

View = Literal["open", "needs_review", "unacknowledged", "sla_at_risk", "suspected_duplicates"]
_OPEN = "merged_into IS NULL AND status IN ({})".format(", ".join(f"'{s}'" for s in OPEN_STATUSES))
"""An open incident, in the words of the partial index incidents_open_nearby (migration 0012)."""
_NEAR = "interval '1 hour'"
# A suspected duplicate: another open incident of its category in its buurt within the hour
# either side. The nearest such incident in time is the one just before or after it in
# (category, buurt, time) order, so one ordered pass over the index finds them all (a
# self-join looked at every pair: docs/benchmarks.md, scenario 10).
_SUSPECTED = (
    "SELECT incident_id FROM (SELECT incident_id, buurt_code IS NOT NULL AND coalesce("  # noqa: S608
    f"occurred_at - lag(occurred_at) OVER nearby < {_NEAR} OR "
    f"lead(occurred_at) OVER nearby - occurred_at < {_NEAR}, FALSE) AS suspected "
    f"FROM incidents WHERE {_OPEN} "
    "WINDOW nearby AS (PARTITION BY category, buurt_code ORDER BY occurred_at)) AS n "
    "WHERE suspected"
)
VIEWS: dict[View, str] = {
    "open": "TRUE",
    "needs_review": "needs_review",
    "unacknowledged": "effective_priority IN ('P1', 'P2') AND acknowledged_at IS NULL",
    "sla_at_risk": "(acknowledged_at IS NULL AND acknowledge_by < now() + interval '5 minutes')"
    " OR handle_by < now() + interval '1 hour'",
    "suspected_duplicates": f"incident_id IN ({_SUSPECTED})",
}
"""view -> its condition on an open incident (the planner computes the suspected duplicates
once per query and looks each incident up in them)."""
COLUMNS = (
    "incident_id, occurred_at, received_at, partner, category, priority, effective_priority, "
    "confidence, needs_review, status, buurt_code, wijk_code, report_count, acknowledge_by, "
    "handle_by, acknowledged_at, owner, resume_at"
)
"""What a queue row shows (the report itself and the decision's details stay behind)."""
NEXT_ESCALATION = (
    "(SELECT min(escalate_at) FROM (SELECT DISTINCT ON (recipient) "
    "(detail->>'escalate_at')::timestamptz AS escalate_at FROM notification_log AS n "
    "WHERE n.incident_id = incidents.incident_id AND n.kind = 'escalation-scheduled' "
    "ORDER BY recipient, n.id DESC) AS timers) AS next_escalation_at"
)
"""When notify pages the next in a chain for ``incidents`` unless someone acknowledges it:
the earliest of its recipients' running escalation timers, each as notify last told of it
(notification.escalation-scheduled; NULL: none runs)."""


class Filters(BaseModel):
    """What the queue is narrowed to; every filter given must match."""

    wijk: str | None = Field(default=None, description="Wijk code, e.g. WK039201.")
    buurt: str | None = Field(default=None, description="Buurt code, e.g. BU03920102.")
    category: str | None = Field(default=None, description="Category code.")
    partner: str | None = Field(default=None, description="The reporting partner.")
    priority: str | None = Field(default=None, description="Effective priority, P1-P4.")
    status: str | None = Field(default=None, description="One open status.")


_COLUMNS: dict[str, str] = {
    "wijk": "wijk_code",
    "buurt": "buurt_code",
    "category": "category",
    "partner": "partner",
    "priority": "effective_priority",
    "status": "status",
}


def _where(filters: Filters) -> tuple[str, list[Any]]:
    """The queue's base condition and the filters', with their parameters."""
    conditions = [_OPEN]
    args: list[Any] = []
    for name, column in _COLUMNS.items():
        value = getattr(filters, name)
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    return " AND ".join(conditions), args


async def fetch_queue(
    pool: asyncpg.Pool, view: View, filters: Filters, limit: int
) -> list[asyncpg.Record]:
    """One view's incidents, most urgent and the earliest deadline first."""
    where, args = _where(filters)
    order = "ORDER BY effective_priority, acknowledge_by"
    # The next escalation only for the rows shown (after the limit).
    return await pool.fetch(
        f"SELECT *, {NEXT_ESCALATION} FROM (SELECT {COLUMNS} FROM incidents "  # noqa: S608
        f"WHERE {where} AND ({VIEWS[view]}) {order} LIMIT ${len(args) + 1}) AS incidents {order}",
        *args,
        limit,
    )


async def count_views(pool: asyncpg.Pool, filters: Filters) -> dict[View, int]:
    """How many incidents each view holds under ``filters``."""
    where, args = _where(filters)
    counts = ", ".join(f'count(*) FILTER (WHERE {c}) AS "{view}"' for view, c in VIEWS.items())
    row = await pool.fetchrow(f"SELECT {counts} FROM incidents WHERE {where}", *args)  # noqa: S608
    assert row is not None
    return {view: int(row[view]) for view in VIEWS}
