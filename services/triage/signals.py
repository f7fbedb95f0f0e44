"""Zorgsignalen in triage: found after each care-relevant decision, kept, published, listed.

A consumer of its own (group purpose ``prevention``) reads the ``IncidentTriaged`` events
triage published, so the hot path of deciding reports stays as it was. For each incident of
a care-relevant category it loads the incidents and signals near the spot from triage's
tables and asks the pure rule (``prevention.zorgsignaal``). A signal is one transaction: its
row, a history entry on the incident that raised it, and ``IncidentZorgsignaalRaised``
through the outbox, on which notify tells ``zorg.veiligheidshuis`` (operational profile: no
reporter contacts). Detection takes a transaction-level advisory lock: two replicas deciding
reports at one door at once would otherwise both count to three.

Staff see the signals in ``GET /v1/zorgsignalen`` (for the console).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Query
from faststream.kafka import KafkaRouter
from pydantic import BaseModel

from schemas.events import Event, IncidentTriaged, IncidentZorgsignaalRaised
from schemas.topics import INCIDENT_EVENTS
from services.common.consumer import Incoming, Rejected, batch_consumer, event_parser
from services.common.outbox import claim, enqueue, event_message
from services.common.problems import PROBLEM
from services.common.runtime import Runtime, runtime
from services.common.settings import Settings
from services.common.staff import Staff, require_role
from services.triage import store
from services.triage.prevention import (
    ADDRESS_NOISE,
    PastSignal,
    PreventionSettings,
    Sighting,
    Signal,
    Spot,
    zorgsignaal,
)

RECIPIENT = "zorg.veiligheidshuis"
_LOCK = 0x7A6F7267  # "zorg": one detection at a time, across replicas
_ADDRESS = (
    f"nullif(trim(regexp_replace(lower(report->'location'->>'address'), "
    f"'{ADDRESS_NOISE}', ' ', 'g')), '')"
)
_SIGHTINGS = f"""
SELECT incident_id, occurred_at, category, lat, lon, {_ADDRESS} AS address
FROM incidents
WHERE category = ANY($1) AND merged_into IS NULL AND status <> 'cancelled'
  AND occurred_at > $2 AND occurred_at <= $3
  AND ((lat BETWEEN $4 AND $5 AND lon BETWEEN $6 AND $7) OR {_ADDRESS} = $8)
