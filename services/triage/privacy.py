"""Personal data has an end (docs/decisions/0010): the retention purge and erasure on request.

Triage holds every incident, so it decides what is due: the reports received more than
``PERSONAL_DATA_RETENTION_DAYS`` ago whose personal data is still there. Erasing one is, in
one transaction: triage's copy erased (``schemas.erasure.erase_report``, and the coordinates
beside it), the incident marked, a history entry, an ``audit`` row and
``IncidentPersonalDataErased`` in the outbox, on which every other service erases its copy.

The purge runs daily as a supervised loop (:func:`daily`) and on demand (``veilig privacy
purge``); it takes batches with ``FOR UPDATE SKIP LOCKED``, so replicas running it at once
erase nothing twice. The clock is a parameter: tests move it instead of waiting.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg

from schemas.erasure import erase_report
from schemas.events import IncidentPersonalDataErased
from services.common.outbox import enqueue, event_message
from services.common.period_keys import destroy_keys, forget_reports, period_of
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.supervision import Loop, wait_beating
from services.triage import store
from services.triage.actions import Actor
from services.triage.domain import HistoryEntry

log = logging.getLogger(__name__)

BATCH = 500
PURGE_EVERY = timedelta(hours=24)
PLATFORM = Actor("platform", "platform")
Reason = Literal["retention", "erasure"]


class NoSuchIncident(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class PurgeRun:
    """What one purge did (or, dry, would do)."""

    cutoff: datetime
    erased: int
    dry_run: bool
    keys_destroyed: int = 0
    """Period keys destroyed: what they sealed on Kafka and in dead letters is unreadable."""


def cutoff(settings: Settings, now: datetime) -> datetime:
    """Reports received before this moment are past the retention period."""
    return now - timedelta(days=settings.personal_data_retention_days)


async def _erase_locked(
    conn: asyncpg.Connection,
    settings: Settings,
    rows: Sequence[asyncpg.Record],
    actor: Actor,
    reason: Reason,
    now: datetime,
    detail: dict[str, Any],
) -> None:
    """Erase the personal data of ``rows`` (locked incidents, caller's transaction)."""
    ids = [r["incident_id"] for r in rows]
    reports = [erase_report(store.reported(r)).model_dump_json() for r in rows]
    await conn.execute(
        "UPDATE incidents AS i SET report = u.report::jsonb, lat = NULL, lon = NULL, "
        "personal_data_erased_at = $3, updated_at = $3 "
        "FROM unnest($1::uuid[], $2::text[]) AS u(incident_id, report) "
        "WHERE i.incident_id = u.incident_id",
        ids,
        reports,
        now,
    )
    # Their copies on Kafka: unreadable once their keys are gone.
    await forget_reports(conn, ids)
    # A zorgsignaal's spot is the exact location of the reports that made it.
    await conn.execute(
        "UPDATE zorg_signals SET lat = NULL, lon = NULL, address_key = NULL "
        "WHERE incidents && $1::uuid[] OR incident_id = ANY($1::uuid[])",
        ids,
    )
    retention_days = settings.personal_data_retention_days if reason == "retention" else None
    full_detail = {"reason": reason, **detail}
    if retention_days is not None:
        full_detail["retention_days"] = retention_days
    await store.append_history_many(
        conn,
        [HistoryEntry(i, "personal_data_erased", actor.username, full_detail) for i in ids],
    )
    await conn.executemany(
        "INSERT INTO audit (actor, role, action, incident_id, detail) "
        "VALUES ($1, $2, 'erase_personal_data', $3, $4::jsonb)",
        [(actor.username, actor.role, i, json.dumps(full_detail)) for i in ids],
    )
    await enqueue(
        conn,
        [
            event_message(
                settings,
                IncidentPersonalDataErased(
                    event_id=uuid.uuid4(),
                    incident_id=i,
                    occurred_at=now,
                    recorded_at=now,
                    producer="triage",
                    reason=reason,
                    retention_days=retention_days,
                    actor=actor.username,
                ),
            )
            for i in ids
        ],
    )


async def erase(
    conn: asyncpg.Connection,
    settings: Settings,
    incident_id: UUID,
    actor: Actor,
    now: datetime,
    request: str | None = None,
) -> bool:
    """Erase one report's personal data on request (right to erasure); False when it was
    erased before. ``request`` is the request's reference, kept in the audit."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT incident_id, report, personal_data_erased_at FROM incidents "
            "WHERE incident_id = $1 FOR UPDATE",
            incident_id,
        )
        if row is None:
            raise NoSuchIncident(f"no incident {incident_id}")
        if row["personal_data_erased_at"] is not None:
            return False
        detail = {"request": request} if request else {}
        await _erase_locked(conn, settings, [row], actor, "erasure", now, detail)
    return True


async def purge(
    conn: asyncpg.Connection,
    settings: Settings,
    actor: Actor,
    now: datetime,
    *,
    dry_run: bool = False,
    beat: Callable[[], None] = lambda: None,
) -> PurgeRun:
    """Erase the personal data of every report past the retention period, a batch a
    transaction; audited as one run (``privacy_purge``), dry runs too."""
    before = cutoff(settings, now)
    erased = 0
    if dry_run:
        erased = await conn.fetchval(
            "SELECT count(*) FROM incidents "
            "WHERE received_at < $1 AND personal_data_erased_at IS NULL",
            before,
        )
    else:
        while True:
            beat()
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT incident_id, report FROM incidents "
                    "WHERE received_at < $1 AND personal_data_erased_at IS NULL "
                    "ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                    before,
                    BATCH,
                )
                if rows:
                    await _erase_locked(conn, settings, rows, actor, "retention", now, {})
            erased += len(rows)
            if len(rows) < BATCH:
                break
    # Every report of a day before the cutoff's day is past retention (and erased above): the
    # day's key goes, and with it what it sealed on Kafka and in dead letters.
    destroyed = await destroy_keys(conn, period_of(before), dry_run=dry_run)
    await conn.execute(
        "INSERT INTO audit (actor, role, action, detail) "
        "VALUES ($1, $2, 'privacy_purge', $3::jsonb)",
        actor.username,
        actor.role,
        json.dumps(
            {
                "cutoff": before.isoformat(),
                "retention_days": settings.personal_data_retention_days,
                "erased": erased,
                "period_keys_destroyed": destroyed,
                "dry_run": dry_run,
            }
        ),
    )
    return PurgeRun(before, erased, dry_run, destroyed)


async def daily(rt: Runtime, loop: Loop) -> None:
    """The background body: purge at start and every :data:`PURGE_EVERY`."""
    while not rt.stopping.is_set():
        async with rt.pool.acquire() as conn:
            run = await purge(conn, rt.settings, PLATFORM, datetime.now(UTC), beat=loop.beat)
        log.info(
            "personal data purge",
            extra={
                "erased": run.erased,
                "period_keys_destroyed": run.keys_destroyed,
                "cutoff": run.cutoff.isoformat(),
            },
        )
        await wait_beating(rt.stopping, PURGE_EVERY.total_seconds(), loop)
