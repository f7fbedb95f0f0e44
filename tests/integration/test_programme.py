"""What the safety programme asks (issue #17), as stories against the real broker and database.

- An unacknowledged P1 pages the wijkagent, then the control room, then the duty officer.
- A youth nuisance report near a school on a Tuesday morning tells the wijk's school safety
  coordinators coarsely; on a Sunday it does not.
- A reporting partner follows its own reports (partner API and Open311) and withdraws one:
  the incident is cancelled through triage's workflow and every recipient gets a cancel.

Intake, triage and notify run in this process (their own consumer groups, schemas and relays,
as in production); recipients' webhooks point at a local receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID
from xml.etree import ElementTree as ET

import asyncpg
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from typer.testing import CliRunner

from schemas.envelope import decode
from schemas.events import (
    Event,
    IncidentStatusChanged,
    IncidentTriaged,
    IncidentWithdrawalRequested,
    NotificationEscalated,
)
from schemas.taxonomy import Profile
from schemas.timeutil import AMSTERDAM, is_public_holiday
from schemas.topics import INCIDENT_EVENTS
from services.common.settings import Settings, get_settings
from services.common.staff import add_staff
from services.intake import partners
from services.intake.service import SPEC as INTAKE
from services.notify.cap import CAP_MEDIA_TYPE, validate_cap
from services.notify.cli import recipients_app
from services.notify.service import make_spec
from services.notify.webhooks import generate_secret
from services.triage.service import SPEC as TRIAGE
from tests.integration.test_notify import (
    Receiver,
    database,
    notifications,
    notify_config,
    of,
    story,
    verified,
    webhook,
)
from tests.support import eventually, header, read_topic, running
from tools.ports import free_port

pytestmark = pytest.mark.integration

GROTE_MARKT = {"lat": 52.3812, "lon": 4.6366}  # Oude Stad, BU03920102
OUDE_STAD = "WK039201"
SCHALKWIJK = {"lat": 52.3590, "lon": 4.6560}
REPORTER = {"name": "Meester Jansen", "phone": "06-11223344", "email": "jansen@school.example"}
YOUTH = "Groep jongeren bij het schoolplein gooit met flessen en scheldt leerlingen uit"


# --- the stage ----------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """Recipients' webhook endpoints (``/hooks/<code>``), answering 204."""
    found = Receiver()
    app = Starlette(routes=[Route("/hooks/{name}", found.hook, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_config=None, log_level="warning"
        )
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, within=10)
    found.base = f"http://127.0.0.1:{port}"
    yield found
    server.should_exit = True
    await task


@dataclass
class Programme:
    settings: Settings
    intake: httpx.AsyncClient
    triage: httpx.AsyncClient | None
    keys: dict[str, str]
    staff_auth: dict[str, str] | None = None

    def auth(self, partner: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[partner]}"}

    async def report(self, partner: str, **body: Any) -> UUID:
        body.setdefault("external_id", f"{partner}-{uuid.uuid4().hex[:8]}")
        response = await self.intake.post("/v1/incidents", json=body, headers=self.auth(partner))
        assert response.status_code == 202, response.text
        return UUID(response.json()["incident_id"])

    async def status(self, partner: str, incident_id: UUID) -> dict[str, Any]:
        response = await self.intake.get(f"/v1/incidents/{incident_id}", headers=self.auth(partner))
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def until_status(self, partner: str, incident_id: UUID, *wanted: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            seen.update(await self.status(partner, incident_id))
            return seen["status"] in wanted

        await eventually(reached, within=45)
        return seen

    async def staff(self) -> dict[str, str]:
        """A triage staff member's credentials (made on first use)."""
        if self.staff_auth is None:
            conn = await asyncpg.connect(self.settings.database_url.get_secret_value())
            try:
                token = await add_staff(conn, "t.devries", "triage")
            finally:
                await conn.close()
            self.staff_auth = {"Authorization": f"Bearer {token}"}
        return self.staff_auth

    async def resolve(self, incident_id: UUID, outcome: str = "handled") -> None:
        assert self.triage is not None
        path = f"/v1/incidents/{incident_id}/resolve"
        done = await self.triage.post(path, json={"outcome": outcome}, headers=await self.staff())
        assert done.status_code == 200, done.text


async def add_partners(settings: Settings) -> dict[str, str]:
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    try:
        return {
            code: await partners.add_partner(conn, code, name=code, kind=kind)
            for code, kind in (
                ("politie", "police"),
                ("mendel-college", "school"),
                ("wijkapp", "open311"),
            )
        }
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def programme(
    settings: Settings, *, notify: bool = True
) -> AsyncIterator[tuple[Programme, Any]]:
    """Intake and triage (and notify) running against the same broker and database."""
    notify_spec = make_spec(notify_config(free_port()))
    async with contextlib.AsyncExitStack() as stack:
        _, intake = await stack.enter_async_context(running(INTAKE, settings))
        _, triage = await stack.enter_async_context(running(TRIAGE, settings))
        notifier = None
        if notify:
            notifier = await stack.enter_async_context(running(notify_spec, settings))
        keys = await add_partners(settings)
        yield Programme(settings, intake, triage, keys), notifier


async def incident_events(
    settings: Settings, incident_id: UUID, until: type[Event], settle: float = 0.0
) -> list[Event]:
    def ours(records: list[Any]) -> list[Event]:
        return [
            decode(r.headers, r.value)
            for r in records
            if header(r, "ce_subject") == str(incident_id)
        ]

    records = await read_topic(
        settings,
        settings.topic(INCIDENT_EVENTS.name),
        until=lambda rs: any(isinstance(e, until) for e in ours(rs)),
        within=45,
        settle=settle,
    )
    return ours(records)


def last(weekday: int, at: time) -> datetime:
    """The most recent past ``weekday`` (0 Monday) at local ``at`` that is no public holiday."""
    day = datetime.now(AMSTERDAM).date() - timedelta(days=1)
    while day.weekday() != weekday or is_public_holiday(day):
        day -= timedelta(days=1)
    return datetime.combine(day, at, tzinfo=AMSTERDAM)


def cap_parameter(body: bytes, name: str) -> str | None:
    ns = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
    for parameter in ET.fromstring(body).iterfind(".//cap:info/cap:parameter", ns):  # noqa: S314
        if parameter.findtext("cap:valueName", namespaces=ns) == name:
            return parameter.findtext("cap:value", namespaces=ns)
    return None


# --- 1. escalation to the duty officer ----------------------------------------------------


async def test_an_unacknowledged_p1_pages_the_wijkagent_then_the_meldkamer_then_the_ovd(
    settings: Settings, receiver: Receiver
) -> None:
    # P1's 2 minutes become 6 seconds: each page a window after the one before.
    config = notify_config(free_port(), escalation_time_scale=0.05)
    wijkagent = f"politie.wijkagent.{OUDE_STAD}"
    async with running(make_spec(config), settings) as (_app, client):
        keys = {code: generate_secret() for code in (wijkagent, "politie.meldkamer")}
        for code, key in keys.items():
            await webhook(settings, receiver, code, [key], fmt="json")
        ovd_key = generate_secret()
        await webhook(settings, receiver, "politie.ovd", [ovd_key], fmt="cap")
        incident = story(settings)
        await incident.publish(incident.reported)
        await incident.publish(
            incident.triaged("hic.woninginbraak", "P1", {wijkagent: Profile.FULL})
        )

        (alert,) = await receiver.wait(wijkagent)
        (control_room,) = await receiver.wait("politie.meldkamer", within=30)
        (ovd,) = await receiver.wait("politie.ovd", within=30)

        # In that order, a window apart: nobody acknowledged.
        assert alert.at < control_room.at < ovd.at
        assert control_room.json["kind"] == "alert"
        assert "Escalatie" in control_room.json["update_reason"]
        verified(control_room, keys["politie.meldkamer"])
        # The duty officer: a full-profile CAP alert, signed, asking to acknowledge.
        assert ovd.headers["content-type"] == CAP_MEDIA_TYPE
        validate_cap(ovd.body)
        verified(ovd, ovd_key)
        assert b"<msgType>Alert</msgType>" in ovd.body
        assert incident.reported.description.encode() in ovd.body
        ack_url = cap_parameter(ovd.body, "ack_url")
        assert ack_url is not None

        # The OVD takes it on: the paging stops.
        token = ack_url.rpartition("/")[2]
        acked = await client.post(f"/v1/acknowledgements/{token}", json={"acknowledged_by": "OvD"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["recipient"] == "politie.ovd"
        events = await notifications(
            settings, lambda es: len(of(es, NotificationEscalated)) >= 2, settle=8.0
        )
    escalated = of(events, NotificationEscalated)
    assert [(e.recipient, e.level, e.escalated_to) for e in escalated] == [
        (wijkagent, 1, ("politie.meldkamer",)),
        (wijkagent, 2, ("politie.ovd",)),
    ]
    assert len(receiver.of("politie.ovd")) == 1  # no third page after the acknowledgement
    async with database(settings) as conn:
        stopped = await conn.fetchval(
            "SELECT stop_reason FROM escalations WHERE incident_id = $1 AND recipient = $2",
            incident.incident_id,
            wijkagent,
        )
    assert stopped == "acknowledged"


def test_recipients_list_shows_the_chains_ending_at_the_duty_officer(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url.get_secret_value())
    get_settings.cache_clear()
    try:
        listed = CliRunner().invoke(recipients_app, ["list", "--json"])
        table = CliRunner().invoke(recipients_app, ["list"])
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.output
    rows = {row["code"]: row for row in json.loads(listed.stdout)}
    assert rows["politie.wijkagent.{wijk}"]["escalation"] == ["politie.meldkamer", "politie.ovd"]
    assert rows["politie.meldkamer"]["escalation"] == ["politie.ovd"]
    assert rows["brandweer"]["escalation"] == ["politie.meldkamer", "politie.ovd"]
    assert (rows["politie.ovd"]["profile"], rows["politie.ovd"]["format"]) == ("full", "cap")
    assert rows["politie.ovd"]["escalation"] == []  # paged again: nobody above
    assert (rows["scholen.{wijk}"]["profile"], rows["scholen.{wijk}"]["acknowledges"]) == (
        "coarse",
        False,
    )
    assert table.exit_code == 0 and "politie.ovd" in table.output


# --- 2. schools hear of youth nuisance in their wijk, in school hours -----------------------


async def test_youth_nuisance_on_a_tuesday_morning_informs_the_wijks_schools_coarsely(
    settings: Settings, receiver: Receiver
) -> None:
    tuesday, sunday = last(1, time(10, 0)), last(6, time(10, 0))
    async with programme(settings) as (stage, _):
        for code, fmt in (("scholen.{wijk}", "json"), ("politie.wijkagent.{wijk}", "cap")):
            await webhook(settings, receiver, code, [generate_secret()], fmt=fmt)
        on_tuesday = await stage.report(
            "mendel-college",
            description=YOUTH,
            category_hint="jeugdoverlast",
            occurred_at=tuesday.isoformat(),
            location=GROTE_MARKT,
            reporter=REPORTER,
        )
        on_sunday = await stage.report(
            "mendel-college",
            description=YOUTH,
            category_hint="jeugdoverlast",
            occurred_at=sunday.isoformat(),
            location=SCHALKWIJK,
            reporter=REPORTER,
        )
        (notice,) = await receiver.wait("scholen.wijk", within=60)
        await receiver.wait("politie.wijkagent.wijk", 2, within=60)  # both reached the police
        await asyncio.sleep(2.0)  # time for a notice that must not come
        tuesday_triaged = [
            e
            for e in await incident_events(settings, on_tuesday, IncidentTriaged)
            if isinstance(e, IncidentTriaged)
        ]
        sunday_triaged = [
            e
            for e in await incident_events(settings, on_sunday, IncidentTriaged)
            if isinstance(e, IncidentTriaged)
        ]

    # Tuesday 10:00 is school hours: the school coordinators of Oude Stad, coarse.
    (decision,) = tuesday_triaged
    assert (f"scholen.{OUDE_STAD}", Profile.COARSE) in [
        (r.code, r.profile) for r in decision.recipients
    ]
    assert any("route scholen-jeugd" in reason for reason in decision.reasons)
    payload = notice.json
    assert payload["incident_id"] == str(on_tuesday)
    assert (payload["kind"], payload["profile"]) == ("alert", "coarse")
    assert payload["category"]["code"] == "jeugdoverlast"
    assert payload["area"]["wijk_code"] == OUDE_STAD
    # No reporter, no free text, no exact place, nothing to acknowledge.
    for secret in (YOUTH, "schoolplein", *REPORTER.values(), str(GROTE_MARKT["lat"]), "gAAAA"):
        assert secret not in notice.body.decode(), secret
    assert "description" not in payload["report"] and "reporter" not in payload["report"]
    assert "lat" not in payload["report"]["location"]
    assert "ack_url" not in payload
    # Sunday 10:00 is not: the schools are not told (the police are).
    (quiet,) = sunday_triaged
    assert not [r for r in quiet.recipients if r.code.startswith("scholen.")]
    assert len(receiver.of("scholen.wijk")) == 1


# --- 3. feedback to the reporting partner --------------------------------------------------


async def test_a_partner_follows_its_own_reports_and_sees_only_public_status_and_notes(
    settings: Settings,
) -> None:
    async with programme(settings, notify=False) as (stage, _):
        ids = [
            await stage.report(
                "politie",
                external_id=f"P-{n}",
                description=f"Graffiti gespoten op de gevel van het buurthuis, tag nummer {n}",
                category_hint="vandalisme",
                location={"buurt_code": "BU03920102"},
            )
            for n in range(5)
        ]
        foreign = await stage.report(
            "mendel-college",
            description="Fietsen vernield in de stalling van de school",
            category_hint="vandalisme",
            location=SCHALKWIJK,
        )
        for incident_id in ids:
            await stage.until_status("politie", incident_id, "triaged", "needs_review")

        # Page by page, two at a time: all five own reports once, never the school's.
        seen: list[dict[str, Any]] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = await stage.intake.get(
                "/v1/incidents", params=params, headers=stage.auth("politie")
            )
            assert page.status_code == 200, page.text
            seen += page.json()["items"]
            pages += 1
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert sorted(UUID(i["incident_id"]) for i in seen) == sorted(ids)  # not `foreign`
        assert {tuple(sorted(i)) for i in seen} == {
            (
                "external_id",
                "incident_id",
                "note",
                "received_at",
                "status",
                "status_url",
                "updated_at",
            )
        }
        assert [i["updated_at"] for i in seen] == sorted(i["updated_at"] for i in seen)

        # Resolved by staff: the report comes back in the feed since the last change seen,
        # with its public note and nothing internal.
        await stage.resolve(ids[0], "handled")
        await stage.until_status("politie", ids[0], "resolved")
        newer = await stage.intake.get(
            "/v1/incidents", params={"since": seen[-1]["updated_at"]}, headers=stage.auth("politie")
        )
        changed = {UUID(i["incident_id"]): i for i in newer.json()["items"]}
        assert changed[ids[0]]["status"] == "resolved"
        assert changed[ids[0]]["note"] == "handled"
        only_resolved = await stage.intake.get(
            "/v1/incidents", params={"status": "resolved"}, headers=stage.auth("politie")
        )
        assert [UUID(i["incident_id"]) for i in only_resolved.json()["items"]] == [ids[0]]
        school = await stage.intake.get("/v1/incidents", headers=stage.auth("mendel-college"))
        assert [UUID(i["incident_id"]) for i in school.json()["items"]] == [foreign]

        # Every parameter is bounded, and a bad one is a 422 naming it.
        for params, field in (
            ({"limit": 0}, "limit"),
            ({"limit": 201}, "limit"),
            ({"status": "gesloten"}, "status"),
            ({"since": "2026-11-24T10:00:00"}, "since"),
            ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
            ({"cursor": "not a cursor!"}, "cursor"),
            ({"cursor": "x" * 201}, "cursor"),
        ):
            bad = await stage.intake.get(
                "/v1/incidents", params=params, headers=stage.auth("politie")
            )
            assert bad.status_code == 422, (params, bad.text)
            assert bad.headers["content-type"] == "application/problem+json"
            assert [e["field"] for e in bad.json()["errors"]] == [field], bad.json()
        assert (await stage.intake.get("/v1/incidents")).status_code == 401
        # A lower bound before 2000 means from the beginning, one in the future finds nothing.
        for since, found in (("0001-01-01T00:00:00+01:00", 1), ("9999-12-31T23:00:00-05:00", 0)):
            page = await stage.intake.get(
                "/v1/incidents", params={"since": since}, headers=stage.auth("mendel-college")
            )
            assert page.status_code == 200, page.text
            assert len(page.json()["items"]) == found, (since, page.json())

        # Open311: a civic app lists its own requests, GeoReport v2 style.
        key = stage.keys["wijkapp"]
        created = await stage.intake.post(
            "/open311/v2/requests.json",
            data={
                "api_key": key,
                "service_code": "vandalisme",
                "lat": "52.3700",
                "long": "4.6400",
                "description": "Bushokje ingegooid, overal glas",
            },
        )
        assert created.status_code == 200, created.text
        request_id = UUID(created.json()[0]["service_request_id"])
        await stage.until_status("wijkapp", request_id, "triaged", "needs_review")
        listed = await stage.intake.get("/open311/v2/requests.json", params={"api_key": key})
        assert listed.status_code == 200, listed.text
        (item,) = listed.json()
        assert (item["service_request_id"], item["status"]) == (str(request_id), "open")
        assert item["service_code"] == "vandalisme" and item["agency_responsible"] is None
        assert item["requested_datetime"] and item["updated_datetime"]
        await stage.resolve(request_id, "referred")
        await stage.until_status("wijkapp", request_id, "resolved")

        async def listing(**params: str) -> httpx.Response:
            return await stage.intake.get(
                "/open311/v2/requests.json", params={"api_key": key, **params}
            )

        (closed,) = (await listing(status="closed")).json()
        assert (closed["status"], closed["status_notes"]) == ("closed", "referred")
        assert (await listing(status="open")).json() == []
        today = datetime.now(UTC)
        assert len((await listing(start_date=(today - timedelta(hours=1)).isoformat())).json()) == 1
        assert (await listing(end_date=(today - timedelta(hours=1)).isoformat())).json() == []
        for params, words in (
            ({"start_date": "gisteren"}, "start_date"),
            ({"start_date": "2026-01-01T00:00:00"}, "time zone"),
            ({"start_date": "2025-01-01T00:00:00Z", "end_date": "2025-06-01T00:00:00Z"}, "90"),
            ({"status": "pending"}, "status"),
        ):
            bad = await listing(**params)
            assert bad.status_code == 400, (params, bad.text)
            assert words in bad.json()[0]["description"]
        # Only that api_key's partner's requests; a police key sees none of the app's.
        police = await stage.intake.get(
            "/open311/v2/requests.json", params={"api_key": stage.keys["politie"]}
        )
        assert str(request_id) not in {r["service_request_id"] for r in police.json()}
        assert (await stage.intake.get("/open311/v2/requests.json")).status_code == 403


async def test_a_partner_withdraws_a_report_and_every_recipient_is_told_it_is_cancelled(
    settings: Settings, receiver: Receiver
) -> None:
    wijkagent, buurtpreventie = "politie.wijkagent.{wijk}", "buurtpreventie.{buurt}"
    async with programme(settings) as (stage, _):
        police_key, coordinators_key = generate_secret(), generate_secret()
        await webhook(settings, receiver, wijkagent, [police_key], fmt="cap")
        await webhook(settings, receiver, buurtpreventie, [coordinators_key], fmt="json")
        incident_id = await stage.report(
            "politie",
            description="Woninginbraak gemeld, achterdeur opengebroken, bewoners op vakantie",
            category_hint="hic.woninginbraak",
            location=GROTE_MARKT,
        )
        (alert,) = await receiver.wait("politie.wijkagent.wijk", within=60)
        (coarse,) = await receiver.wait("buurtpreventie.buurt", within=30)
        assert b"<msgType>Alert</msgType>" in alert.body
        assert coarse.json["kind"] == "alert"

        path = f"/v1/incidents/{incident_id}:withdraw"
        first = await stage.intake.post(
            path,
            json={"reason": "Bewoner was zelf de sleutel kwijt"},
            headers=stage.auth("politie"),
        )
        assert first.status_code == 202, first.text
        again = await stage.intake.post(
            path, json={"reason": "nogmaals"}, headers=stage.auth("politie")
        )
        assert again.status_code == 200 and again.json() == first.json()  # the same state
        assert first.json()["reason"] == "Bewoner was zelf de sleutel kwijt"

        # Triage cancels it; notify cancels what it sent: a CAP Cancel referencing the alert.
        _, cancel = await receiver.wait("politie.wijkagent.wijk", 2, within=45)
        _, coarse_cancel = await receiver.wait("buurtpreventie.buurt", 2, within=30)
        validate_cap(cancel.body)
        verified(cancel, police_key)
        assert b"<msgType>Cancel</msgType>" in cancel.body
        identifier = ET.fromstring(alert.body).findtext(  # noqa: S314
            "{urn:oasis:names:tc:emergency:cap:1.2}identifier"
        )
        assert f"veilig@haarlem.nl,{identifier},".encode() in cancel.body
        assert b"Bewoner was zelf de sleutel kwijt" in cancel.body  # full profile: the reason
        verified(coarse_cancel, coordinators_key)
        assert coarse_cancel.json["kind"] == "cancel"
        assert "update_reason" not in coarse_cancel.json  # coarse: never free text

        status = await stage.until_status("politie", incident_id, "cancelled")
        assert [h["status"] for h in status["history"]] == ["received", "triaged", "cancelled"]
        assert status["history"][-1]["note"] == "ingetrokken door de melder"
        events = await incident_events(settings, incident_id, IncidentStatusChanged)
        (requested,) = [e for e in events if isinstance(e, IncidentWithdrawalRequested)]
        assert (requested.producer, requested.partner) == ("intake", "politie")
        (cancelled,) = [e for e in events if isinstance(e, IncidentStatusChanged)]
        assert (cancelled.producer, cancelled.new_status) == ("triage", "cancelled")
        assert cancelled.actor == "partner:politie"
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            history = await conn.fetch(
                "SELECT kind, actor, detail FROM triage.history WHERE incident_id = $1 ORDER BY id",
                incident_id,
            )
            timers = await conn.fetch(
                "SELECT stop_reason FROM notify.escalations WHERE incident_id = $1", incident_id
            )
        finally:
            await conn.close()
        assert [(h["kind"], h["actor"]) for h in history] == [
            ("triaged", None),
            ("withdrawn", "partner:politie"),
        ]
        assert json.loads(history[1]["detail"])["reason"] == "Bewoner was zelf de sleutel kwijt"
        assert {t["stop_reason"] for t in timers} == {"closed"}  # nobody is paged any more
        # Still withdrawn, still the same answer.
        settled = await stage.intake.post(path, json={"reason": "x"}, headers=stage.auth("politie"))
        assert settled.status_code == 200 and settled.json() == first.json()

        # A resolved report cannot be withdrawn; someone else's report does not exist.
        handled = await stage.report(
            "politie",
            description="Graffiti op de gevel van het stadhuis",
            category_hint="vandalisme",
            location=GROTE_MARKT,
        )
        await stage.until_status("politie", handled, "triaged", "needs_review")
        await stage.resolve(handled)
        await stage.until_status("politie", handled, "resolved")
        late = await stage.intake.post(
            f"/v1/incidents/{handled}:withdraw",
            json={"reason": "toch niet"},
            headers=stage.auth("politie"),
        )
        assert late.status_code == 409, late.text
        assert late.headers["content-type"] == "application/problem+json"
        assert late.json()["type"].endswith("/not-withdrawable")
        assert "resolved" in late.json()["detail"]
        foreign = await stage.intake.post(
            path, json={"reason": "niet van ons"}, headers=stage.auth("mendel-college")
        )
        assert foreign.status_code == 404
        empty = await stage.intake.post(path, json={"reason": "  "}, headers=stage.auth("politie"))
        assert empty.status_code == 422
        assert empty.json()["errors"][0]["field"] == "reason"

        # Another partner reported the same graffiti: withdrawing the first report must not
        # make the second vanish. Triage keeps the incident open and says why.
        graffiti = {
            "description": "Grote graffiti op de muur van het winkelcentrum",
            "category_hint": "vandalisme",
            "location": SCHALKWIJK,
        }
        first_report = await stage.report("mendel-college", **graffiti)
        await stage.until_status("mendel-college", first_report, "triaged", "needs_review")
        second_report = await stage.report("wijkapp", **graffiti)
        await stage.until_status("wijkapp", second_report, "merged")
        mine = await stage.intake.post(
            f"/v1/incidents/{first_report}:withdraw",
            json={"reason": "dubbel"},
            headers=stage.auth("mendel-college"),
        )
        assert mine.status_code == 202, mine.text
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        try:

            async def refused() -> str | None:
                return await conn.fetchval(
                    "SELECT detail->>'why' FROM triage.history WHERE incident_id = $1 "
                    "AND kind = 'withdrawal refused'",
                    first_report,
                )

            await eventually(refused, within=30)
            assert await refused() == "other partners reported this incident too"
        finally:
            await conn.close()
        assert (await stage.status("mendel-college", first_report))["status"] != "cancelled"
        merged_away = await stage.intake.post(
            f"/v1/incidents/{second_report}:withdraw",
            json={"reason": "dubbel"},
            headers=stage.auth("wijkapp"),
        )
        assert merged_away.status_code == 409 and "merged" in merged_away.json()["detail"]
