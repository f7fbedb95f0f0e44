"""The projections: events in, PII-free facts out, one transaction per batch.

``apply`` is the writer of the live consumers. Per batch:

1. the inbox claims the event ids; a redelivered event changes nothing;
2. each new event becomes one row of ``events`` (codes and times, never text or names);
3. the ``incident_facts`` row of every incident the batch touched is recomputed from all of
   that incident's events (last writer by event time for category, priority, area and status;
   earliest time for triage, delivery and acknowledgement). The row depends only on the set of
   events, so a delivery seen before its triage, or events of two topics interleaved in any
   order, end in the same row.

A rebuild loads the rows of ``events`` in bulk and computes the inbox and every fact row once
at the end (:func:`complete_bulk_load`), with the same row mapping and the same fact query:
since both are functions of the set of events, the result is the one ``apply`` gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import asyncpg

from schemas import geo
from schemas.events import (
    CE_TYPE_PREFIX,
    REGISTRY,
    AboutIncident,
    Event,
    IncidentAcknowledged,
    IncidentAssigned,
    IncidentDeadlineMissed,
    IncidentMerged,
    IncidentPersonalDataErased,
    IncidentPriorityChanged,
    IncidentReclassified,
    IncidentReported,
    IncidentResolved,
    IncidentStatusChanged,
    IncidentTriaged,
    IncidentWithdrawalRequested,
    IncidentZorgsignaalRaised,
    NotificationAcknowledged,
    NotificationDelivered,
    NotificationDispatched,
    NotificationEscalated,
    NotificationEscalationScheduled,
    NotificationFailed,
)
from services.common.outbox import claim

HANDLED: tuple[type[Event], ...] = tuple(
    cls for cls in REGISTRY.values() if issubclass(cls, AboutIncident)
)
"""Analytics counts every event about an incident (safety plans: ``plans``)."""


class EventRow(NamedTuple):
    """A row of ``analytics.events``: what analytics keeps of one event."""

    event_id: UUID
    incident_id: UUID
    type: str
    occurred_at: datetime
    recorded_at: datetime
    category: str | None = None
    priority: str | None = None
    status: str | None = None
    wijk: str | None = None
    buurt: str | None = None
    partner: str | None = None
    recipient: str | None = None
    outcome: str | None = None
    acknowledge_by: datetime | None = None
    handle_by: datetime | None = None
    related_incident: UUID | None = None
    report_count: int | None = None


COLUMNS = EventRow._fields
_PG_TYPES = {
    "event_id": "uuid",
    "incident_id": "uuid",
    "related_incident": "uuid",
    "occurred_at": "timestamptz",
    "recorded_at": "timestamptz",
    "acknowledge_by": "timestamptz",
    "handle_by": "timestamptz",
    "report_count": "integer",
}


def event_kind(event: Event) -> str:
    """``incident.reported`` for ``nl.haarlem.veilig.incident.reported.v1``: the fact without
    its version, so a v2 of an event counts as the same fact."""
    return event.ce_type.removeprefix(f"{CE_TYPE_PREFIX}.").rsplit(".v", 1)[0]


def haarlem_area(buurt: str | None, wijk: str | None) -> tuple[str | None, str | None]:
    """(wijk, buurt) when they are Haarlem's; a location outside Haarlem counts as unknown."""
    if buurt is not None:
        try:
            return geo.wijk_of(buurt), buurt
        except KeyError:
            return None, None
    return (wijk, None) if wijk and wijk.startswith("WK0392") else (None, None)


