"""`make bench`'s console scenario against a real triage service: it fills the queue to the
wanted number of open incidents, measures every view, and leaves nothing of its own behind.
(The figure itself is the benchmark's; this only checks that the scenario measures it.)"""

from __future__ import annotations

import asyncpg
import pytest

from services.common.service import create_app
from services.common.settings import Settings
from services.triage.service import SPEC
from tests.support import served
from tools.bench import console_queue
from tools.ports import free_port

pytestmark = pytest.mark.integration


async def test_the_console_scenario_measures_every_view_and_cleans_up(settings: Settings) -> None:
    port = free_port()
    app = create_app(SPEC, settings.model_copy(update={"triage_port": port}))
    async with served(app, port) as base:
        pool = await asyncpg.create_pool(
            settings.database_url.get_secret_value(), min_size=1, max_size=2
        )
        try:
            result = await console_queue.measure(pool, base, open_incidents=400, rounds=2)
            left = await pool.fetchval(
                "SELECT count(*) FROM triage.incidents WHERE partner = $1", console_queue.PARTNER
            )
        finally:
            await pool.close()
    assert (result["open_incidents"], result["seeded"], left) == (400, 400, 0)
    views = result["views"]
    assert set(views) == {
        "open", "needs_review", "unacknowledged", "sla_at_risk", "suspected_duplicates",
        "open, wijk WK039201",
    }  # fmt: skip
    assert views["open"]["count"] == 400 and views["open"]["rows"] == 200  # the page's limit
    assert 0 < views["open, wijk WK039201"]["count"] < 400
    for view in views.values():
        assert view["count"] > 0, view
        assert view["latency_ms"]["count"] == 2
    assert result["worst_p95_ms"] == max(v["latency_ms"]["p95"] for v in views.values())
