"""Status callbacks (issue #17) as a story against the real broker and database.

The Mendel College and the police register status callbacks with `veilig partners
callback`. The school reports youth nuisance at its gate; the police report the same
incident minutes later and theirs is merged into the school's. Each partner hears, signed
(Standard Webhooks), what happened to its own report only: the school that it was triaged,
acknowledged and resolved; the police that theirs was merged. Never the other's report, the
staff's internal note, or who responds.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from schemas.events import IncidentMerged, IncidentTriaged
from services.common.settings import Settings
from services.notify.webhooks import generate_secret
from tests.integration.test_notify import Receiver, verified
from tests.integration.test_programme import (
    GROTE_MARKT,
    REPORTER,
    YOUTH,
    incident_events,
    programme,
    receiver,  # noqa: F401 (a fixture)
)
from tests.integration.test_programme_plans import cli, staff_token

pytestmark = pytest.mark.integration

INTERNAL_NOTE = "Agent Pietersen sprak de jongens aan bij de poort"


def statuses(messages: list[Any]) -> list[str]:
    return [m.json["data"]["status"] for m in messages]


async def test_each_partner_hears_signed_what_happens_to_its_own_report_only(
    settings: Settings,
    receiver: Receiver,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = {"mendel-college": generate_secret(), "politie": generate_secret()}
    async with programme(settings, notify=False) as (stage, _):
        assert stage.triage is not None
        for partner, key in keys.items():
            done = await asyncio.to_thread(
                cli,
                settings,
                monkeypatch,
                "partners",
                "callback",
                partner,
                "--url",
                f"{receiver.base}/hooks/{partner}",
                "--secret",
                key,
            )
            assert done.exit_code == 0, done.output
        refused = await asyncio.to_thread(
            cli,
            settings,
            monkeypatch,
            "partners",
            "callback",
            "wijkapp",
            "--url",
            "http://callbacks.wijkapp.example/hook",
            "--secret",
            keys["politie"],
        )
        assert refused.exit_code == 1
        assert "https is required" in refused.output

        school = await stage.report(
            "mendel-college",
            external_id="MC-2026-17",
            description=YOUTH,
            category_hint="jeugdoverlast",
            location=GROTE_MARKT,
            reporter=REPORTER,
        )
        await incident_events(settings, school, IncidentTriaged)
        police = await stage.report(
            "politie",
            external_id="POL-88",
            description=YOUTH,
            category_hint="jeugdoverlast",
            location=GROTE_MARKT,
        )
        merged = [
            e
            for e in await incident_events(settings, school, IncidentMerged)
            if isinstance(e, IncidentMerged)
        ]
        assert [m.duplicate_incident_id for m in merged] == [police]

        staff = await staff_token(settings, "t.staff", "triage")
        acked = await stage.triage.post(
            f"/v1/incidents/{school}/acknowledge", json={}, headers=staff
        )
        assert acked.status_code == 200, acked.text
        await stage.until_status("mendel-college", school, "acknowledged")
        resolved = await stage.triage.post(
            f"/v1/incidents/{school}/resolve",
            json={"outcome": "handled", "note": INTERNAL_NOTE},
            headers=staff,
        )
        assert resolved.status_code == 200, resolved.text
        (police_message,) = await receiver.wait("politie", within=45)
        school_messages = await receiver.wait("mendel-college", 3, within=45)
        await asyncio.sleep(2.0)  # time for a message that must not come

    # The school: its own report, step by step, each message signed with its secret.
    assert statuses(school_messages)[0] in ("triaged", "needs_review")
    assert statuses(school_messages)[1:] == ["acknowledged", "resolved"]
    assert len(receiver.of("mendel-college")) == 3
    for message in school_messages:
        verified(message, keys["mendel-college"])
        assert message.json["type"] == "report.status-changed"
        data = message.json["data"]
        assert (data["incident_id"], data["external_id"]) == (str(school), "MC-2026-17")
        assert set(data) == {"incident_id", "external_id", "status", "note", "at"}
    assert school_messages[-1].json["data"]["note"] == "handled"
    # The police: only that their report was merged, about their own report.
    verified(police_message, keys["politie"])
    data = police_message.json["data"]
    assert (data["incident_id"], data["external_id"], data["status"]) == (
        str(police),
        "POL-88",
        "merged",
    )
    # Nobody hears another partner's report, the internal note, a responder or the reporter.
    bodies = {p: b"".join(m.body for m in receiver.of(p)).decode() for p in keys}
    assert "POL-88" not in bodies["mendel-college"] and str(police) not in bodies["mendel-college"]
    assert "MC-2026-17" not in bodies["politie"] and str(school) not in bodies["politie"]
    for body in bodies.values():
        for secret in (INTERNAL_NOTE, YOUTH, *REPORTER.values(), "politie.", "wijkagent"):
            assert secret not in body, secret
    assert UUID(police_message.headers["webhook-id"]).version == 4
