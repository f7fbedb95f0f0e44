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
VIEWS: dict[View, str] = {
    "open": "TRUE",
    "needs_review": "needs_review",
    "unacknowledged": "effective_priority IN ('P1', 'P2') AND acknowledged_at IS NULL",
    "sla_at_risk": "(acknowledged_at IS NULL AND acknowledge_by < now() + interval '5 minutes')"
    " OR handle_by < now() + interval '1 hour'",
    # Within the hour either side, as a range the index (incidents_nearby) can take.
    "suspected_duplicates": "EXISTS (SELECT 1 FROM incidents o WHERE o.incident_id <> "
    "i.incident_id AND o.category = i.category AND o.buurt_code = i.buurt_code AND "
    "o.merged_into IS NULL AND o.status = ANY($1) AND "
    "o.occurred_at > i.occurred_at - interval '1 hour' AND "
    "o.occurred_at < i.occurred_at + interval '1 hour')",
}
"""view -> its condition on an open incident ``i`` ($1: the open statuses)."""
_JOINED: frozenset[View] = frozenset({"suspected_duplicates"})
"""Views whose condition reads other incidents: counted by a query of their own, which the
planner turns into one join, not a lookup per row."""
COLUMNS = (
    "incident_id, occurred_at, received_at, partner, category, priority, effective_priority, "
    "confidence, needs_review, status, buurt_code, wijk_code, report_count, acknowledge_by, "
    "handle_by, acknowledged_at, owner, resume_at"
)
"""What a queue row shows (the report itself and the decision's details stay behind)."""


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
    """The queue's base condition and the filters', with their parameters from $2 on."""
    conditions = ["status = ANY($1)", "merged_into IS NULL"]
    args: list[Any] = [list(OPEN_STATUSES)]
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
    return await pool.fetch(
        f"SELECT {COLUMNS} FROM incidents i WHERE {where} AND ({VIEWS[view]}) "  # noqa: S608
        f"ORDER BY effective_priority, acknowledge_by LIMIT ${len(args) + 1}",
        *args,
        limit,
    )


async def count_views(pool: asyncpg.Pool, filters: Filters) -> dict[View, int]:
    """How many incidents each view holds under ``filters``."""
    where, args = _where(filters)
    plain = {view: c for view, c in VIEWS.items() if view not in _JOINED}
    counts = ", ".join(f'count(*) FILTER (WHERE {c}) AS "{view}"' for view, c in plain.items())
    row = await pool.fetchrow(f"SELECT {counts} FROM incidents i WHERE {where}", *args)  # noqa: S608
    assert row is not None
    found: dict[View, int] = {view: int(row[view]) for view in plain}
    for view in _JOINED:
        found[view] = int(
            await pool.fetchval(
                f"SELECT count(*) FROM incidents i WHERE {where} AND {VIEWS[view]}",  # noqa: S608
                *args,
            )
        )
    return {view: found[view] for view in VIEWS}
