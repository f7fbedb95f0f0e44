"""Triage's state in PostgreSQL: incidents, their history, and the snapshot of open incidents
a batch of reports may merge with.

Every function takes the caller's connection, so that a consumed batch or a staff action
changes state, history, inbox and outbox in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from schemas.events import IncidentReported, NotificationEvent
from services.triage.decide import TriageDecision, duplicate_windows
from services.triage.domain import (
    DEG_LAT_PER_M,
    DEG_LON_PER_M,
    HistoryEntry,
    IncidentUpdate,
    NewIncident,
    OpenIncident,
)
from services.triage.notifications import KINDS, log_detail


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def decision_columns(decision: TriageDecision) -> dict[str, Any]:
    return {
        "category": decision.category,
        "priority": decision.priority,
        "effective_priority": decision.effective_priority,
        "confidence": decision.confidence,
        "needs_review": decision.needs_review,
        "reasons": _json(list(decision.reasons)),
        "top_categories": _json([c.model_dump() for c in decision.top3]),
        "recipients": _json([r.model_dump(mode="json") for r in decision.recipients]),
        "acknowledge_by": decision.acknowledge_by,
        "handle_by": decision.handle_by,
        "routing": _json([entry.as_json() for entry in decision.routing]),
    }


async def update_incident(conn: asyncpg.Connection, incident_id: UUID, **changes: Any) -> None:
    changes["updated_at"] = datetime.now(UTC)
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=2))
    await conn.execute(
        f"UPDATE incidents SET {sets} WHERE incident_id = $1",  # noqa: S608 (fixed names)
        incident_id,
        *changes.values(),
    )


async def append_history(
    conn: asyncpg.Connection,
    incident_id: UUID,
    kind: str,
    actor: str | None = None,
    **detail: Any,
) -> None:
    await conn.execute(
        "INSERT INTO history (incident_id, kind, actor, detail) VALUES ($1, $2, $3, $4::jsonb)",
        incident_id,
        kind,
        actor,
        _json(detail),
    )


async def log_notifications(conn: asyncpg.Connection, events: Sequence[NotificationEvent]) -> None:
    """What notify did, for the console: a batch of notification events in one statement."""
    if not events:
        return
    await conn.execute(
        "INSERT INTO notification_log (incident_id, message_id, recipient, kind, at, detail) "
        "SELECT i, m, r, k, a, d FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], "
        "$5::timestamptz[], $6::jsonb[]) WITH ORDINALITY AS u(i, m, r, k, a, d, n) ORDER BY n",
        [event.incident_id for event in events],
        [event.message_id for event in events],
        [event.recipient for event in events],
        [KINDS[type(event)] for event in events],
        [event.occurred_at for event in events],
        [_json(log_detail(event)) for event in events],
    )


async def get_incident(
    conn: asyncpg.Connection | asyncpg.Pool, incident_id: UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    query = "SELECT * FROM incidents WHERE incident_id = $1"
    return await conn.fetchrow(query + " FOR UPDATE" if lock else query, incident_id)


def reported(row: asyncpg.Record) -> IncidentReported:
    return IncidentReported.model_validate_json(row["report"])


async def reporting_partners(conn: asyncpg.Connection, incident_id: UUID) -> int:
    """How many different partners reported an incident (itself and what was merged into it)."""
    return int(
        await conn.fetchval(
            "SELECT count(DISTINCT report->>'partner') FROM incidents "
            "WHERE incident_id = $1 OR merged_into = $1",
            incident_id,
        )
    )


def open_incident(row: asyncpg.Record, partners: set[str]) -> OpenIncident:
    """An incident row as the pure core sees a merge target."""
    return OpenIncident(
        incident_id=row["incident_id"],
        report=reported(row),
        category=row["category"],
        occurred_at=row["occurred_at"],
        received_at=row["received_at"],
        lat=row["lat"],
        lon=row["lon"],
        wijk_code=row["wijk_code"],
        effective_priority=row["effective_priority"],
        needs_review=row["needs_review"],
        report_count=row["report_count"],
        partners=partners,
    )


async def partners_of(conn: asyncpg.Connection, incident_id: UUID) -> set[str]:
    """The different partners that reported an incident (itself and what was merged into it)."""
    rows = await conn.fetch(
        "SELECT DISTINCT report->>'partner' AS partner FROM incidents "
        "WHERE incident_id = $1 OR merged_into = $1",
        incident_id,
    )
    return {r["partner"] for r in rows if r["partner"] is not None}


async def load_open_incidents(
    conn: asyncpg.Connection, pairs: Sequence[tuple[IncidentReported, TriageDecision]]
) -> list[OpenIncident]:
    """The snapshot a batch of decided reports is merged against, in ONE query: the open,
    not merged incidents of the batch's categories, within the widest of their time windows
    and a box around the batch's points, each with the partners that reported it. A superset:
    the pure core applies each report's own window (``domain.find_first``)."""
    wanted = [
        (r.location.lat, r.location.lon, r.occurred_at, d.category)
        for r, d in pairs
        if not d.needs_review and r.location.lat is not None and r.location.lon is not None
    ]
    if not wanted:
        return []  # nothing in the batch can merge: no query at all
    windows = duplicate_windows()
    categories = sorted({c for *_, c in wanted})
    metres = max(windows.for_category(c).metres for c in categories)
    span = timedelta(minutes=max(windows.for_category(c).minutes for c in categories))
    lats = [lat for lat, *_ in wanted]
    lons = [lon for _, lon, *_ in wanted]
    times = [at for _, _, at, _ in wanted]
    rows = await conn.fetch(
        "SELECT i.*, ARRAY(SELECT DISTINCT m.report->>'partner' FROM incidents m "
        "WHERE m.incident_id = i.incident_id OR m.merged_into = i.incident_id) AS partners "
        "FROM incidents i WHERE i.category = ANY($1::text[]) AND i.merged_into IS NULL "
        "AND i.status NOT IN ('resolved', 'cancelled', 'merged') "
        "AND i.occurred_at BETWEEN $2 AND $3 "
        "AND i.lat BETWEEN $4 AND $5 AND i.lon BETWEEN $6 AND $7 "
        "ORDER BY i.occurred_at, i.received_at",
        categories,
        min(times) - span,
        max(times) + span,
        min(lats) - metres * DEG_LAT_PER_M,
        max(lats) + metres * DEG_LAT_PER_M,
        min(lons) - metres * DEG_LON_PER_M,
        max(lons) + metres * DEG_LON_PER_M,
    )
    return [open_incident(r, {p for p in r["partners"] if p is not None}) for r in rows]


