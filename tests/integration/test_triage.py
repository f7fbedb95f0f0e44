"""Triage against the real broker and database: decisions, duplicates, the staff API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from schemas.envelope import decode, encode
from schemas.events import (
    Event,
    Flags,
    IncidentPriorityChanged,
    IncidentReported,
    IncidentTriaged,
    NotificationAcknowledged,
)
from schemas.geo import locate
from schemas.taxonomy import priority_rank
from schemas.topics import INCIDENT_EVENTS, NOTIFICATION_EVENTS
from services.common import staff
from services.common.settings import Settings
from services.triage.service import SPEC
from tests.support import eventually, produce, read_topic, running

pytestmark = pytest.mark.integration

SCHALKWIJK = (52.3590, 4.6560)  # a point in Schalkwijk


def reported(
    description: str,
    *,
    at: datetime | None = None,
    lat: float | None = SCHALKWIJK[0],
    lon: float | None = SCHALKWIJK[1],
    hint: str | None = None,
    flags: Flags | None = None,
    partner_kind: str = "citizen",
    partner: str = "bewonersportaal",
) -> IncidentReported:
    now = datetime.now(UTC)
    return IncidentReported(
        event_id=uuid.uuid4(),
        incident_id=uuid.uuid4(),
        occurred_at=at or now,
        recorded_at=now,
        producer="intake",
        partner=partner,
        partner_kind=partner_kind,
        channel="http",
        external_id=uuid.uuid4().hex,
        description=description,
        category_hint=hint,
        location=locate(lat=lat, lon=lon),
        flags=flags or Flags(),
    )


class Stack:
    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client

    async def send(self, *events: Event, times: int = 1) -> None:
        messages = []
        for event in events:
            encoded = encode(event)
            messages += [(encoded.key, encoded.value, list(encoded.headers))] * times
        topic = events[0].topic.name
        await produce(self.settings, self.settings.topic(topic), messages)

    async def outputs(
        self, incident_ids: set[uuid.UUID], want: int, settle: float = 1.5
    ) -> list[Event]:
        def decoded(records: list[Any]) -> list[Event]:
            return [
                e
                for e in (decode(r.headers, r.value) for r in records)
                if e.producer == "triage" and e.incident_id in incident_ids
            ]

        records = await read_topic(
            self.settings,
            self.settings.topic(INCIDENT_EVENTS.name),
            until=lambda rs: len(decoded(rs)) >= want,
            settle=settle,
        )
        return decoded(records)

    async def token(self, username: str, role: str) -> dict[str, str]:
        conn = await asyncpg.connect(self.settings.database_url.get_secret_value())
        try:
            token = await staff.add_staff(conn, username, role)  # type: ignore[arg-type]
        finally:
            await conn.close()
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with running(SPEC, settings) as (_app, client):
        yield Stack(settings, client)


async def test_a_reported_fire_is_triaged_with_reasons_area_deadlines_and_recipients(
    stack: Stack,
) -> None:
    report = reported(
        "Uitslaande brand in een woning, veel rook, bewoners staan buiten",
        flags=Flags(in_progress=True),
    )
    await stack.send(report, times=2)  # the same event twice: one decision
    (triaged,) = await stack.outputs({report.incident_id}, want=1, settle=3)
    assert triaged.ce_type == "nl.haarlem.veilig.incident.triaged.v1"
    assert triaged.category == "brand"
    assert triaged.priority == "P1"
    assert triaged.needs_review is False
    assert triaged.confidence > 0.5
    assert triaged.buurt_code == report.location.buurt_code
    assert triaged.wijk_code == report.location.wijk_code
    assert {r.code for r in triaged.recipients} >= {"brandweer", "politie.meldkamer"}
    assert triaged.acknowledge_by - report.recorded_at <= timedelta(minutes=2, seconds=1)
    assert any("brand" in reason for reason in triaged.reasons)
    assert len(triaged.top_categories) == 3


async def test_two_reports_of_one_fire_become_one_incident_with_two_reports(stack: Stack) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    first = reported("Brand in flatgebouw, rook uit ramen derde verdieping", at=t0)
    # About 100 m north-east and 5 minutes later.
    second = reported(
        "Ik zie vlammen en zwarte rook bij de flat hier verderop, brandweer al onderweg?",
        at=t0 + timedelta(minutes=5),
        lat=SCHALKWIJK[0] + 0.0006,
        lon=SCHALKWIJK[1] + 0.0009,
    )
    await stack.send(first)
    await stack.outputs({first.incident_id}, want=1, settle=0)
    await stack.send(second)
    events = await stack.outputs({first.incident_id, second.incident_id}, want=2, settle=3)
    kinds = [(type(e).__name__, e.incident_id) for e in events]
    assert kinds == [
        ("IncidentTriaged", first.incident_id),
        ("IncidentMerged", first.incident_id),
    ]
    merged = events[1]
    assert merged.duplicate_incident_id == second.incident_id  # type: ignore[attr-defined]
    assert merged.report_count == 2  # type: ignore[attr-defined]
    # No decision (hence no notifications) of its own for the second report.
    assert not any(e.incident_id == second.incident_id for e in events)


async def test_one_partner_resending_cannot_raise_an_incident_a_second_partner_can(
    stack: Stack,
) -> None:
    text = "Burenoverlast: de buren draaien elke nacht keiharde muziek en schreeuwen"
    t0 = datetime.now(UTC) - timedelta(minutes=20)
    first = reported(text, at=t0, hint="woonoverlast")
    # The same partner three more times under new external ids, then another partner.
    again = [reported(text, at=t0 + timedelta(minutes=n), hint="woonoverlast") for n in (1, 2, 3)]
    other = reported(text, at=t0 + timedelta(minutes=4), hint="woonoverlast", partner="wijkapp")
    await stack.send(first)
    (decision,) = await stack.outputs({first.incident_id}, want=1, settle=0)
    assert isinstance(decision, IncidentTriaged)
    before = decision.priority  # woonoverlast is P4, raised at night
    for report in again:
        await stack.send(report)
    events = await stack.outputs({first.incident_id}, want=4, settle=2)
    assert [type(e).__name__ for e in events] == ["IncidentTriaged"] + ["IncidentMerged"] * 3
    await stack.send(other)
    events = await stack.outputs({first.incident_id}, want=7, settle=2)
    raised = [e for e in events if isinstance(e, IncidentPriorityChanged)]
    assert len(raised) == 1
    assert raised[0].old_priority == before
    assert priority_rank(raised[0].new_priority) == priority_rank(before) - 1
    assert raised[0].reason == "5 reports from 2 partners"


async def test_a_vague_report_waits_for_review_and_staff_can_act_on_it(stack: Stack) -> None:
    vague = reported("hmm raar gedoe hier", lat=None, lon=None)
    await stack.send(vague)
    (decision,) = await stack.outputs({vague.incident_id}, want=1, settle=0)
    assert decision.needs_review is True
    assert decision.recipients == ()

    triager = await stack.token("t.jansen", "triage")
    ops = await stack.token("o.devries", "ops")
    client = stack.client
    queue = await client.get("/v1/queue", params={"view": "needs_review"}, headers=ops)
    assert str(vague.incident_id) in {i["incident_id"] for i in queue.json()}

    path = f"/v1/incidents/{vague.incident_id}"
    assert (await client.get(path)).status_code == 401
    forbidden = await client.post(
        f"{path}/reclassify", json={"category": "jeugdoverlast"}, headers=ops
    )
    assert forbidden.status_code == 403

    done = await client.post(
        f"{path}/reclassify",
        json={"category": "verdachte-situatie", "reason": "navraag: iemand probeert deurklinken"},
        headers=triager,
    )
    assert done.status_code == 200, done.text
    raised = await client.post(
        f"{path}/priority", json={"priority": "P2", "reason": "herhaald"}, headers=triager
    )
    assert raised.status_code == 200, raised.text
    illegal = await client.post(f"{path}/reopen", json={}, headers=triager)
    assert illegal.status_code == 409
    assert "allowed when: resolved" in illegal.json()["detail"]
    resolved = await client.post(
        f"{path}/resolve",
        json={"outcome": "handled", "note": "surveillance gereden"},
        headers=triager,
    )
    assert resolved.status_code == 200
    reopened = await client.post(f"{path}/reopen", json={"reason": "weer gezien"}, headers=triager)
    assert reopened.status_code == 200

    view = (await client.get(path, headers=ops)).json()
    assert view["category"] == "verdachte-situatie"
    assert view["effective_priority"] == "P2"
    assert view["status"] == "reopened"
    kinds = [h["kind"] for h in view["history"]]
    assert kinds == ["triaged", "reclassified", "priority changed", "resolved", "reopened"]
    assert {h["actor"] for h in view["history"][1:]} == {"t.jansen"}

    events = await stack.outputs({vague.incident_id}, want=7, settle=1)
    names = [type(e).__name__ for e in events]
    assert names == [
        "IncidentTriaged",
        "IncidentReclassified",
        "IncidentTriaged",
        "IncidentPriorityChanged",
        "IncidentTriaged",
        "IncidentResolved",
        "IncidentStatusChanged",
    ]
    # Reclassified by a person: routed now, to the wijkagent-less fallback or nobody, but
    # never needing review again.
    assert events[2].needs_review is False or events[2].recipients == ()  # type: ignore[attr-defined]

    conn = await asyncpg.connect(stack.settings.database_url.get_secret_value())
    try:
        audit = await conn.fetch(
            "SELECT actor, action FROM triage.audit WHERE incident_id = $1 ORDER BY id",
            vague.incident_id,
        )
    finally:
        await conn.close()
    assert [(a["actor"], a["action"]) for a in audit] == [
        ("t.jansen", "reclassify"),
        ("t.jansen", "change_priority"),
        ("t.jansen", "resolve"),
        ("t.jansen", "reopen"),
        ("o.devries", "view"),
    ]


async def test_staff_merge_and_unmerge(stack: Stack) -> None:
    a = reported("Jongeren hangen rond bij het winkelcentrum en maken lawaai", lat=None, lon=None)
    b = reported("Groep jongeren bij winkelcentrum, veel herrie en troep", lat=None, lon=None)
    await stack.send(a, b)
    await stack.outputs({a.incident_id, b.incident_id}, want=2, settle=0)
    triager = await stack.token("m.bakker", "admin")
    merged = await stack.client.post(
        f"/v1/incidents/{b.incident_id}/merge", json={"into": str(a.incident_id)}, headers=triager
    )
    assert merged.status_code == 200, merged.text
    again = await stack.client.post(
        f"/v1/incidents/{b.incident_id}/merge", json={"into": str(a.incident_id)}, headers=triager
    )
    assert again.status_code == 409
    first = (await stack.client.get(f"/v1/incidents/{a.incident_id}", headers=triager)).json()
    assert first["report_count"] == 2
    undone = await stack.client.post(
        f"/v1/incidents/{b.incident_id}/unmerge", json={"reason": "twee groepen"}, headers=triager
    )
    assert undone.status_code == 200, undone.text
    first = (await stack.client.get(f"/v1/incidents/{a.incident_id}", headers=triager)).json()
    second = (await stack.client.get(f"/v1/incidents/{b.incident_id}", headers=triager)).json()
    assert first["report_count"] == 1
    assert second["status"] == "reopened" and second["merged_into"] is None


async def test_a_recipient_acknowledgement_moves_the_incident_on_once(stack: Stack) -> None:
    report = reported("Overval op de supermarkt, dader met mes", flags=Flags(weapon=True))
    await stack.send(report)
    (triaged,) = await stack.outputs({report.incident_id}, want=1, settle=0)
    recipient = triaged.recipients[0].code  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    ack = NotificationAcknowledged(
        event_id=uuid.uuid4(),
        incident_id=report.incident_id,
        occurred_at=now,
        recorded_at=now,
        producer="notify",
        message_id=uuid.uuid4(),
        recipient=recipient,
        channel="webhook",
    )
    encoded = encode(ack)
    await produce(
        stack.settings,
        stack.settings.topic(NOTIFICATION_EVENTS.name),
        [(encoded.key, encoded.value, list(encoded.headers))] * 2,
    )
    events = await stack.outputs({report.incident_id}, want=2, settle=2)
    assert [type(e).__name__ for e in events] == ["IncidentTriaged", "IncidentAcknowledged"]
    assert events[1].recipient == recipient  # type: ignore[attr-defined]

    conn = await asyncpg.connect(stack.settings.database_url.get_secret_value())
    try:
        await eventually(
            lambda: conn.fetchval(
                "SELECT status = 'acknowledged' FROM triage.incidents WHERE incident_id = $1",
                report.incident_id,
            )
        )
    finally:
        await conn.close()


async def test_staff_acknowledge_on_behalf_of_a_recipient(stack: Stack) -> None:
    report = reported("Straatroof, vrouw haar tas afgepakt door twee jongens op scooter")
    await stack.send(report)
    (triaged,) = await stack.outputs({report.incident_id}, want=1, settle=0)
    triager = await stack.token("k.smit", "triage")
    path = f"/v1/incidents/{report.incident_id}/acknowledge"
    wrong = await stack.client.post(path, json={"recipient": "brandweer"}, headers=triager)
    assert wrong.status_code == 409 and "one of the incident's recipients" in wrong.json()["detail"]
    done = await stack.client.post(path, json={}, headers=triager)
    assert done.status_code == 200, done.text
    events = await stack.outputs({report.incident_id}, want=2, settle=0)
    ack = events[1]
    assert type(ack).__name__ == "IncidentAcknowledged"
    assert ack.recipient == triaged.recipients[0].code  # type: ignore[attr-defined]
    assert ack.acknowledged_by == "k.smit"  # type: ignore[attr-defined]