def _details(event: Event) -> dict[str, object]:
    match event:
        case IncidentReported():
            wijk, buurt = haarlem_area(event.location.buurt_code, event.location.wijk_code)
            return {
                "category": event.category_hint,
                "status": "reported",
                "wijk": wijk,
                "buurt": buurt,
                "partner": event.partner,
            }
        case IncidentTriaged():
            wijk, buurt = haarlem_area(event.buurt_code, event.wijk_code)
            return {
                "category": event.category,
                "priority": event.priority,
                "status": "triaged",
                "wijk": wijk,
                "buurt": buurt,
                "acknowledge_by": event.acknowledge_by,
                "handle_by": event.handle_by,
                "report_count": event.report_count,
            }
        case IncidentMerged():
            return {
                "related_incident": event.duplicate_incident_id,
                "report_count": event.report_count,
            }
        case IncidentReclassified():
            return {"category": event.new_category}
        case IncidentPriorityChanged():
            return {
                "priority": event.new_priority,
                "acknowledge_by": event.acknowledge_by,
                "handle_by": event.handle_by,
            }
        case IncidentStatusChanged():
            return {"status": event.new_status}
        case IncidentAcknowledged():
            return {"status": "acknowledged", "recipient": event.recipient}
        case IncidentResolved():
            return {"status": "resolved", "outcome": event.outcome}
        case IncidentZorgsignaalRaised():
            wijk, buurt = haarlem_area(event.buurt_code, event.wijk_code)
            return {"wijk": wijk, "buurt": buurt}
        case IncidentWithdrawalRequested():
            # A request only: the status changes when triage cancels (status-changed).
            return {}
        case IncidentAssigned():
            # Who on the night shift owns it is the console's business: no staff names here.
            return {}
        case IncidentDeadlineMissed():
            # The SLA figures come from the deadlines and when incidents were handled.
            return {}
        case IncidentPersonalDataErased():
            # Analytics holds no personal data: the incident keeps counting as it was.
            return {}
        case NotificationFailed():
            return {
                "recipient": event.recipient,
                "outcome": "failed_final" if event.final else "failed",
            }
        case (
            NotificationDispatched()
            | NotificationDelivered()
            | NotificationEscalated()
            | NotificationAcknowledged()
            | NotificationEscalationScheduled()  # no delivery outcome: /deliveries leaves it out
        ):
            return {"recipient": event.recipient, "outcome": event_kind(event).split(".")[1]}
    raise TypeError(f"analytics does not know {type(event).__name__}")


def to_row(event: Event) -> EventRow:
    """The PII-free row of an event: codes and times, never free text, names or coordinates."""
    return EventRow(
        event_id=event.event_id,
        incident_id=event.incident_id,
        type=event_kind(event),
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at,
        **_details(event),  # type: ignore[arg-type]
    )


_ARRAYS = ", ".join(f"${i}::{_PG_TYPES.get(c, 'text')}[]" for i, c in enumerate(COLUMNS, 1))
_INSERT_EVENTS = (
    f"INSERT INTO events ({', '.join(COLUMNS)}) SELECT * FROM unnest({_ARRAYS}) "  # noqa: S608
    "ON CONFLICT (event_id) DO NOTHING"
)

