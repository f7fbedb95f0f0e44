"""`make bench`'s notify drain (tools/bench/drain.py) against the real PostgreSQL and a real
stand-in receiver: every queued delivery is delivered once, each outcome recorded set-based
with its attempt and its two notification events (dispatched, delivered) in the outbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from schemas.urgency import URGENT_PRIORITIES
from services.notify.delivery import CLAIM, DeliveryWorker, claim_due, hand_back
from tests.support import eventually
from tools.bench.drain import SCHEMA, backlog, delivered, drain

pytestmark = pytest.mark.integration


async def test_the_worker_drains_the_backlog_and_records_every_outcome(database_url: str) -> None:
    drained = await drain(database_url, 60, concurrency=16)
    assert drained.count == 60 and drained.per_second > 0 and drained.cpu_seconds > 0
    conn = await asyncpg.connect(database_url)
    try:
        statuses = await conn.fetch(
            f"SELECT status, attempts, count(*) FROM {SCHEMA}.deliveries GROUP BY 1, 2"
        )
        assert [tuple(r) for r in statuses] == [("delivered", 1, 60)]
        attempts = await conn.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.delivery_attempts WHERE outcome = 'delivered'"
        )
        assert attempts == 60
        events = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")
        assert events == 120
    finally:
        await conn.close()


async def test_leases_held_without_a_send_are_handed_back_not_waited_out(
    database_url: str,
) -> None:
    """A database blink can end the worker's term between a claim's commit and its reply, or
    interrupt an attempt before anything was sent: the worker hands those leases back (their
    attempt uncounted) instead of leaving them for the 60 s lease to run out."""
    async with backlog(database_url, 12, concurrency=16, lease_seconds=60.0) as due:
        notify = due.worker.notify
        lost = await claim_due(due.pool, notify, 4, urgent=False, worker=due.worker.id)
        interrupted = await claim_due(due.pool, notify, 1, urgent=False, worker=uuid.uuid4())
        assert len(lost) == 4 and len(interrupted) == 1

        # An interrupted attempt hands its own lease back; a stale one (attempt moved on) not.
        await hand_back(due.pool, interrupted[0])
        await hand_back(due.pool, interrupted[0])
        states = await due.pool.fetch(
            "SELECT status, attempts, count(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1"
        )
        assert [tuple(r) for r in states] == [("in_flight", 1, 4), ("pending", 0, 8)]

        # The lost claims: the worker's next term sends them at once, not after 60 s.
        task = asyncio.create_task(due.worker.run(due.runtime, due.loop))
        try:
            await eventually(lambda: delivered_all(due.pool, 12), within=15)
        finally:
            due.runtime.stopping.set()
            await task
        attempts = await due.pool.fetch("SELECT DISTINCT attempts FROM deliveries")
        assert [r["attempts"] for r in attempts] == [1]


async def delivered_all(pool: asyncpg.Pool, count: int) -> bool:
    return await delivered(pool) == count


async def test_the_urgent_lanes_worker_sends_p1_p2_only_and_is_woken_by_them(
    database_url: str,
) -> None:
    """LANE=urgent's worker: a backlog of P4s is not its work; a P1 queued while it waits is
    sent at once (woken by the P1's own signal: its poll is too slow to explain it)."""
    async with backlog(database_url, 20, concurrency=16, poll_seconds=60.0) as due:
        worker = DeliveryWorker(due.worker.notify, urgent_only=True)
        task = asyncio.create_task(worker.run(due.runtime, due.loop))
        try:
            await asyncio.sleep(1.0)  # listening, and it has seen the P4 backlog
            assert await delivered(due.pool) == 0
            p1 = await due.pool.fetchval(
                "INSERT INTO deliveries (message_id, incident_id, recipient, kind, channel, "
                "profile, priority, content_type, body_sealed, first_message_id) "
                "SELECT gen_random_uuid(), gen_random_uuid(), recipient, kind, channel, profile, "
                "'P1', content_type, body_sealed, first_message_id FROM deliveries LIMIT 1 "
                "RETURNING message_id"
            )
            await eventually(lambda: delivered_all(due.pool, 1), within=10)
            sent = await due.pool.fetchval(
                "SELECT message_id FROM deliveries WHERE delivered_at IS NOT NULL"
            )
            assert sent == p1
            await asyncio.sleep(1.0)
            assert await delivered(due.pool) == 1  # the P4s stay for the main lane
        finally:
            due.runtime.stopping.set()
            await task


def _removed_by_join_filter(plan: dict[str, Any]) -> int:
    return int(plan.get("Rows Removed by Join Filter", 0)) + sum(
        _removed_by_join_filter(child) for child in plan.get("Plans", ())
    )


async def test_a_claim_looks_up_each_candidates_predecessors_even_with_stale_statistics(
    database_url: str,
) -> None:
    """A burst adds thousands of pending deliveries between two ANALYZEs. The claim must still
    find each candidate's open predecessors by recipient: when the planner, believing almost
    nothing pending, compared every candidate with every pending row, a claim over 8,000
    took 13 s. Here: the statistics say none is pending, 2,000 are; the work stays linear."""
    count = 2000
    async with backlog(database_url, count, concurrency=16) as due, due.pool.acquire() as conn:
        await conn.execute("UPDATE deliveries SET status = 'delivered'")
        await conn.execute("ANALYZE deliveries")
        await conn.execute("UPDATE deliveries SET status = 'pending'")
        explained = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {CLAIM}",
            64,
            60.0,
            list(URGENT_PRIORITIES),
            False,
            uuid.uuid4(),
        )
        claimed = await conn.fetchval("SELECT count(*) FROM deliveries WHERE leased_by IS NOT NULL")
    assert claimed == 64
    plan = json.loads(explained)[0]["Plan"]
    assert _removed_by_join_filter(plan) < count
