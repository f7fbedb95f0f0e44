"""The ops dashboard in headless Chromium: it loads from the analytics service alone (no CDN),
its live numbers change when events are produced, and a screenshot is kept as an artefact
(``test-artifacts/analytics-dashboard.png``)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import async_playwright

from services.analytics.service import SPEC
from services.common.service import create_app
from services.common.settings import Settings
from tests.integration.test_analytics import BAKENES, CENTRE, incident, publish, staff_tokens
from tools.ports import free_port

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTEFACT = Path("test-artifacts/analytics-dashboard.png")


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[str]:
    """The analytics service on a real socket: a browser needs one."""
    port = free_port()
    config = uvicorn.Config(
        create_app(SPEC, settings), host="127.0.0.1", port=port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the analytics service did not start"
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (make browser)")
async def test_the_dashboard_shows_live_numbers(settings: Settings, served: str) -> None:
    tokens = await staff_tokens(settings, "ops")
    requests: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("request", lambda request: requests.append(request.url))
            await page.goto(f"{served}/login?token={tokens['ops']}")
            assert page.url == f"{served}/dashboard"  # the token is not left in the URL
            await page.wait_for_function(
                "document.querySelector('#connection').textContent === 'live'", timeout=20_000
            )
            assert await page.text_content("#backlog-total") == "0"

            now = datetime.now(UTC)
            stories = [
                incident(now - timedelta(minutes=3), CENTRE, "hic.geweld", priority="P1"),
                incident(now - timedelta(minutes=2), CENTRE, "vandalisme", priority="P4"),
                incident(now - timedelta(minutes=1), BAKENES, "brand", priority="P1"),
            ]
            await publish(settings, [e for it in stories for e in it.events])

            # The server pushes new numbers every 2 s; no reload.
            await page.wait_for_function(
                "document.querySelector('#backlog-total').textContent === '3'", timeout=30_000
            )
            await page.wait_for_function(
                "document.querySelector('#map-total').textContent === '3'", timeout=30_000
            )
            oude_stad = page.locator('#map path.buurt[data-code="BU03920102"]')
            assert await oude_stad.get_attribute("data-count") == "3"  # the wijk level: 3
            throughput = await page.text_content("#throughput")
            assert throughput is not None and "incident-events" in throughput
            ARTEFACT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTEFACT), full_page=True)
        finally:
            await browser.close()
    assert ARTEFACT.stat().st_size > 10_000  # noqa: ASYNC240 (once, after the browser)
    # Everything came from the analytics service itself: it works offline.
    assert requests and all(url.startswith(served) for url in requests), requests
