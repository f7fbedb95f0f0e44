"""An acknowledgement stops the paging for the whole incident (issue #14): once anyone took
responsibility, by a responder's link or by staff in the triage console, no escalation page
goes to anyone for that incident, against the real broker and database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import IncidentAcknowledged, NotificationAcknowledged, NotificationEscalated
from schemas.taxonomy import Profile
from services.common.settings import Settings
from services.notify.service import make_spec
from services.notify.webhooks import generate_secret
from tests.integration.test_notify import (
    Mailbox,
    Received,
    Receiver,
    Story,
    database,
    notifications,
    notify_config,
    of,
    receiver,
    receiver_server,
    smtp_server,
    story,
    webhook,
)
from tests.support import eventually, running

pytestmark = pytest.mark.integration
__all__ = ["receiver", "receiver_server", "smtp_server"]  # the fixtures this module uses

SCALE = 0.08  # P1's 2 minutes become 9.6 seconds: room to acknowledge on a busy machine
CARE, ENFORCEMENT = "zorg.veiligheidshuis", "handhaving"
# Care's chain pages the control room; enforcement's (empty) chain re-pages enforcement.
PAGED_ON_ESCALATION = ("politie.meldkamer", "politie.ovd")


async def p1_for_two(settings: Settings, receiver: Receiver) -> Story:
    incident = story(settings)
    await incident.publish(
        incident.reported,
        incident.triaged(
            "verward-gedrag", "P1", {CARE: Profile.FULL, ENFORCEMENT: Profile.OPERATIONAL}
        ),
    )
    for code in (CARE, ENFORCEMENT):
        await eventually(lambda code=code: received(receiver, code, incident))
    return incident


def received(receiver: Receiver, code: str, incident: Story) -> list[Received]:
    return [r for r in receiver.of(code) if r.json["incident_id"] == str(incident.incident_id)]


async def test_one_acknowledgement_stops_every_recipients_paging(
    settings: Settings, receiver: Receiver, smtp_server: tuple[Mailbox, int]
) -> None:
    spec = make_spec(notify_config(smtp_server[1], escalation_time_scale=SCALE))
    async with running(spec, settings) as (_app, client):
        for code in (CARE, ENFORCEMENT, *PAGED_ON_ESCALATION):
            await webhook(settings, receiver, code, [generate_secret()])
        # Taken by the control room in the console: triage publishes IncidentAcknowledged.
        by_console = await p1_for_two(settings, receiver)
        await by_console.publish(
            by_console.later(IncidentAcknowledged, recipient=CARE, acknowledged_by="dienst")
        )
        # Taken by enforcement through the link in its message.
        by_link = await p1_for_two(settings, receiver)
        (message,) = received(receiver, ENFORCEMENT, by_link)
        token = message.json["ack_url"].rpartition("/")[2]
        acked = await client.post(f"/v1/acknowledgements/{token}", json={})
        assert acked.status_code == 200, acked.text

        # Well past every acknowledgement deadline: nothing more reached anyone.
        deadline = datetime.now(UTC) + timedelta(seconds=120 * SCALE)
        await asyncio.sleep((deadline - datetime.now(UTC)).total_seconds() + 2.5)
        events = await notifications(
            settings, lambda es: bool(of(es, NotificationAcknowledged)), settle=1.0
        )
    assert of(events, NotificationEscalated) == []
    for code in PAGED_ON_ESCALATION:
        assert receiver.of(code) == [], code
    assert len(receiver.of(CARE)) == len(receiver.of(ENFORCEMENT)) == 2  # the two alerts
    async with database(settings) as conn:
        timers = await conn.fetch(
            "SELECT incident_id, recipient, stopped_at, stop_reason FROM escalations "
            "WHERE incident_id = ANY($1)",
            [by_console.incident_id, by_link.incident_id],
        )
    assert len(timers) == 4
    assert {(t["stop_reason"], t["stopped_at"] is not None) for t in timers} == {
        ("acknowledged", True)
    }
