"""Scenario 10 of ``make bench``: the triage console's queue over 10,000 open incidents.

The issue's promise: the console answers the queue of 10,000 open incidents in under 300 ms.
The scenario tops the running platform's triage up to that many open incidents (synthetic rows
of a partner of their own, removed afterwards, so that nothing else sees them), signs a staff
member in the way the console does (a server-side session), and asks for every view of the
queue with its counts, as the page's live stream does, one request after another.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any, get_args

import asyncpg
import httpx

from schemas import geo
from services.common import sessions, staff
from services.triage.queue import View
from tools.bench.stats import Latency

OPEN_INCIDENTS = 10_000
LIMIT_MS = 300.0
PARTNER = "bench-console"
WIJK = "WK039201"  # a filter the night shift uses: the centre
# Every synthetic incident is open, in one of the 111 buurten, spread over the priorities and
# the last ten hours, some needing review and some with a missed deadline; every fourth of
# eight neighbours shares category and buurt within minutes: every view has rows.
_SEED = """
INSERT INTO triage.incidents (incident_id, report, occurred_at, received_at, partner, lat, lon,
    buurt_code, wijk_code, category, priority, effective_priority, confidence, needs_review,
    reasons, top_categories, recipients, acknowledge_by, handle_by, status, updated_at)
SELECT gen_random_uuid(), '{}'::jsonb, at, at, $2, NULL, NULL, b.code, b.wijk,
    (ARRAY['vandalisme', 'woonoverlast', 'jeugdoverlast', 'brand'])[1 + n % 4],
    p, p, 0.4 + (n % 60) / 100.0, n % 7 = 0, '[]', '[]', '[]',
    at + interval '15 minutes', at + interval '8 hours',
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
        await pool.execute("ANALYZE triage.incidents")
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
        "worst_p95_ms": worst,
        "limit_ms": LIMIT_MS,
        "within_limit": worst < LIMIT_MS,
    }
