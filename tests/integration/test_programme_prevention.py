"""Prevention signals (issue #17) as a story against the real broker and database.

Neighbours keep reporting trouble at one door on the Kruisweg (their app sends the spot,
within a few metres): noise, a confused man, noise again, each a separate incident days
apart. The third report in a month raises one zorgsignaal: the Zorg- en Veiligheidshuis
hears of it (operational: what and where, never who reported), triage staff see it,
analytics counts it for the wijk. A fourth report at that door in the same month raises no
second signal. At another door, reported by address text written three ways, the third
report raises that door's signal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from schemas.envelope import decode
from schemas.events import IncidentTriaged, IncidentZorgsignaalRaised
from schemas.topics import INCIDENT_EVENTS
from services.analytics.service import SPEC as ANALYTICS
from services.common.settings import Settings
from services.notify.webhooks import generate_secret
from tests.integration.test_notify import Receiver, verified, webhook
from tests.integration.test_programme import (
    Programme,
    incident_events,
    programme,
    receiver,  # noqa: F401 (a fixture)
)
from tests.integration.test_programme_plans import staff_token
from tests.support import eventually, header, read_topic, running

pytestmark = pytest.mark.integration

CARE = "zorg.veiligheidshuis"
DOOR = {"lat": 52.3590, "lon": 4.6560}
NEAR_DOOR = {"lat": 52.35905, "lon": 4.65605}  # about 7 m away
OTHER_DOOR = ["Zijlweg 101, Haarlem", "zijlweg 101 haarlem", "ZIJLWEG 101,Haarlem"]
REPORTER = {"name": "J. de Boer", "phone": "06-99887766", "email": "deboer@example.nl"}
WHAT = [
    ("woonoverlast", "Harde muziek en geschreeuw uit de benedenwoning, al de hele nacht"),
    ("verward-gedrag", "Verwarde man op de stoep roept dat iemand hem achtervolgt"),
    ("woonoverlast", "Weer lawaai en bonken op de muren bij de benedenburen"),
    ("woonoverlast", "Opnieuw ruzie en lawaai in dezelfde woning"),
]


async def report_at_the_door(stage: Programme, n: int, days_ago: float) -> UUID:
    category, description = WHAT[n]
    return await stage.report(
        "politie",
        external_id=f"KW12-{n}",
        description=description,
        category_hint=category,
        occurred_at=(datetime.now(UTC) - timedelta(days=days_ago)).isoformat(),
        location=DOOR if n != 1 else NEAR_DOOR,
        reporter=REPORTER,
    )


async def signals_on_the_log(settings: Settings, settle: float) -> list[IncidentZorgsignaalRaised]:
    records = await read_topic(
        settings,
        settings.topic(INCIDENT_EVENTS.name),
        until=lambda rs: any(header(r, "ce_type") == IncidentZorgsignaalRaised.ce_type for r in rs),
        within=45,
        settle=settle,
    )
    return [
        event
        for r in records
        if header(r, "ce_type") == IncidentZorgsignaalRaised.ce_type
        and isinstance(event := decode(r.headers, r.value), IncidentZorgsignaalRaised)
    ]


async def test_the_third_report_at_one_door_in_a_month_raises_one_zorgsignaal(
    settings: Settings,
    receiver: Receiver,  # noqa: F811 (the fixture)
) -> None:
    async with (
        programme(settings) as (stage, _),
        running(ANALYTICS, settings) as (_, analytics),
    ):
        assert stage.triage is not None
        care_key = generate_secret()
        await webhook(settings, receiver, CARE, [care_key], fmt="json")
        staff = await staff_token(settings, "t.staff", "triage")
        ops = await staff_token(settings, "o.ops", "ops")

        first = await report_at_the_door(stage, 0, days_ago=20)
        second = await report_at_the_door(stage, 1, days_ago=10)
        # Two reports are no pattern yet: both triaged, no signal.
        for incident in (first, second):
            await incident_events(settings, incident, IncidentTriaged)
        third = await report_at_the_door(stage, 2, days_ago=1)
        (signal,) = await signals_on_the_log(settings, settle=0)
        fourth = await report_at_the_door(stage, 3, days_ago=0)
        await incident_events(settings, fourth, IncidentTriaged)
        elsewhere = [
            await stage.report(
                "wijkapp",
                description="Buurman schreeuwt weer en gooit met spullen op het balkon",
                category_hint="woonoverlast",
                occurred_at=(datetime.now(UTC) - timedelta(days=days)).isoformat(),
                location={"address": address},
            )
            for days, address in zip((15, 8, 2), OTHER_DOOR, strict=True)
        ]

        def signal_messages() -> list[Any]:
            return [
                m
                for m in receiver.of(CARE)
                if "Zorgsignaal" in m.json.get("update_reason", "")
                and m.json["incident_id"] == str(third)
            ]

        await eventually(signal_messages, within=45)
        # The fourth report was decided and had its chance; the other door has its own signal.
        signals = await signals_on_the_log(settings, settle=5)
        listed = await stage.triage.get("/v1/zorgsignalen", headers=staff)

        async def counted() -> Any:
            found = await analytics.get("/v1/zorgsignalen/areas", headers=ops)
            assert found.status_code == 200, found.text
            return found.json() if found.json()["total"] == 2 else None

        await eventually(counted, within=30)
        areas = await counted()
        report = await analytics.get(f"/v1/reports/wijk/{signal.wijk_code}", headers=ops)

    (other,) = [s for s in signals if s != signal]
    assert len(signals) == 2
    assert (other.incident_id, other.incidents) == (elsewhere[-1], tuple(elsewhere))
    assert (other.matched_on, other.wijk_code) == ("address", None)  # an address is not geocoded
    assert signal.incident_id == third
    assert signal.incidents == (first, second, third)
    assert signal.categories == ("woonoverlast", "verward-gedrag")
    assert (signal.matched_on, signal.window_days, signal.recipient) == ("point", 30, CARE)

    # The care partner is told once, operationally: what and where, never who reported.
    (message,) = signal_messages()
    verified(message, care_key)
    payload = message.json
    assert (payload["incident_id"], payload["kind"], payload["profile"]) == (
        str(third),
        "alert",
        "operational",
    )
    assert payload["update_reason"].startswith(
        "Zorgsignaal: 3 meldingen (woonoverlast, burenruzie, verward gedrag (E33)) "
        "op dezelfde plek binnen 30 dagen"
    )
    assert str(first) in payload["update_reason"] and str(second) in payload["update_reason"]
    assert payload["report"]["description"] == WHAT[2][1]
    assert "ack_url" not in payload
    body = message.body.decode()
    for secret in (*REPORTER.values(), "gAAAA"):
        assert secret not in body, secret
    assert "reporter" not in payload["report"]

    # Triage staff see it (for the console's queue).
    assert listed.status_code == 200, listed.text
    shown, _other = sorted(listed.json(), key=lambda s: s["incident_id"] != str(third))
    assert (shown["signal_id"], shown["incident_id"]) == (str(signal.signal_id), str(third))
    assert shown["incidents"] == [str(first), str(second), str(third)]

    # Analytics counts it for the wijk (ops: exact), in the area view and the wijk report.
    wijk = {a["code"]: a["count"] for a in areas["areas"]}
    assert (wijk[signal.wijk_code], wijk["?"]) == (1, 1) and sum(wijk.values()) == 2
    assert report.json()["zorgsignalen"] == 1
    assert areas["category"] == "zorgsignaal"
