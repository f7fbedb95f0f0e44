"""Safety plans in triage's database: set, end, list, and following changes live.

Every change is one transaction: the plan row, an ``audit`` row (who, what), the event on the
``safety-plans`` topic (through the outbox) and a NOTIFY on :data:`CHANNEL`. The CLI
(``veilig plans``) and the admin API both come here.

Every triage replica holds the plans in memory (``Triage.plans``) and loads them again when
the NOTIFY arrives (:func:`follow`), so a change takes effect within a moment and without a
restart. Why NOTIFY and not the Kafka topic: every replica must see every change, while a
consumer group shares the topic's partitions among the replicas; the database is where the
plans are, and a reload every :data:`RELOAD_SECONDS` covers a notification lost with a
connection.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from schemas.events import SafetyPlanAdopted, SafetyPlanEnded, SafetyPlanEvent
from schemas.timeutil import AMSTERDAM
from services.common.db import listening
from services.common.outbox import enqueue, event_message
from services.common.runtime import Runtime, pause
from services.common.settings import Settings
from services.common.supervision import Loop
from services.triage.actions import Actor
from services.triage.decide import Triage
from services.triage.plans import NoPlan, PlanConflict, SafetyPlan, SafetyPlans

CHANNEL = "triage_safety_plans"
RELOAD_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class StoredPlan:
    plan: SafetyPlan
    version: int
    updated_at: datetime
    updated_by: str


def _plan(row: asyncpg.Record) -> SafetyPlan:
    return SafetyPlan(
        wijk_code=row["wijk_code"],
        categories=tuple(row["categories"]),
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        adopted_by=row["adopted_by"],
        adopted_on=row["adopted_on"],
    )


async def list_plans(conn: asyncpg.Connection) -> list[StoredPlan]:
    rows = await conn.fetch("SELECT * FROM safety_plans ORDER BY wijk_code")
    return [StoredPlan(_plan(r), r["version"], r["updated_at"], r["updated_by"]) for r in rows]


async def load_plans(conn: asyncpg.Connection) -> SafetyPlans:
    return SafetyPlans({p.plan.wijk_code: p.plan for p in await list_plans(conn)})


async def _record(
    conn: asyncpg.Connection, settings: Settings, actor: Actor, event: SafetyPlanEvent
) -> None:
    """The audit row, the event (outbox) and the notification of one change."""
    detail = event.model_dump(mode="json", exclude={"event_id", "producer", "schema_version"})
    await conn.execute(
        "INSERT INTO audit (actor, role, action, detail) VALUES ($1, $2, $3, $4::jsonb)",
        actor.username,
        actor.role,
        f"safety-plan.{event.ce_type.split('.')[4]}",
        json.dumps(detail),
    )
    await enqueue(conn, [event_message(settings, event)])
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, event.wijk_code)


def _about(wijk_code: str, version: int, actor: Actor, now: datetime) -> dict[str, Any]:
    """The fields every plan event of triage has."""
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": now,
        "recorded_at": now,
        "producer": "triage",
        "wijk_code": wijk_code,
        "version": version,
        "actor": actor.username,
    }


async def set_plan(
    conn: asyncpg.Connection, settings: Settings, plan: SafetyPlan, actor: Actor
) -> int:
    """Adopt or change ``plan.wijk_code``'s plan; returns its new version."""
    now = datetime.now(UTC)
    async with conn.transaction():
        version = await conn.fetchval(
            "INSERT INTO safety_plans AS p (wijk_code, categories, starts_on, ends_on, "
            "adopted_by, adopted_on, version, updated_at, updated_by) "
            "VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8) "
            "ON CONFLICT (wijk_code) DO UPDATE SET categories = $2, starts_on = $3, "
            "ends_on = $4, adopted_by = $5, adopted_on = $6, version = p.version + 1, "
            "updated_at = $7, updated_by = $8 RETURNING version",
            plan.wijk_code,
            list(plan.categories),
            plan.starts_on,
            plan.ends_on,
            plan.adopted_by,
            plan.adopted_on,
            now,
            actor.username,
        )
        event = SafetyPlanAdopted(
            **_about(plan.wijk_code, version, actor, now),
            categories=plan.categories,
            starts_on=plan.starts_on,
            ends_on=plan.ends_on,
            adopted_by=plan.adopted_by,
            adopted_on=plan.adopted_on,
        )
        await _record(conn, settings, actor, event)
    return int(version)


def today() -> date:
    return datetime.now(AMSTERDAM).date()


async def end_plan(
    conn: asyncpg.Connection,
    settings: Settings,
    wijk_code: str,
    actor: Actor,
    *,
    ends_on: date | None = None,
    reason: str | None = None,
) -> int:
    """End ``wijk_code``'s plan after ``ends_on`` (default today); returns its new version.
    :class:`PlanError` when the wijk has no plan, or it has ended already."""
    last_day = ends_on or today()
    now = datetime.now(UTC)
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT * FROM safety_plans WHERE wijk_code = $1 FOR UPDATE", wijk_code
        )
        if row is None:
            raise NoPlan(f"{wijk_code} has no safety plan")
        if row["ends_on"] is not None and row["ends_on"] < today():
            raise PlanConflict(f"the plan of {wijk_code} ended on {row['ends_on']}")
        if last_day < row["starts_on"]:
            raise PlanConflict(
                f"the plan of {wijk_code} starts on {row['starts_on']}, after {last_day}"
            )
        version = row["version"] + 1
        await conn.execute(
            "UPDATE safety_plans SET ends_on = $2, version = $3, updated_at = $4, "
            "updated_by = $5 WHERE wijk_code = $1",
            wijk_code,
            last_day,
            version,
            now,
            actor.username,
        )
        event = SafetyPlanEnded(
            **_about(wijk_code, version, actor, now),
            ends_on=last_day,
            reason=reason,
        )
        await _record(conn, settings, actor, event)
    return int(version)


async def load_into(rt: Runtime, triage: Triage) -> None:
    """Load the plans before the consumers start: no report is decided without them."""
    async with rt.pool.acquire() as conn:
        triage.plans = await load_plans(conn)


def follow(triage: Triage) -> Callable[[Runtime, Loop], Awaitable[None]]:
    """The background body that keeps ``triage.plans`` current (module docstring)."""

    async def body(rt: Runtime, loop: Loop) -> None:
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        async with listening(rt.pool, CHANNEL, on_notify) as conn:
            while not rt.stopping.is_set():
                loop.beat()
                wake.clear()
                triage.plans = await load_plans(conn)
                await pause(rt.stopping, wake, RELOAD_SECONDS)

    return body
