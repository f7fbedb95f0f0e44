"""Triage's state in PostgreSQL: incidents, their history, and duplicate look-ups.

Every function takes the caller's connection, so that a consumed batch or a staff action
changes state, history, inbox and outbox in one transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from schemas.events import IncidentReported, IncidentStatus
from services.triage.decide import TriageDecision, duplicate_windows, metres_between

# Roughly 1 km in degrees at Haarlem's latitude, to narrow candidates before haversine.
_DEG_LAT_PER_M = 1 / 111_320
_DEG_LON_PER_M = 1 / 68_000


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
    }


async def insert_incident(
    conn: asyncpg.Connection,
    report: IncidentReported,
    decision: TriageDecision,
    *,
    status: IncidentStatus,
    merged_into: UUID | None = None,
) -> None:
    where = report.location
    columns = {
        "incident_id": report.incident_id,
        "report": report.model_dump_json(),
        "occurred_at": report.occurred_at,
        "received_at": report.recorded_at,
        "partner": report.partner,
        "lat": where.lat,
        "lon": where.lon,
        "buurt_code": where.buurt_code,
        "wijk_code": where.wijk_code,
        **decision_columns(decision),
        "status": status,
        "merged_into": merged_into,
        "updated_at": datetime.now(UTC),
    }
    names = ", ".join(columns)
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(
        f"INSERT INTO incidents ({names}) VALUES ({marks})",  # noqa: S608 (fixed names)
        *columns.values(),
    )


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


async def find_duplicate(
    conn: asyncpg.Connection, report: IncidentReported, category: str
) -> tuple[asyncpg.Record, float] | None:
    """The first open incident of ``category`` within the category's distance and time
    window of ``report``, and the distance to it; None when there is none or the report
    has no point."""
    lat, lon = report.location.lat, report.location.lon
    if lat is None or lon is None:
        return None
    window = duplicate_windows().for_category(category)
    span = timedelta(minutes=window.minutes)
    rows = await conn.fetch(
        "SELECT * FROM incidents WHERE category = $1 AND merged_into IS NULL "
        "AND status NOT IN ('resolved', 'cancelled', 'merged') "
        "AND occurred_at BETWEEN $2 AND $3 AND incident_id <> $4 "
        "AND lat BETWEEN $5 AND $6 AND lon BETWEEN $7 AND $8 "
        "ORDER BY occurred_at, received_at",
        category,
        report.occurred_at - span,
        report.occurred_at + span,
        report.incident_id,
        lat - window.metres * _DEG_LAT_PER_M,
        lat + window.metres * _DEG_LAT_PER_M,
        lon - window.metres * _DEG_LON_PER_M,
        lon + window.metres * _DEG_LON_PER_M,
    )
    for row in rows:
        distance = metres_between(lat, lon, row["lat"], row["lon"])
        if distance <= window.metres:
            return row, distance
    return None
