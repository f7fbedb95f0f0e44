"""A fire never waits behind graffiti (issue #13): a burst of vandalism reports is accepted,
then one fire in progress; the fire reaches the fire brigade's receiver while most of the
burst is still on its way, through intake's relay, triage and notify. And with the urgent lane
in processes of its own (as `make run` has it), a fire is delivered even while the processes
of the bulk lane cannot run at all."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from schemas.geo import buurten
from schemas.topics import INCIDENT_URGENT
from services.common.settings import Settings
from tests.e2e.test_end_to_end import Platform, start_platform
from tests.support import eventually, header, read_topic

pytestmark = pytest.mark.integration

BURST = 1000


@pytest.fixture
async def laned(settings: Settings, tmp_path: Path) -> AsyncIterator[Platform]:
    async with start_platform(settings, tmp_path, lanes=True) as started:
        yield started


async def test_a_fire_waits_neither_for_a_frozen_bulk_lane_nor_behind_a_burst(
    laned: Platform,
) -> None:
    """Both stories on one platform laned as `make run` has it: its start is most of their
    time."""
    await a_fire_is_delivered_while_the_bulk_lane_is_frozen(laned)
    await a_fire_overtakes_a_burst_of_vandalism(laned)


async def report(platform: Platform, body: dict[str, object]) -> str:
    response = await platform.client.post(
        f"http://127.0.0.1:{platform.settings.intake_port}/v1/incidents",
        json=body,
        headers={"Authorization": f"Bearer {platform.key}"},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["incident_id"])


def fire(external_id: str, buurt_code: str) -> dict[str, object]:
    return {
        "external_id": external_id,
        "description": "Brand in een woning, vlammen slaan uit het dak",
        "location": {"buurt_code": buurt_code},
        "flags": {"in_progress": True},
    }


async def a_fire_is_delivered_while_the_bulk_lane_is_frozen(laned: Platform) -> None:
    """SIGSTOP the main lane's triage and notify: the urgent lane's own processes still
    decide and deliver the fire; the graffiti waits; once the bulk lane runs again the graffiti
    is delivered and nothing is delivered twice."""
    run = uuid.uuid4().hex[:6]
    area = buurten()[3].code
    bulk = [p for p in laned.supervisor.programs if p.name in ("triage", "notify")]
    assert len(bulk) == 2 and all(p.process is not None for p in bulk)
    for program in bulk:
        assert program.process is not None
        program.process.send_signal(signal.SIGSTOP)
    try:
        graffiti = await report(
            laned,
            {
                "external_id": f"{run}-graffiti",
                "description": "Graffiti op de gevel van het buurthuis gespoten",
                "category_hint": "vandalisme",
                "location": {"buurt_code": area},
            },
        )
        fire_id = await report(laned, fire(f"{run}-fire", area))

        async def fire_delivered() -> bool:
            return any(
                d["incident_id"] == fire_id and d["verified"] for d in await laned.deliveries()
            )

        await eventually(fire_delivered, within=60, every=0.2)
        assert not any(d["incident_id"] == graffiti for d in await laned.deliveries())
        await the_fires_report_is_on_the_urgent_lane_once(laned, fire_id)
    finally:
        for program in bulk:
            assert program.process is not None
            program.process.send_signal(signal.SIGCONT)

    async def graffiti_delivered() -> bool:
        return any(d["incident_id"] == graffiti and d["verified"] for d in await laned.deliveries())

    await eventually(graffiti_delivered, within=120, every=0.5)
    fire_copies = [d for d in await laned.deliveries() if d["incident_id"] == fire_id]
    await asyncio.sleep(3)  # the bulk lane now reads the fire's events too: the inbox drops them
    again = [d for d in await laned.deliveries() if d["incident_id"] == fire_id]
    assert len(again) == len(fire_copies)
    keys = [d["webhook_id"] for d in again]
    assert len(keys) == len(set(keys)), "a message delivered twice"


async def the_fires_report_is_on_the_urgent_lane_once(laned: Platform, fire_id: str) -> None:
    """Intake put the fire's report on the urgent lane; triage, deciding from that copy,
    sends its decision after it there but not the report a second time (notify's urgent lane
    delivered the fire from intake's copy while the bulk lane was frozen)."""
    key = fire_id.encode()

    def of_fire(records: list[ConsumerRecord[bytes, bytes]], kind: str) -> int:
        return sum(1 for r in records if r.key == key and kind in (header(r, "ce_type") or ""))

    lane = await read_topic(
        laned.settings,
        laned.settings.topic(INCIDENT_URGENT.name),
        until=lambda records: of_fire(records, "incident.triaged") > 0,
    )
    assert of_fire(lane, "incident.triaged") == 1
    assert of_fire(lane, "incident.reported") == 1


async def a_fire_overtakes_a_burst_of_vandalism(platform: Platform) -> None:
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

    fire_id = await report(platform, fire(f"{run}-fire", areas[0].code))

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