# Rebuilds the facts of the given incidents from all their events. A merge is a fact of two
# incidents: the surviving one (incident_id) and the duplicate (related_incident), which the
# second branch sees as 'incident.merged-into'. "Last" means latest occurred_at, then
# recorded_at, then event id: a total order, so the result does not depend on arrival order.
_RECOMPUTE_FACTS = """
WITH e AS (
    SELECT ev.incident_id AS subject, ev.event_id, ev.type, ev.occurred_at, ev.recorded_at,
           ev.category, ev.priority, ev.status, ev.wijk, ev.buurt, ev.partner,
           ev.acknowledge_by, ev.handle_by, ev.related_incident, ev.report_count
    FROM events ev {own}
    UNION ALL
    SELECT ev.related_incident, ev.event_id, 'incident.merged-into', ev.occurred_at,
           ev.recorded_at, NULL, NULL, 'merged', NULL, NULL, NULL, NULL, NULL, ev.incident_id, NULL
    FROM events ev {related}
),
f AS (
    SELECT subject,
        min(occurred_at) FILTER (WHERE type = 'incident.reported') AS occurred_at,
        min(recorded_at) FILTER (WHERE type = 'incident.reported') AS received_at,
        min(partner) AS partner,
        -- the partner's hint counts only until triage has decided
        (array_agg(category ORDER BY type <> 'incident.reported' DESC, occurred_at DESC,
            recorded_at DESC, event_id DESC) FILTER (WHERE category IS NOT NULL))[1] AS category,
        (array_agg(priority ORDER BY occurred_at DESC, recorded_at DESC, event_id DESC)
            FILTER (WHERE priority IS NOT NULL))[1] AS priority,
        (array_agg(acknowledge_by ORDER BY occurred_at DESC, recorded_at DESC, event_id DESC)
            FILTER (WHERE priority IS NOT NULL))[1] AS acknowledge_by,
        (array_agg(handle_by ORDER BY occurred_at DESC, recorded_at DESC, event_id DESC)
            FILTER (WHERE priority IS NOT NULL))[1] AS handle_by,
        (array_agg(wijk ORDER BY type <> 'incident.reported' DESC, occurred_at DESC,
            recorded_at DESC, event_id DESC) FILTER (WHERE wijk IS NOT NULL))[1] AS wijk,
        (array_agg(buurt ORDER BY type <> 'incident.reported' DESC, occurred_at DESC,
            recorded_at DESC, event_id DESC) FILTER (WHERE wijk IS NOT NULL))[1] AS buurt,
        (array_agg(status ORDER BY occurred_at DESC, recorded_at DESC, event_id DESC)
            FILTER (WHERE status IS NOT NULL))[1] AS status,
        min(occurred_at) FILTER (WHERE type = 'incident.triaged') AS triaged_at,
        min(occurred_at) FILTER (WHERE type = 'notification.delivered') AS first_delivered_at,
        min(occurred_at) FILTER (
            WHERE type IN ('incident.acknowledged', 'notification.acknowledged')
        ) AS acknowledged_at,
        max(occurred_at) FILTER (WHERE type = 'incident.resolved') AS last_resolved_at,
        coalesce(max(report_count), 1) AS report_count,
        (array_agg(related_incident ORDER BY occurred_at DESC, recorded_at DESC, event_id DESC)
            FILTER (WHERE type = 'incident.merged-into'))[1] AS merged_into,
        count(DISTINCT related_incident) FILTER (WHERE type = 'incident.merged') AS duplicates,
        count(*) FILTER (WHERE type = 'notification.escalated') AS escalations
    FROM e GROUP BY subject
)
INSERT INTO incident_facts (
    incident_id, occurred_at, received_at, partner, category, priority, wijk, buurt, status,
    triaged_at, first_delivered_at, acknowledged_at, resolved_at, acknowledge_by, handle_by,
    report_count, merged_into, duplicates, escalations)
SELECT subject, occurred_at, received_at, partner, category, priority, wijk, buurt, status,
    triaged_at, first_delivered_at, acknowledged_at,
    CASE WHEN status = 'resolved' THEN last_resolved_at END, acknowledge_by, handle_by,
    report_count, merged_into, duplicates, escalations
FROM f
"""
_UPSERT = """
ON CONFLICT (incident_id) DO UPDATE SET
    occurred_at = excluded.occurred_at, received_at = excluded.received_at,
    partner = excluded.partner, category = excluded.category, priority = excluded.priority,
    wijk = excluded.wijk, buurt = excluded.buurt, status = excluded.status,
    triaged_at = excluded.triaged_at, first_delivered_at = excluded.first_delivered_at,
    acknowledged_at = excluded.acknowledged_at, resolved_at = excluded.resolved_at,
    acknowledge_by = excluded.acknowledge_by, handle_by = excluded.handle_by,
    report_count = excluded.report_count, merged_into = excluded.merged_into,
    duplicates = excluded.duplicates, escalations = excluded.escalations
"""
_RECOMPUTE_SOME = (
    _RECOMPUTE_FACTS.format(
        own="WHERE ev.incident_id = ANY($1::uuid[])",
        related="WHERE ev.related_incident = ANY($1::uuid[])",
    )
    + _UPSERT
)
# One share of every incident ($1 of $2 shares, by the hash of the incident id) into an empty
# table: the shares run side by side, each in a backend (a core) of its own, and no two hold an
# incident, so a plain insert does (an upsert's speculative insertion cost a quarter more).
_COMPUTE_SHARE = _RECOMPUTE_FACTS.format(
    own="WHERE abs(uuid_hash(ev.incident_id) % $2) = $1",
    related="WHERE ev.related_incident IS NOT NULL "
    "AND abs(uuid_hash(ev.related_incident) % $2) = $1",
)


def rows_of(events: Sequence[Event], fresh: set[UUID] | None = None) -> list[EventRow]:
    """The rows of ``events`` (those in ``fresh``, if given), each event id once."""
    rows: dict[UUID, EventRow] = {}
    for event in events:
        if (fresh is None or event.event_id in fresh) and event.event_id not in rows:
            rows[event.event_id] = to_row(event)
    return list(rows.values())


async def insert_events(conn: asyncpg.Connection, rows: Sequence[EventRow]) -> None:
    """Add rows to ``events`` in one statement (a row already there is left alone)."""
    await conn.execute(_INSERT_EVENTS, *(list(column) for column in zip(*rows, strict=True)))


