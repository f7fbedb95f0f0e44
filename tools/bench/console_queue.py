"""Scenario 10 of ``make bench``: the triage console's queue over 10,000 open incidents.

The issue's promise: the console answers the queue of 10,000 open incidents in under 300 ms.
The scenario tops the running platform's triage up to that many open incidents (synthetic rows
of a partner of their own, removed afterwards, so that nothing else sees them), signs a staff
member in the way the console does (a server-side session), and asks for every view of the
queue with its counts, as the page's live stream does, one request after another.

Alone, against a running triage and its database (``DATABASE_URL``)::

    python -m tools.bench.console_queue --triage-url http://127.0.0.1:8082
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any, get_args

import asyncpg
import httpx
import typer

from schemas import geo
from services.common import sessions, staff
from services.triage.queue import View
from tools.bench.stats import Latency

OPEN_INCIDENTS = 10_000
LIMIT_MS = 300.0
PARTNER = "bench-console"
WIJK = "WK039201"  # a filter the night shift uses: the centre
# Every synthetic incident is open, in one of the 111 buurten, spread over the priorities and
# the last ten hours, some needing review, some past the acknowledge deadline and some with
# the handle-by deadline within the hour; every fourth of eight neighbours shares category
# and buurt within minutes: every view has rows. No handle-by deadline passes while the
# scenario runs (triage would raise a missed one: services/triage/timers.py).
_SEED = """
INSERT INTO triage.incidents (incident_id, report, occurred_at, received_at, partner, lat, lon,
    buurt_code, wijk_code, category, priority, effective_priority, confidence, needs_review,
    reasons, top_categories, recipients, acknowledge_by, handle_by, status, updated_at)
SELECT gen_random_uuid(), '{}'::jsonb, at, at, $2, NULL, NULL, b.code, b.wijk,
    (ARRAY['vandalisme', 'woonoverlast', 'jeugdoverlast', 'brand'])[1 + n % 4],
    p, p, 0.4 + (n % 60) / 100.0, n % 7 = 0, '[]', '[]', '[]',
    at + interval '15 minutes', now() + (10 + n % 470) * interval '1 minute',
    (ARRAY['triaged', 'acknowledged', 'in_progress', 'on_hold'])[1 + n % 4], now()
FROM generate_series(1, $1) AS n,
    LATERAL (SELECT now() - (n % 600) * interval '1 minute' AS at,
                    (ARRAY['P1', 'P2', 'P3', 'P4'])[1 + n % 4] AS p) AS x,
    LATERAL (SELECT ($3::text[])[1 + (n / 8) % cardinality($3)] AS code,
                    ($4::text[])[1 + (n / 8) % cardinality($4)] AS wijk) AS b
"""


async def _open_count(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM triage.incidents WHERE merged_into IS NULL "
            "AND status IN ('triaged', 'acknowledged', 'in_progress', 'on_hold', 'reopened')"
        )
    )


async def _seed(pool: asyncpg.Pool, wanted: int) -> int:
    buurten = geo.buurten()
    missing = max(0, wanted - await _open_count(pool))
    if missing:
        codes, wijken = [b.code for b in buurten], [b.wijk_code for b in buurten]
        await pool.execute(_SEED, missing, PARTNER, codes, wijken)
        await pool.execute("VACUUM ANALYZE triage.incidents")  # as autovacuum would leave it
    return missing


async def _session(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        username = f"bench-{uuid.uuid4().hex[:6]}"
        await staff.add_staff(conn, username, "triage")
        session_id = await sessions.open_session(conn, username, datetime.now(UTC))
    assert session_id is not None
    return session_id


async def measure(
    pool: asyncpg.Pool, base_url: str, *, open_incidents: int = OPEN_INCIDENTS, rounds: int = 30
) -> dict[str, Any]:
    """Latency of ``GET /console/api/queue`` per view (and the centre's wijk), ``rounds`` each."""
    seeded = await _seed(pool, open_incidents)
    cookies = {sessions.SESSION_COOKIE: await _session(pool)}
    queries: dict[str, dict[str, str]] = {view: {"view": view} for view in get_args(View)}
    queries[f"open, wijk {WIJK}"] = {"view": "open", "wijk": WIJK}
    try:
        total = await _open_count(pool)
        found: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=30) as client:
            for name, params in queries.items():
                times = []
                for _ in range(rounds):
                    began = time.perf_counter()
                    response = await client.get("/console/api/queue", params=params)
                    times.append(time.perf_counter() - began)
                    response.raise_for_status()
                body = response.json()
                found[name] = {
                    "latency_ms": Latency.of(times).as_ms(),
                    "rows": len(body["items"]),
                    "count": body["counts"][params["view"]],
                }
    finally:
        await pool.execute("DELETE FROM triage.incidents WHERE partner = $1", PARTNER)
    worst = max(v["latency_ms"]["p95"] or float("inf") for v in found.values())
    return {
        "open_incidents": total,
        "seeded": seeded,
        "rounds": rounds,
        "views": found,
        "worst_p50_ms": max(v["latency_ms"]["p50"] or float("inf") for v in found.values()),
        "worst_p95_ms": worst,
        "limit_ms": LIMIT_MS,
        "within_limit": worst < LIMIT_MS,
    }


def main(
    triage_url: str = typer.Option("http://127.0.0.1:8082", help="The running triage."),
    open_incidents: int = typer.Option(OPEN_INCIDENTS, help="Open incidents to measure at."),
    rounds: int = typer.Option(30, help="Requests per view."),
) -> None:
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        raise typer.BadParameter("DATABASE_URL must name triage's PostgreSQL database")

    async def run() -> dict[str, Any]:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            return await measure(pool, triage_url, open_incidents=open_incidents, rounds=rounds)
        finally:
            await pool.close()

    result = asyncio.run(run())
    print(f"console queue at {result['open_incidents']:,} open incidents, {rounds} requests each:")
    for name, view in result["views"].items():
        ms = view["latency_ms"]
        print(f"  {name:<22} p50 {ms['p50']:>7} ms  p95 {ms['p95']:>7} ms  ({view['count']:,})")
    verdict = "within" if result["within_limit"] else "OVER"
    print(
        f"worst p50 {result['worst_p50_ms']} ms, p95 {result['worst_p95_ms']} ms: "
        f"{verdict} the {LIMIT_MS:.0f} ms limit"
    )


if __name__ == "__main__":
    typer.run(main)
