"""The wijken's safety plans as analytics sees them: the ``safety-plans`` topic, projected.

One row per wijk, the plan as its latest event says. Idempotent without an inbox: an event
applies only if its version is newer than the row's, so a redelivered or replayed event
changes nothing. The wijk report reads it to show how the plan's priorities are handled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg
from faststream.kafka import KafkaRouter

from schemas.events import Event, SafetyPlanAdopted, SafetyPlanEnded
from schemas.topics import SAFETY_PLANS
from services.common.consumer import Incoming, Rejected, batch_consumer, event_parser
from services.common.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Plan:
    wijk_code: str
    categories: tuple[str, ...]
    starts_on: date
    ends_on: date | None
    adopted_by: str
    adopted_on: date

    def runs_on(self, day: date) -> bool:
        return self.starts_on <= day and (self.ends_on is None or day <= self.ends_on)


async def apply_plan_events(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    for event in events:
        if isinstance(event, SafetyPlanAdopted):
            await conn.execute(
                "INSERT INTO safety_plans AS p (wijk_code, categories, starts_on, ends_on, "
                "adopted_by, adopted_on, version) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (wijk_code) DO UPDATE SET categories = $2, starts_on = $3, "
                "ends_on = $4, adopted_by = $5, adopted_on = $6, version = $7 "
                "WHERE p.version < $7",
                event.wijk_code,
                list(event.categories),
                event.starts_on,
                event.ends_on,
                event.adopted_by,
                event.adopted_on,
                event.version,
            )
        elif isinstance(event, SafetyPlanEnded):
            await conn.execute(
                "UPDATE safety_plans SET ends_on = $2, version = $3 "
                "WHERE wijk_code = $1 AND version < $3",
                event.wijk_code,
                event.ends_on,
                event.version,
            )


async def plan_of(conn: asyncpg.Connection, wijk_code: str) -> Plan | None:
    row = await conn.fetchrow(
        "SELECT wijk_code, categories, starts_on, ends_on, adopted_by, adopted_on "
        "FROM safety_plans WHERE wijk_code = $1",
        wijk_code,
    )
    if row is None:
        return None
    return Plan(**{**dict(row), "categories": tuple(row["categories"])})


def subscribe(router: KafkaRouter, rt: Runtime) -> None:
    async def handle(batch: Sequence[Incoming[Event]]) -> list[Rejected]:
        async with rt.pool.acquire() as conn, conn.transaction():
            await apply_plan_events(conn, [incoming.item for incoming in batch])
        return []

    batch_consumer(
        router,
        rt,
        "analytics",
        SAFETY_PLANS,
        purpose=SAFETY_PLANS.name,
        parse=event_parser(SafetyPlanAdopted, SafetyPlanEnded),
        handle=handle,
    )