# Column types for set-based writes. jsonb travels as text (asyncpg has no jsonb[] codec
# configured here) and is cast row by row.
_TYPES = {
    "incident_id": "uuid",
    "report": "jsonb",
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
    "partner": "text",
    "lat": "float8",
    "lon": "float8",
    "buurt_code": "text",
    "wijk_code": "text",
    "category": "text",
    "priority": "text",
    "effective_priority": "text",
    "confidence": "float8",
    "needs_review": "bool",
    "reasons": "jsonb",
    "top_categories": "jsonb",
    "recipients": "jsonb",
    "acknowledge_by": "timestamptz",
    "handle_by": "timestamptz",
    "routing": "jsonb",
    "status": "text",
    "merged_into": "uuid",
    "report_count": "int4",
}


def _unnest(names: Sequence[str]) -> str:
    arrays = ", ".join(
        f"${i}::{'text' if _TYPES[n] == 'jsonb' else _TYPES[n]}[]"
        for i, n in enumerate(names, start=1)
    )
    return f"unnest({arrays}) AS u({', '.join(names)})"


def _value(name: str) -> str:
    return f"u.{name}::jsonb" if _TYPES[name] == "jsonb" else f"u.{name}"


def _columns(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[row[name] for row in rows] for name in rows[0]]


def _incident_row(new: NewIncident) -> dict[str, Any]:
    report, where = new.report, new.report.location
    return {
        "incident_id": report.incident_id,
        "report": report.model_dump_json(),
        "occurred_at": report.occurred_at,
        "received_at": report.recorded_at,
        "partner": report.partner,
        "lat": where.lat,
        "lon": where.lon,
        "buurt_code": where.buurt_code,
        "wijk_code": where.wijk_code,
        **decision_columns(new.decision),
        "status": new.status,
        "merged_into": new.merged_into,
        "report_count": new.report_count,
    }


async def insert_incidents(
    conn: asyncpg.Connection, incidents: Sequence[NewIncident], now: datetime
) -> None:
    """Insert a batch's incidents in one statement (a merged one may point at another row
    of the same statement: the foreign key is checked at its end)."""
    if not incidents:
        return
    rows = [_incident_row(i) for i in incidents]
    names = list(rows[0])
    n = len(names) + 1
    await conn.execute(
        f"INSERT INTO incidents ({', '.join(names)}, updated_at) "  # noqa: S608 (fixed names)
        f"SELECT {', '.join(_value(c) for c in names)}, ${n} FROM {_unnest(names)}",
        *_columns(rows),
        now,
    )


async def update_incidents(
    conn: asyncpg.Connection, updates: Sequence[IncidentUpdate], now: datetime
) -> None:
    """Report counts, and new decisions where a priority was raised: a statement per shape.
    Counts are added, not set: two consumers merging into one incident at once lose none."""
    added = [u for u in updates if u.added]
    if added:
        await conn.execute(
            "UPDATE incidents AS i SET report_count = i.report_count + u.added, updated_at = $3 "
            "FROM unnest($1::uuid[], $2::int4[]) AS u(incident_id, added) "
            "WHERE i.incident_id = u.incident_id",
            [u.incident_id for u in added],
            [u.added for u in added],
            now,
        )
    raised = [
        {"incident_id": u.incident_id, **decision_columns(u.decision)}
        for u in updates
        if u.decision is not None
    ]
    if raised:
        names = list(raised[0])
        sets = ", ".join(f"{c} = {_value(c)}" for c in names[1:])
        await conn.execute(
            f"UPDATE incidents AS i SET {sets}, updated_at = ${len(names) + 1} "  # noqa: S608
            f"FROM {_unnest(names)} WHERE i.incident_id = u.incident_id",
            *_columns(raised),
            now,
        )


async def append_history_many(conn: asyncpg.Connection, entries: Sequence[HistoryEntry]) -> None:
    """Append history rows in one statement, ids in the order given."""
    if not entries:
        return
    await conn.execute(
        "INSERT INTO history (incident_id, kind, actor, detail) "
        "SELECT u.incident_id, u.kind, u.actor, u.detail::jsonb "
        "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY "
        "AS u(incident_id, kind, actor, detail, n) ORDER BY u.n",
        [e.incident_id for e in entries],
        [e.kind for e in entries],
        [e.actor for e in entries],
        [_json(e.detail) for e in entries],
    )
