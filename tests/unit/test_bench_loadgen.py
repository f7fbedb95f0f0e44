"""The load generator's burst with P1s among it: the P1s go at their moments, each on the
connection of its own, while the batches go on theirs. An HTTP server in the test process
answers as intake's partner API does (202 with incident ids) and notes what came when."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from services.common.settings import Settings
from tools.bench.loadgen import Burst, SentReports, Target, _burst


@pytest.fixture
async def intake() -> AsyncIterator[tuple[str, list[tuple[float, str, int]]]]:
    seen: list[tuple[float, str, int]] = []  # when, path, reports

    async def single(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((time.time(), request.path, 1))
        assert body["flags"]["in_progress"] is True
        return web.json_response({"incident_id": str(uuid.uuid4())}, status=202)

    async def batch(request: web.Request) -> web.Response:
        reports: list[dict[str, Any]] = (await request.json())["reports"]
        seen.append((time.time(), request.path, len(reports)))
        await asyncio.sleep(1.0)  # a busy intake: the P1s must not queue behind this
        results = [
            {"index": n, "result": "accepted", "incident_id": str(uuid.uuid4())}
            for n in range(len(reports))
        ]
        return web.json_response({"results": results})

    app = web.Application()
    app.add_routes([web.post("/v1/incidents", single), web.post("/v1/incidents:batch", batch)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_p1s_go_at_their_moments_beside_the_burst(
    intake: tuple[str, list[tuple[float, str, int]]],
) -> None:
    url, seen = intake
    target = Target(url, "bench", "key", Settings(), "topic", "run1")
    job = Burst(count=1_000, batch=500, concurrency=1, first=0, urgent_at=(0.1, 0.5))
    result = await _burst(job, target)
    assert isinstance(result, SentReports)
    assert len(result.sent) == 1_000 and all(s.incident_id for s in result.sent)
    assert [s.index for s in result.urgent] == [0, 1]
    assert all(s.status == 202 and s.incident_id for s in result.urgent)
    singles = [at - result.started for at, path, _ in seen if path == "/v1/incidents"]
    # At their moments, and answered at once: not after the batches in flight on the burst's
    # one connection (two of a second each).
    assert 0.1 <= singles[0] < 0.6 and 0.5 <= singles[1] < 1.0, singles
    for p1 in result.urgent:
        assert p1.answered - p1.scheduled < 0.5