"""  # noqa: S608 (constant fragments)


def _sighting(row: asyncpg.Record) -> Sighting:
    return Sighting(
        row["incident_id"],
        row["occurred_at"],
        row["category"],
        Spot(row["lat"], row["lon"], row["address"]),
    )


def _box(spot: Spot, metres: float) -> tuple[float, float, float, float] | tuple[None, ...]:
    """Latitude and longitude bounds around a point (NULLs without one: no point matches)."""
    if spot.lat is None or spot.lon is None:
        return (None, None, None, None)
    dlat = metres / 111_320
    dlon = metres / (111_320 * math.cos(math.radians(spot.lat)))
    return (spot.lat - dlat, spot.lat + dlat, spot.lon - dlon, spot.lon + dlon)


async def detect(
    conn: asyncpg.Connection, settings: Settings, rule: PreventionSettings, incident_id: UUID
) -> IncidentZorgsignaalRaised | None:
    """The signal ``incident_id`` raises, stored and queued for publishing; or None."""
    row = await conn.fetchrow(
        f"SELECT incident_id, occurred_at, category, lat, lon, buurt_code, wijk_code, "  # noqa: S608
        f"{_ADDRESS} AS address FROM incidents WHERE incident_id = $1 AND merged_into IS NULL",
        incident_id,
    )
    if row is None or row["category"] not in rule.categories:
        return None
    new = _sighting(row)
    since = new.occurred_at - rule.window
    others = await conn.fetch(
        _SIGHTINGS,
        list(rule.categories),
        since,
        new.occurred_at,
        *_box(new.spot, rule.metres),
        new.spot.address,
    )
    past = await conn.fetch(
        "SELECT lat, lon, address_key, last_occurred_at FROM zorg_signals "
        "WHERE last_occurred_at > $1",
        since,
    )
    signalled = [
        PastSignal(Spot(r["lat"], r["lon"], r["address_key"]), r["last_occurred_at"]) for r in past
    ]
    found = zorgsignaal(new, [_sighting(r) for r in others], signalled, rule)
    if found is None:
        return None
    return await _raise(conn, settings, rule, row, found)


async def _raise(
    conn: asyncpg.Connection,
    settings: Settings,
    rule: PreventionSettings,
    row: asyncpg.Record,
    found: Signal,
) -> IncidentZorgsignaalRaised:
    now = datetime.now(UTC)
    event = IncidentZorgsignaalRaised(
        event_id=uuid.uuid4(),
        incident_id=row["incident_id"],
        occurred_at=now,
        recorded_at=now,
        producer="triage",
        signal_id=uuid.uuid4(),
        incidents=tuple(s.incident_id for s in found.incidents),
        categories=found.categories,
        matched_on=found.matched_on,
        window_days=rule.days,
        buurt_code=row["buurt_code"],
        wijk_code=row["wijk_code"],
        recipient=RECIPIENT,
    )
    await conn.execute(
        "INSERT INTO zorg_signals (signal_id, incident_id, raised_at, incidents, categories, "
        "matched_on, lat, lon, address_key, buurt_code, wijk_code, last_occurred_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        event.signal_id,
        event.incident_id,
        now,
        list(event.incidents),
        list(event.categories),
        event.matched_on,
        row["lat"],
        row["lon"],
        row["address"],
        row["buurt_code"],
        row["wijk_code"],
        found.incidents[-1].occurred_at,
    )
    await store.append_history(
        conn,
        event.incident_id,
        "zorgsignaal",
        signal=str(event.signal_id),
        incidents=[str(i) for i in event.incidents],
        recipient=RECIPIENT,
    )
    await enqueue(conn, [event_message(settings, event)])
    return event


def subscribe(router: KafkaRouter, rt: Runtime, rule: PreventionSettings) -> None:
    async def handle(batch: Sequence[Incoming[Event]]) -> list[Rejected]:
        async with rt.pool.acquire() as conn, conn.transaction():
            fresh = await claim(conn, [i.item.event_id for i in batch])
            decided = [
                i.item.incident_id
                for i in batch
                if i.item.event_id in fresh
                and isinstance(i.item, IncidentTriaged)
                and i.item.category in rule.categories
            ]
            if decided:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            for incident_id in dict.fromkeys(decided):
                await detect(conn, rt.settings, rule, incident_id)
        return []

    batch_consumer(
        router,
        rt,
        "triage",
        INCIDENT_EVENTS,
        purpose="prevention",
        parse=event_parser(IncidentTriaged),
        handle=handle,
        background=True,
    )


# --- the staff API ----------------------------------------------------------------------------

router = APIRouter(
    prefix="/v1",
    tags=["triage staff"],
    responses={401: {"description": "Missing or invalid staff token", **PROBLEM}},
)


class ZorgsignaalView(BaseModel):
    signal_id: UUID
    incident_id: UUID
    """The incident whose report made the count."""
    raised_at: datetime
    incidents: list[UUID]
    categories: list[str]
    matched_on: str
    buurt_code: str | None
    wijk_code: str | None


@router.get("/zorgsignalen", response_model=list[ZorgsignaalView], summary="Zorgsignalen")
async def zorgsignalen(
    rt: Annotated[Runtime, Depends(runtime)],
    _staff: Annotated[Staff, Depends(require_role("triage", "ops", "admin"))],
    wijk: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ZorgsignaalView]:
    """Prevention signals, newest first (optionally one wijk's): care-relevant reports that
    keep coming back to one spot, told to the Zorg- en Veiligheidshuis."""
    return await recent_signals(rt.pool, wijk, limit)


async def recent_signals(
    pool: asyncpg.Pool, wijk: str | None, limit: int, since: datetime | None = None
) -> list[ZorgsignaalView]:
    """Signals newest first, optionally one wijk's and raised after ``since`` (the API's list
    and the console's queue)."""
    rows = await pool.fetch(
        "SELECT * FROM zorg_signals WHERE ($1::text IS NULL OR wijk_code = $1) "
        "AND ($3::timestamptz IS NULL OR raised_at >= $3) ORDER BY raised_at DESC LIMIT $2",
        wijk,
        limit,
        since,
    )
    fields: dict[str, Any] = ZorgsignaalView.model_fields
    return [ZorgsignaalView(**{name: r[name] for name in fields}) for r in rows]
