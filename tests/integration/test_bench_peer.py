"""The benchmark's peer, for real: Prometheus Alertmanager (Debian's binary) configured as
`make bench` runs it sends every alert as its own notification to the stand-in receiver,
which records it like a platform delivery."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tests.support import eventually
from tools.bench import peer
from tools.ports import free_port
from tools.standins import Inbox, StandinSettings, webhook_app

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[str, Inbox]]:
    port = free_port()
    inbox = Inbox(tmp_path / "webhooks.jsonl")
    settings = StandinSettings(secret="whsec_" + "A" * 43, webhook_port=port)
    server = uvicorn.Server(
        uvicorn.Config(webhook_app(settings, inbox), port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, within=10)
    try:
        yield f"http://127.0.0.1:{port}", inbox
    finally:
        server.should_exit = True
        await task


async def test_every_alert_is_its_own_notification_at_the_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if peer.binary() is None:
        pytest.skip("prometheus-alertmanager is missing (make ops-tools unpacks it)")
    monkeypatch.setattr(peer, "PORT", free_port())
    async with (
        receiver(tmp_path) as (url, inbox),
        peer.alertmanager(tmp_path, f"{url}/alertmanager") as alertmanager,
    ):
        assert alertmanager is not None
        ids = [f"am-test-{n}" for n in range(5)]
        sent = time.time()
        async with httpx.AsyncClient(base_url=alertmanager) as client:
            response = await client.post(
                "/api/v2/alerts",
                json=[{"labels": {"alertname": "VeiligBench", "incident_id": i}} for i in ids],
            )
        assert response.status_code == 200, response.text
        await eventually(lambda: len(inbox.items) >= len(ids), within=20)
        assert sorted(i["incident_id"] for i in inbox.items) == ids
        assert all(
            i["recipient"] == "alertmanager" and i["received_at"] >= sent for i in inbox.items
        )
