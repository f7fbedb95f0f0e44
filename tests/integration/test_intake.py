"""Intake against the real broker and database: the partner's front door."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from schemas.envelope import decode, encode
from schemas.events import IncidentReportedSealed, IncidentTriaged, Recipient
from schemas.submission import IncidentSubmission
from schemas.topics import INCIDENT_EVENTS, INCIDENT_SUBMISSIONS
from services.common.dlq import load_keys, reason_of
from services.common.period_keys import open_reports
from services.common.settings import Settings
from services.intake import partners
from services.intake.intake import accept
from services.intake.service import SPEC
from tests.support import eventually, header, partner_topics, produce, read_topic, running

pytestmark = pytest.mark.integration

GROTE_MARKT = {"lat": 52.3812, "lon": 4.6366}


def report(external_id: str | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": external_id or f"MK-{uuid.uuid4().hex[:8]}",
        "occurred_at": "2026-11-27T23:30:00+01:00",
        "description": "Vechtpartij voor café op de Grote Markt, twee mannen, één bloedt",
        "category_hint": "hic.geweld",
        "location": GROTE_MARKT,
        "flags": {"in_progress": True, "injuries": True},
        "reporter": {"name": "J. de Vries", "phone": "06-12345678", "email": "jdv@example.org"},
    }
    body.update(changes)
    return body


class Intake:
    def __init__(self, client: httpx.AsyncClient, settings: Settings, keys: dict[str, str]):
        self.client = client
        self.settings = settings
        self.keys = keys

    def auth(self, partner: str = "politie") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[partner]}"}

    async def post(self, body: dict[str, Any], partner: str = "politie") -> httpx.Response:
        return await self.client.post("/v1/incidents", json=body, headers=self.auth(partner))

    async def events_for(self, incident_ids: set[str], settle: float = 1.0) -> list[Any]:
        topic = self.settings.topic(INCIDENT_EVENTS.name)

        def enough(records: list[Any]) -> bool:
            return {header(r, "ce_subject") for r in records} >= incident_ids

        records = await read_topic(self.settings, topic, until=enough, settle=settle)
        return [r for r in records if header(r, "ce_subject") in incident_ids]


async def add_partners(settings: Settings, **rates: int) -> dict[str, str]:
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    try:
        keys = {}
        for code, kind in (("politie", "police"), ("school-mendel", "school"), ("buas", "ov")):
            keys[code] = await partners.add_partner(
                conn, code, name=code, kind=kind, rate_per_minute=rates.get(code, 10_000)
            )
        return keys
    finally:
        await conn.close()


@pytest.fixture
async def intake(settings: Settings) -> AsyncIterator[Intake]:
    async with running(SPEC, settings) as (_app, client):
        keys = await add_partners(settings, buas=3)
        yield Intake(client, settings, keys)


async def test_a_posted_report_is_published_exactly_once_as_a_cloudevent(intake: Intake) -> None:
    response = await intake.post(report("MK-1"))
    assert response.status_code == 202, response.text
    body = response.json()
    incident_id = body["incident_id"]
    assert body["status_url"].endswith(f"/v1/incidents/{incident_id}")

    (record,) = await intake.events_for({incident_id})
    assert record.key == incident_id.encode()
    assert header(record, "ce_type") == "nl.haarlem.veilig.incident.reported.v2"
    assert header(record, "ce_specversion") == "1.0"
    assert header(record, "ce_source") == "/veilig-haarlem/intake"
    assert header(record, "ce_subject") == incident_id
    assert header(record, "content-type") == "application/json"
    event = decode(record.headers, record.value)
    assert isinstance(event, IncidentReportedSealed)
    assert event.partner == "politie" and event.external_id == "MK-1" and event.channel == "http"
    assert event.partner_kind == "police"
    assert event.location.buurt_code == "BU03920102"
    assert event.location.wijk_code == "WK039201"
    assert event.flags.in_progress and event.flags.injuries
    # The personal part travels sealed with the day's key: none of it is in the message.
    for personal in (b"06-12345678", b"jdv@example.org", b"Vechtpartij", b"52.3812"):
        assert personal not in record.value
    conn = await asyncpg.connect(intake.settings.database_url.get_secret_value())
    try:
        (opened,) = await open_reports(conn, [event])
    finally:
        await conn.close()
    assert opened.description == report()["description"]
    assert (opened.location.lat, opened.location.lon) == (52.3812, 4.6366)
    assert opened.reporter_sealed and event.personal_sealed.period == event.recorded_at.date()


async def test_a_retry_returns_the_same_incident_and_a_changed_body_is_a_conflict(
    intake: Intake,
) -> None:
    first = await intake.post(report("MK-2"))
    again = await intake.post(report("MK-2"))
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["incident_id"] == first.json()["incident_id"]

    changed = await intake.post(report("MK-2", description="Toch iets anders"))
    assert changed.status_code == 409
    assert changed.headers["content-type"] == "application/problem+json"
    problem = changed.json()
    assert problem["type"].endswith("/external-id-conflict")
    assert "MK-2" in problem["detail"]

    records = await intake.events_for({first.json()["incident_id"]}, settle=2.0)
    assert len(records) == 1


async def test_only_the_reporting_partner_can_read_a_report(intake: Intake) -> None:
    incident_id = (await intake.post(report())).json()["incident_id"]
    own = await intake.client.get(f"/v1/incidents/{incident_id}", headers=intake.auth())
    assert own.status_code == 200
    assert own.json()["status"] == "received"
    assert [h["status"] for h in own.json()["history"]] == ["received"]

    other = await intake.client.get(
        f"/v1/incidents/{incident_id}", headers=intake.auth("school-mendel")
    )
    unknown = await intake.client.get(f"/v1/incidents/{uuid.uuid4()}", headers=intake.auth())
    assert other.status_code == unknown.status_code == 404
    assert other.json()["title"] == unknown.json()["title"]


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"location": {"lat": 52.38}}, "location", "lat and lon are given together"),
        ({"location": {"lat": 52.38, "lon": 4.63, "address": "x"}}, "location", "exactly one"),
        ({"description": "x" * 4001}, "description", "at most 4000"),
        ({"category_hint": "brandje"}, "category_hint", "unknown category 'brandje'"),
        ({"occurred_at": "2026-11-27T23:30:00"}, "occurred_at", "timezone"),
        ({"flagz": {}}, "flagz", "Extra inputs are not permitted"),
        ({"reporter": {"email": "not-an-address"}}, "reporter.email", "email"),
    ],
)
async def test_invalid_reports_name_the_field_and_the_reason(
    intake: Intake, change: dict[str, Any], field: str, reason: str
) -> None:
    response = await intake.post(report(**change))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert any(e["field"] == field and reason in e["reason"] for e in errors), errors


async def test_authentication_size_and_rate_limits(intake: Intake) -> None:
    missing = await intake.client.post("/v1/incidents", json=report())
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = await intake.client.post(
        "/v1/incidents", json=report(), headers={"Authorization": "Bearer vh_000000000000_x"}
    )
    assert wrong.status_code == 401

    huge = await intake.client.post(
        "/v1/incidents",
        content=b'{"description": "' + b"x" * 2_000_000 + b'"}',
        headers={**intake.auth(), "content-type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["status"] == 413

    statuses = [(await intake.post(report(), partner="buas")).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    limited = await intake.post(report(), partner="buas")
    assert int(limited.headers["retry-after"]) >= 1


async def test_concurrent_single_reports_share_a_transaction(intake: Intake) -> None:
    """Group commit: 40 partners' requests in flight together are committed in fewer
    transactions than reports, each still answered with its own incident."""
    metric, labels = "veilig_group_commit_items_count", {"service": "intake", "what": "reports"}
    before = REGISTRY.get_sample_value(metric, labels) or 0.0
    responses = await asyncio.gather(*(intake.post(report(f"G-{n}")) for n in range(40)))
    assert [r.status_code for r in responses] == [202] * 40
    assert len({r.json()["incident_id"] for r in responses}) == 40
    transactions = (REGISTRY.get_sample_value(metric, labels) or 0.0) - before
    assert 1 <= transactions < 40
    # A retry inside the same group is the same incident, not a second one.
    again = await asyncio.gather(intake.post(report("G-X")), intake.post(report("G-X")))
    assert sorted(r.status_code for r in again) == [200, 202]
    assert again[0].json()["incident_id"] == again[1].json()["incident_id"]


async def test_revoked_keys_stop_working_and_rotation_keeps_both_keys_valid(
    intake: Intake,
) -> None:
    conn = await asyncpg.connect(
        intake.settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    try:
        second = await partners.issue_key(conn, "politie")
        ok_old = await intake.post(report())
        ok_new = await intake.client.post(
            "/v1/incidents", json=report(), headers={"Authorization": f"Bearer {second}"}
        )
        assert ok_old.status_code == ok_new.status_code == 202
        old_id = intake.keys["politie"].split("_")[1]
        await partners.revoke_key(conn, old_id)
        stored = await conn.fetch("SELECT secret_hash FROM api_keys")
    finally:
        await conn.close()

    # The cache is emptied when the trigger's NOTIFY reaches this process: milliseconds after
    # the commit, and on a loaded machine possibly just after the next request.
    async def refused() -> bool:
        return (await intake.post(report())).status_code == 401

    await eventually(refused, within=5, every=0.02)
    assert all(intake.keys["politie"].encode() not in bytes(r["secret_hash"]) for r in stored)


async def test_two_tries_of_one_batch_in_other_orders_never_deadlock(intake: Intake) -> None:
    """A partner retries a batch, its reports in another order, while the first try still
    runs (on another replica, say). Two transactions inserting the same receipts in opposite
    orders each wait for the other: PostgreSQL ends one as a deadlock after a second. Inserted
    in one order, the later one only waits, and finds every report a duplicate. Both tries are
    held up at the same receipt by a third transaction, so that they meet midway."""
    url = intake.settings.database_url.get_secret_value()
    conns = [
        await asyncpg.connect(url, server_settings={"search_path": "intake"}) for _ in range(3)
    ]
    tries, blocker = conns[:2], conns[2]
    reports = [IncidentSubmission.model_validate(report(f"DL-{n:03}")) for n in range(200)]
    # The day's key made beforehand: a try making it would hold up the other from the start.
    assert (await intake.post(report())).status_code == 202

    async def accepted(conn: asyncpg.Connection, batch: list[IncidentSubmission]) -> int:
        politie = await partners.authenticate(conn, intake.keys["politie"])
        assert politie is not None
        async with conn.transaction():
            outcomes = await accept(conn, intake.settings, politie, batch, "http")
        return sum(o.result == "accepted" for o in outcomes)

    async def both_waiting() -> bool:
        pids = [c.get_server_pid() for c in tries]
        waiting = await blocker.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE pid = ANY($1::int[]) AND wait_event_type = 'Lock'",
            pids,
        )
        return bool(waiting == len(pids))

    try:
        held = blocker.transaction()
        await held.start()
        await blocker.execute(
            "INSERT INTO receipts (incident_id, partner, external_id, body_hash, channel) "
            "VALUES ($1, 'politie', 'DL-100', '-', 'http')",
            uuid.uuid4(),
        )
        running = asyncio.gather(
            accepted(tries[0], reports), accepted(tries[1], reports[::-1]), return_exceptions=True
        )
        await eventually(both_waiting, within=10, every=0.05)
        await held.rollback()
        outcomes = await running
    finally:
        for conn in conns:
            await conn.close()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert not errors, errors
    assert sorted(outcomes) == [0, len(reports)]  # type: ignore[type-var]


async def test_a_batch_judges_every_report_on_its_own(intake: Intake) -> None:
    earlier = (await intake.post(report("B-0"))).json()["incident_id"]
    batch = [
        report("B-1"),
        report("B-2", location={"lat": 52.38}),
        report("B-0"),
        report("B-3"),
        report("B-3"),
    ]
    response = await intake.client.post(
        "/v1/incidents:batch", json={"reports": batch}, headers=intake.auth()
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert [r["result"] for r in result["results"]] == [
        "accepted",
        "invalid",
        "duplicate",
        "accepted",
        "duplicate",
    ]
    assert result["results"][1]["errors"][0]["field"] == "reports.1.location"
    assert result["results"][2]["incident_id"] == earlier
    assert (result["accepted"], result["invalid"], result["duplicate"]) == (2, 1, 2)
    # A key and a first public status for each new report, none for a repeated one.
    ids = [earlier, *(result["results"][i]["incident_id"] for i in (0, 3))]
    conn = await asyncpg.connect(intake.settings.database_url.get_secret_value())
    try:
        stored = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM ops.report_keys WHERE incident_id = ANY($1::uuid[])), "
            "(SELECT count(*) FROM intake.public_history WHERE incident_id = ANY($1::uuid[])), "
            "(SELECT count(*) FROM ops.report_keys AS k WHERE NOT EXISTS "
            "(SELECT FROM intake.receipts AS r WHERE r.incident_id = k.incident_id))",
            ids,
        )
    finally:
        await conn.close()
    assert tuple(stored) == (3, 3, 0)

    too_many = await intake.client.post(
        "/v1/incidents:batch", json={"reports": [report()] * 501}, headers=intake.auth()
    )
    assert too_many.status_code == 422


async def test_kafka_submissions_valid_ones_are_accepted_invalid_ones_dead_lettered(
    intake: Intake,
) -> None:
    settings = intake.settings
    police, unknown = await partner_topics(settings, "politie", "onbekend")
    http_first = await intake.post(report("K-3"))
    valid = report("K-2")
    await produce(
        settings,
        police,
        [
            (b"K-0", b"{not json", []),
            (b"K-1", json.dumps(report("K-1", location={"lat": 1})).encode(), []),
            (b"K-2", json.dumps(valid).encode(), []),
            (b"K-3", json.dumps(report("K-3")).encode(), []),  # same as the HTTP one
        ],
    )
    # A topic of the family whose partner the platform does not know.
    await produce(settings, unknown, [(b"K-9", json.dumps(report("K-9")).encode(), [])])
    dlq = await read_topic(
        settings,
        settings.topic(INCIDENT_SUBMISSIONS.dlq),
        until=lambda records: len(records) >= 3,
    )
    await load_keys(settings, dlq)  # the day's key, to open the sealed reasons
    reasons = {r.key: (header(r, "x-dlq-kind"), reason_of(r.headers)) for r in dlq}
    assert reasons[b"K-0"][0] == "invalid-json"
    assert reasons[b"K-1"][0] == "invalid-report"
    assert "location" in (reasons[b"K-1"][1] or "")
    assert reasons[b"K-9"] == ("unknown-partner", "unknown partner 'onbekend'")
    assert {header(r, "x-dlq-source-topic") for r in dlq} == {police, unknown}

    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    try:
        await eventually(
            lambda: conn.fetchval("SELECT count(*) FROM receipts WHERE external_id = 'K-2'")
        )
        rows = await conn.fetch(
            "SELECT external_id, incident_id::text, channel FROM receipts "
            "WHERE external_id IN ('K-2', 'K-3')"
        )
    finally:
        await conn.close()
    by_id = {r["external_id"]: r for r in rows}
    assert by_id["K-2"]["channel"] == "kafka"
    # Idempotent across paths: the Kafka copy of the HTTP report made no second incident.
    assert by_id["K-3"]["incident_id"] == http_first.json()["incident_id"]
    records = await intake.events_for(
        {by_id["K-2"]["incident_id"], by_id["K-3"]["incident_id"]}, settle=2.0
    )
    assert sorted(json.loads(r.value)["external_id"] for r in records) == ["K-2", "K-3"]


async def test_a_record_of_100000_nested_brackets_is_dead_lettered_and_intake_goes_on(
    intake: Intake,
) -> None:
    settings = intake.settings
    (police,) = await partner_topics(settings, "politie")
    await produce(
        settings,
        police,
        [
            (b"DEEP-1", b"[" * 100_000, []),
            (b"DEEP-2", json.dumps(report("DEEP-2")).encode(), []),
        ],
    )
    dlq = await read_topic(
        settings, settings.topic(INCIDENT_SUBMISSIONS.dlq), until=lambda records: len(records) >= 1
    )
    assert [r.key for r in dlq] == [b"DEEP-1"]
    assert header(dlq[0], "x-dlq-kind") == "invalid-json"
    await load_keys(settings, dlq)
    assert "nested too deeply" in (reason_of(dlq[0].headers) or "")
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    try:
        # The next submission is accepted: the poison held nothing up.
        await eventually(
            lambda: conn.fetchval("SELECT count(*) FROM receipts WHERE external_id = 'DEEP-2'")
        )
    finally:
        await conn.close()


async def test_open311_services_requests_and_status(intake: Intake) -> None:
    services = (await intake.client.get("/open311/v2/services.json")).json()
    codes = {s["service_code"] for s in services}
    assert {"brand", "hic.woninginbraak", "overig"} <= codes

    created = await intake.client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": intake.keys["school-mendel"],
            "service_code": "vandalisme",
            "lat": "52.3812",
            "long": "4.6366",
            "description": "Graffiti op de muur van de school",
        },
    )
    assert created.status_code == 200, created.text
    (item,) = created.json()
    request_id = item["service_request_id"]

    status = await intake.client.get(
        f"/open311/v2/requests/{request_id}.json",
        params={"api_key": intake.keys["school-mendel"]},
    )
    assert status.status_code == 200
    assert status.json()[0]["status"] == "open"

    bad = await intake.client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": intake.keys["school-mendel"],
            "service_code": "nope",
            "description": "x",
            "address_string": "Zijlweg 1",
        },
    )
    assert bad.status_code == 404
    assert bad.json() == [{"code": 404, "description": "service_code 'nope' not found"}]
    no_key = await intake.client.post(
        "/open311/v2/requests.json", data={"service_code": "vandalisme", "description": "x"}
    )
    assert no_key.status_code == 403 and no_key.json()[0]["code"] == 403
    foreign = await intake.client.get(
        f"/open311/v2/requests/{request_id}.json", params={"api_key": intake.keys["politie"]}
    )
    assert foreign.status_code == 404


async def test_what_triage_decides_shows_in_the_public_history(intake: Intake) -> None:
    incident_id = (await intake.post(report())).json()["incident_id"]
    now = datetime.now(UTC)
    triaged = IncidentTriaged(
        event_id=uuid.uuid4(),
        incident_id=uuid.UUID(incident_id),
        occurred_at=now,
        recorded_at=now,
        producer="triage",
        category="hic.geweld",
        priority="P1",
        confidence=0.93,
        needs_review=False,
        acknowledge_by=now + timedelta(minutes=2),
        handle_by=now + timedelta(hours=1),
        recipients=(Recipient(code="politie.meldkamer", profile="full"),),
        report_count=1,
    )
    message = encode(triaged)
    for _ in range(2):  # delivered twice: recorded once
        await produce(
            intake.settings,
            intake.settings.topic(INCIDENT_EVENTS.name),
            [(message.key, message.value, list(message.headers))],
        )

    async def triaged_visible() -> bool:
        got = await intake.client.get(f"/v1/incidents/{incident_id}", headers=intake.auth())
        return got.json()["status"] == "triaged"

    await eventually(triaged_visible)
    history = (
        await intake.client.get(f"/v1/incidents/{incident_id}", headers=intake.auth())
    ).json()
    assert [h["status"] for h in history["history"]] == ["received", "triaged"]
