"""A fire never waits behind graffiti (issue #13): a burst of vandalism reports is accepted,
then one fire in progress; the fire reaches the fire brigade's receiver while most of the
burst is still on its way, through intake's relay, triage and notify."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas.geo import buurten
from services.common.settings import Settings
from tests.e2e.test_end_to_end import Platform, start_platform
from tests.support import eventually

pytestmark = pytest.mark.integration

BURST = 1000


@pytest.fixture
async def platform(settings: Settings, tmp_path: Path) -> AsyncIterator[Platform]:
    async with start_platform(settings, tmp_path) as started:
        yield started


async def test_a_fire_overtakes_a_burst_of_vandalism(platform: Platform) -> None:
    run = uuid.uuid4().hex[:6]
    areas = buurten()
    url = f"http://127.0.0.1:{platform.settings.intake_port}/v1/incidents"
    auth = {"Authorization": f"Bearer {platform.key}"}
    burst = [
        {
            "external_id": f"{run}-v{n}",
            "description": "Graffiti op de gevel van het buurthuis gespoten, grote tags",
            "category_hint": "vandalisme",
            "location": {"buurt_code": areas[n % len(areas)].code},
        }
        for n in range(BURST)
    ]
    burst_ids: set[str] = set()
    for start in range(0, BURST, 500):
        response = await platform.client.post(
            f"{url}:batch", json={"reports": burst[start : start + 500]}, headers=auth
        )
        assert response.status_code in (200, 202, 207), response.text
        burst_ids |= {r["incident_id"] for r in response.json()["results"]}
    assert len(burst_ids) == BURST

    fire = await platform.client.post(
        url,
        json={
            "external_id": f"{run}-fire",
            "description": "Brand in een woning, vlammen slaan uit het dak",
            "location": {"buurt_code": areas[0].code},
            "flags": {"in_progress": True},
        },
        headers=auth,
    )
    assert fire.status_code == 202, fire.text
    fire_id = fire.json()["incident_id"]

    seen: dict[str, int] = {}

    async def fire_delivered() -> bool:
        deliveries = await platform.deliveries()
        if not any(d["incident_id"] == fire_id and d["verified"] for d in deliveries):
            return False
        seen["burst_delivered"] = len({d["incident_id"] for d in deliveries} & burst_ids)
        return True

    await eventually(fire_delivered, within=120, every=0.2)
    print(f"the fire was delivered when {seen['burst_delivered']} of {BURST} were")
    # Without lanes it came just before the burst finished draining.
    assert seen["burst_delivered"] < BURST // 2

    # And the burst is not lost behind it.
    async def burst_drained() -> bool:
        delivered = {d["incident_id"] for d in await platform.deliveries()}
        return burst_ids <= delivered

    await eventually(burst_drained, within=300, every=1.0)
    await asyncio.sleep(0)
