"""The local stand-in receiver verifies every delivery's signature, JSON and CAP alike."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from services.notify.webhooks import generate_secret, webhook_headers
from tools.standins import Inbox, StandinSettings, webhook_app


async def test_signed_json_and_cap_are_verified_and_forgeries_refused(tmp_path: Path) -> None:
    secret = generate_secret()
    inbox = Inbox(tmp_path / "hooks.jsonl")
    app = webhook_app(StandinSettings(secret=secret, dir=tmp_path), inbox)
    incident = "0b7e3c1e-3f6c-4a55-9a8e-6f1c8e5d2a10"
    bodies = {
        "application/json": f'{{"incident_id": "{incident}"}}'.encode(),
        "application/cap+xml": f"<alert><incidents>{incident}</incidents></alert>".encode(),
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://standin"
    ) as client:
        for n, (content_type, body) in enumerate(bodies.items()):
            headers = webhook_headers(
                body,
                message_id=f"msg_{n}",
                secrets=[secret],
                timestamp=int(time.time()),
                content_type=content_type,
            )
            assert (
                await client.post("/hooks/brandweer", content=body, headers=headers)
            ).status_code == 204
        forged = webhook_headers(
            bodies["application/json"],
            message_id="msg_x",
            secrets=[generate_secret()],
            timestamp=int(time.time()),
            content_type="application/json",
        )
        refused = await client.post(
            "/hooks/brandweer", content=bodies["application/json"], headers=forged
        )
        assert refused.status_code == 401
    assert [(i["content_type"], i["verified"], i["incident_id"]) for i in inbox.items] == [
        ("application/json", True, incident),
        ("application/cap+xml", True, incident),
        ("application/json", False, incident),
    ]
