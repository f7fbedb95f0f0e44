"""The console queue's data against the real database: which open incidents are suspected
duplicates (checked against a plain reading of the view's definition), and when notify pages
next, folded from the escalation timers' events triage keeps."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from schemas.events import EscalationStop, NotificationEscalationScheduled
from services.common.migrations import load_migrations, migrate
from services.triage import store
from services.triage.queue import Filters, count_views, fetch_queue
from services.triage.service import SPEC
from services.triage.workflow import OPEN_STATUSES

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
BUURTEN = ("BU03920102", "BU03920103", None)  # None: reported without a buurt
CATEGORIES = ("vandalisme", "jeugdoverlast")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(
        database_url, min_size=1, max_size=2, server_settings={"search_path": "triage,public"}
    ) as pool:
        async with pool.acquire() as conn:
            await migrate(conn, "triage", load_migrations(SPEC.migrations))
        yield pool


async def add(
    pool: asyncpg.Pool,
    *,
    category: str = "vandalisme",
    buurt: str | None = "BU03920102",
    minutes: float = 0,
    status: str = "triaged",
    merged_into: uuid.UUID | None = None,
    priority: str = "P3",
) -> uuid.UUID:
    incident_id = uuid.uuid4()
    at = T0 + timedelta(minutes=minutes)
    await pool.execute(
        "INSERT INTO incidents (incident_id, report, occurred_at, received_at, partner, "
        "buurt_code, wijk_code, category, priority, effective_priority, confidence, "
        "needs_review, reasons, top_categories, recipients, acknowledge_by, handle_by, status, "
        "merged_into, updated_at) VALUES ($1, '{}', $2, $2, 'app', $3, $4, $5, $6, $6, 0.9, "
        "FALSE, '[]', '[]', '[]', $9, $10, $7, $8, $2)",
        incident_id,
        at,
        buurt,
        buurt and "WK039201",
        category,
        priority,
        status,
        merged_into,
        at + timedelta(minutes=15),
        at + timedelta(hours=8),
    )
    return incident_id


async def test_suspected_duplicates_are_open_neighbours_within_the_hour(pool: asyncpg.Pool) -> None:
    # Edges by hand: 59 minutes apart is near, 60 is not; the same minute; a closed or merged
    # neighbour does not count, nor does one without a buurt or of another category.
    near = [await add(pool, minutes=0), await add(pool, minutes=59)]
    far = [await add(pool, minutes=300), await add(pool, minutes=360)]
    same = [await add(pool, minutes=500), await add(pool, minutes=500)]
    await add(pool, minutes=700, status="resolved")
    lonely = [await add(pool, minutes=710)]
    merged = await add(pool, minutes=800)
    lonely.append(await add(pool, minutes=810, merged_into=merged))
    lonely += [
        await add(pool, buurt=None, minutes=900),
        await add(pool, buurt=None, minutes=901),
        await add(pool, category="jeugdoverlast", minutes=1),
    ]
    # And a crowd at random, compared with the definition read plainly.
    rng = random.Random(14)
    for _ in range(150):
        await add(
            pool,
            category=rng.choice(CATEGORIES),
            buurt=rng.choice(BUURTEN),
            minutes=1000 + rng.randrange(0, 1200),
            status=rng.choice([*OPEN_STATUSES, "resolved", "cancelled"]),
        )
    rows = await pool.fetch("SELECT * FROM incidents")
    open_ = [r for r in rows if r["status"] in OPEN_STATUSES and r["merged_into"] is None]
    expected = {
        i["incident_id"]
        for i in open_
        if i["buurt_code"] is not None
        and any(
            o["incident_id"] != i["incident_id"]
            and (o["category"], o["buurt_code"]) == (i["category"], i["buurt_code"])
            and abs(o["occurred_at"] - i["occurred_at"]) < timedelta(hours=1)
            for o in open_
        )
    }
    assert {*near, *same} <= expected
    assert not expected & {*far, *lonely, merged}

    shown = await fetch_queue(pool, "suspected_duplicates", Filters(), 1000)
    assert {r["incident_id"] for r in shown} == expected
    assert (await count_views(pool, Filters()))["suspected_duplicates"] == len(expected)
    # A filter narrows the incidents shown, not the neighbours they are compared with.
    vandalism = await fetch_queue(
        pool, "suspected_duplicates", Filters(category="vandalisme"), 1000
    )
    categories = {r["incident_id"]: r["category"] for r in rows}
    assert {r["incident_id"] for r in vandalism} == {
        i for i in expected if categories[i] == "vandalisme"
    }


def timer(
    incident_id: uuid.UUID,
    recipient: str,
    escalate_at: datetime | None,
    level: int = 0,
    stopped: EscalationStop | None = None,
) -> NotificationEscalationScheduled:
    return NotificationEscalationScheduled(
        event_id=uuid.uuid4(),
        incident_id=incident_id,
        occurred_at=T0,
        recorded_at=T0,
        producer="notify",
        message_id=uuid.uuid5(incident_id, recipient),
        recipient=recipient,
        level=level,
        escalate_at=escalate_at,
        stopped=stopped,
    )


async def next_escalation(pool: asyncpg.Pool, incident_id: uuid.UUID) -> datetime | None:
    rows = await fetch_queue(pool, "unacknowledged", Filters(), 100)
    (found,) = [r["next_escalation_at"] for r in rows if r["incident_id"] == incident_id]
    return found  # type: ignore[no-any-return]


async def test_the_next_escalation_is_the_earliest_running_timer_as_notify_last_told(
    pool: asyncpg.Pool,
) -> None:
    fire = await add(pool, category="brand", priority="P1")
    other = await add(pool, category="brand", buurt="BU03920103", priority="P1")
    at = T0 + timedelta(minutes=2)
    assert await next_escalation(pool, fire) is None  # no timer told of yet

    async def told(*events: NotificationEscalationScheduled) -> None:
        async with pool.acquire() as conn:
            await store.log_notifications(conn, list(events))

    await told(timer(fire, "brandweer", at), timer(fire, "politie.meldkamer", at))
    await told(timer(other, "brandweer", at - timedelta(minutes=1)))  # not this incident's
    assert await next_escalation(pool, fire) == at
    # The fire brigade's chain paged once and waits again; the police's timer stopped.
    await told(timer(fire, "brandweer", at + timedelta(minutes=2), level=1))
    await told(timer(fire, "politie.meldkamer", None, stopped="dropped"))
    assert await next_escalation(pool, fire) == at + timedelta(minutes=2)
    # Acknowledged: notify stops every timer, nothing is counted down to.
    await told(timer(fire, "brandweer", None, level=1, stopped="acknowledged"))
    assert await next_escalation(pool, fire) is None
    assert await next_escalation(pool, other) == at - timedelta(minutes=1)