async def store_rows(conn: asyncpg.Connection, rows: Sequence[EventRow]) -> None:
    """Bulk-load rows into ``events`` with binary COPY. When the log holds an event twice (a
    producer's retry), COPY refuses the batch; it then goes through a temporary table and
    the insert that skips what is there already."""
    try:
        await conn.copy_records_to_table("events", records=rows, columns=COLUMNS)
    except asyncpg.UniqueViolationError:
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE events_batch (LIKE events) ON COMMIT DROP")
            await conn.copy_records_to_table("events_batch", records=rows, columns=COLUMNS)
            await conn.execute(
                "INSERT INTO events SELECT * FROM events_batch ON CONFLICT (event_id) DO NOTHING"
            )


async def apply(conn: asyncpg.Connection, events: Sequence[Event]) -> int:
    """Project a batch inside the caller's transaction; returns how many events were new.

    The inbox claim comes first so that a concurrent rebuild swap, which locks the inbox,
    holds back the whole batch rather than half of it.
    """
    fresh = await claim(conn, [e.event_id for e in events])
    rows = rows_of(events, fresh)
    if not rows:
        return 0
    touched = {r.incident_id for r in rows}
    touched.update(r.related_incident for r in rows if r.related_incident is not None)
    # The consumers of both topics project concurrently: without this, two transactions
    # touching one incident each recompute it without the other's uncommitted events, and
    # the later commit leaves facts that miss an event. Locked in one order (the sorted
    # array, unnested in order): no deadlock.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(i::text, 0)) FROM unnest($1::uuid[]) AS i",
        sorted(touched),
    )
    await insert_events(conn, rows)
    await conn.execute(_RECOMPUTE_SOME, list(touched))
    return len(rows)


# The indexes of the bulk-loaded tables other than their primary keys (the one of ``events``
# is what finds an event the log holds twice).
BULK_LOADED = ("events", "incident_facts")
_SECONDARY_INDEXES = """
SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i
WHERE i.indrelid = ANY($1::text[]::regclass[]) AND NOT i.indisprimary
"""


async def drop_secondary_indexes(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Before a bulk load into the tables :data:`BULK_LOADED`: their secondary indexes go, and
    their definitions, by table, come back to :func:`complete_bulk_load`. Built once over the
    loaded rows they cost a fraction of keeping them up to date row by row."""
    indexes: dict[str, list[str]] = {table: [] for table in BULK_LOADED}
    for table, name, definition in await conn.fetch(_SECONDARY_INDEXES, list(BULK_LOADED)):
        await conn.execute(f"DROP INDEX {name}")
        indexes[table.rsplit(".", 1)[-1]].append(definition)
    return indexes


async def complete_bulk_load(
    conns: Sequence[asyncpg.Connection], indexes: Mapping[str, Sequence[str]]
) -> None:
    """After rows went straight into ``events`` (a rebuild): its ``indexes`` are built again,
    the inbox holds the event ids and every fact row is computed once, set-based, into an
    empty ``incident_facts`` whose ``indexes`` are built after. Same result as :func:`apply`
    event by event, because both are a function of the set of events only.

    The work is spread over ``conns`` (each a backend, so a core): the inbox on one while the
    indexes and the statistics are made on another, then a share of the facts on each, then
    the facts' indexes shared out."""
    first, *others = conns

    async def build(conn: asyncpg.Connection, definitions: Sequence[str]) -> None:
        for definition in definitions:
            await conn.execute(definition)

    async def indexes_and_statistics() -> None:
        await build(first, indexes["events"])
        await first.execute("ANALYZE events")  # fresh statistics: a bulk load misleads the planner

    async def inbox(conn: asyncpg.Connection) -> None:
        # In key order: one pass along the index instead of a random walk through it.
        await conn.execute("INSERT INTO inbox (event_id) SELECT event_id FROM events ORDER BY 1")

    await asyncio.gather(indexes_and_statistics(), inbox(others[0] if others else first))
    await asyncio.gather(
        *(conn.execute(_COMPUTE_SHARE, share, len(conns)) for share, conn in enumerate(conns))
    )
    facts = indexes["incident_facts"]
    await asyncio.gather(
        *(build(conn, facts[share :: len(conns)]) for share, conn in enumerate(conns))
    )
