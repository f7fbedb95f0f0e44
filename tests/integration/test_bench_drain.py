"""`make bench`'s notify drain (tools/bench/drain.py) against the real PostgreSQL and a real
stand-in receiver: every queued delivery is delivered once, each outcome recorded set-based
with its attempt and its two notification events (dispatched, delivered) in the outbox."""

from __future__ import annotations

import asyncpg
import pytest

from tools.bench.drain import SCHEMA, drain

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
