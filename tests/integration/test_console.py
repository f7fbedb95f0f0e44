"""The triage console's sign-in and sessions against the real database: the cookie, the
one-time link, Origin, logout, the idle and absolute limits, and `veilig staff disable`,
`rotate` and `list` ending open sessions at once."""

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
from typer.testing import CliRunner, Result

from schemas.events import Flags, IncidentReported, Reporter
from schemas.geo import locate
from services.cli import app as veilig
from services.common import sessions, staff
from services.common.pii import seal
from services.common.service import create_app
from services.common.settings import Settings, get_settings
from services.common.staff_cli import signin_link
from services.triage.service import SPEC
from tests.integration.test_triage import Stack, reported
from tests.support import eventually, fresh_database, stack_settings

pytestmark = pytest.mark.integration

LOCAL = "http://127.0.0.1:8082"
ORIGIN = {"Origin": LOCAL}


class Console:
    """The triage service in this process, and what a browser on loopback would send."""

    def __init__(self, settings: Settings, app: object) -> None:
        self.settings = settings
        self.app = app

    def browser(self, base_url: str = LOCAL) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)  # type: ignore[arg-type]
        return httpx.AsyncClient(transport=transport, base_url=base_url)

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.database_url.get_secret_value())

    async def account(self, role: staff.Role = "triage") -> tuple[str, str]:
        username = f"n.{uuid.uuid4().hex[:8]}"
        conn = await self.db()
        try:
            return username, await staff.add_staff(conn, username, role)
        finally:
            await conn.close()

    async def signed_in(self, role: staff.Role = "triage") -> tuple[str, httpx.AsyncClient]:
        """A new account signed in; the browser (not yet opened) holds its session cookie."""
        username, token = await self.account(role)
        async with self.browser() as signin:
            response = await signin.post(
                "/console/api/signin", json={"token": token}, headers=ORIGIN
            )
            assert response.status_code == 204, response.text
            session_id = signin.cookies[sessions.SESSION_COOKIE]
        browser = self.browser()
        browser.cookies.set(sessions.SESSION_COOKIE, session_id)
        return username, browser

    async def veilig(self, *args: str) -> str:
        """`veilig staff …` as an operator runs it, in a thread (its own event loop)."""

        def invoke() -> Result:
            get_settings.cache_clear()  # the command reads DATABASE_URL from the environment
            try:
                return CliRunner().invoke(veilig, list(args), env=env)
            finally:
                get_settings.cache_clear()

        env = {"DATABASE_URL": self.settings.database_url.get_secret_value()}
        result = await asyncio.to_thread(invoke)
        assert result.exit_code == 0, result.output
        return result.stdout


@pytest.fixture(scope="module")
async def console(kafka_bootstrap: str, admin_database_url: str) -> AsyncIterator[Console]:
    """One triage service for the module (every test makes accounts of its own)."""
    async with fresh_database(admin_database_url) as url:
        prefix = f"t{uuid.uuid4().hex[:10]}."
        settings = stack_settings(kafka_bootstrap, url, prefix)
        app = create_app(SPEC, settings)
        async with app.router.lifespan_context(app):
            yield Console(settings, app)


async def test_a_token_in_the_form_makes_a_session_with_a_strict_cookie(console: Console) -> None:
    username, token = await console.account()
    async with console.browser() as browser:
        page = await browser.get("/console/")
        assert page.status_code == 303
        assert page.headers["location"] == "/console/signin"

        response = await browser.post("/console/api/signin", json={"token": token}, headers=ORIGIN)
        assert response.status_code == 204
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{sessions.SESSION_COOKIE}=")
        attributes = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")[1:]}
        assert "httponly" in attributes
        assert attributes["samesite"].strip() == "SameSite=strict"
        assert attributes["path"].strip() == "Path=/console"
        assert "secure" not in attributes  # loopback: local development over plain http
        assert token not in cookie  # the cookie is a session id, not the token

        me = await browser.get("/console/api/me")
        assert me.json() == {"username": username, "role": "triage", "may_act": True}
        assert (await browser.get("/console/")).status_code == 200
        assert (await browser.get("/console/api/v1/queue?view=open")).status_code == 200

        refused = await browser.post(
            "/console/api/signin", json={"token": token[:-1] + "x"}, headers=ORIGIN
        )
        assert refused.status_code == 401

    async with console.browser("http://console.veilig.example") as remote:
        origin = {"Origin": "http://console.veilig.example"}
        response = await remote.post("/console/api/signin", json={"token": token}, headers=origin)
        assert "Secure" in response.headers["set-cookie"]


async def test_a_state_change_from_another_site_is_refused(console: Console) -> None:
    _, token = await console.account()
    async with console.browser() as browser:
        for headers in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"}):
            response = await browser.post(
                "/console/api/signin", json={"token": token}, headers=headers
            )
            assert response.status_code == 403
    _, browser = await console.signed_in()
    async with browser:
        nowhere = f"/console/api/v1/incidents/{uuid.uuid4()}/acknowledge"
        assert (await browser.post(nowhere, json={})).status_code == 403
        assert (
            await browser.post(nowhere, json={}, headers={"Origin": "http://evil.example"})
        ).status_code == 403
        # From the site itself it reaches the action (which finds no such incident).
        assert (await browser.post(nowhere, json={}, headers=ORIGIN)).status_code == 404
        assert (
            await browser.post("/console/api/signout", headers={"Origin": "http://evil.example"})
        ).status_code == 403
        assert (await browser.get("/console/api/me")).status_code == 200


async def test_signing_out_refuses_the_old_cookie(console: Console) -> None:
    _, browser = await console.signed_in()
    async with browser:
        old = browser.cookies[sessions.SESSION_COOKIE]
        response = await browser.post("/console/api/signout", headers=ORIGIN)
        assert response.status_code == 204
        assert 'veilig_console=""' in response.headers["set-cookie"]
    async with console.browser() as replay:
        replay.cookies.set(sessions.SESSION_COOKIE, old)
        assert (await replay.get("/console/api/me")).status_code == 401
        assert (await replay.get("/console/api/v1/queue")).status_code == 401
        assert (await replay.get("/console/")).status_code == 303


async def test_a_sign_in_link_works_once_and_not_after_it_expired(console: Console) -> None:
    username, _ = await console.account()
    conn = await console.db()
    try:
        link = await signin_link(conn, console.settings, username)
        stale = await sessions.issue_link(
            conn, username, timedelta(minutes=5), datetime.now(UTC) - timedelta(minutes=6)
        )
        with pytest.raises(staff.StaffError):
            await signin_link(conn, console.settings, "nobody")
    finally:
        await conn.close()
    path, _, code = link.partition("#")  # the code is in the fragment: no server sees it
    assert path.endswith("/console/signin")
    async with console.browser() as browser:
        assert (await browser.get("/console/signin")).status_code == 200
        first = await browser.post("/console/api/signin/link", json={"code": code}, headers=ORIGIN)
        assert first.status_code == 204
        assert (await browser.get("/console/api/me")).json()["username"] == username
    async with console.browser() as other:
        again = await other.post("/console/api/signin/link", json={"code": code}, headers=ORIGIN)
        assert again.status_code == 401
        late = await other.post("/console/api/signin/link", json={"code": stale}, headers=ORIGIN)
        assert late.status_code == 401


async def test_sessions_end_when_idle_too_long_and_after_their_lifetime(
    console: Console,
) -> None:
    _, browser = await console.signed_in()
    async with browser:
        assert (await browser.get("/console/api/me")).status_code == 200
        session_id = browser.cookies[sessions.SESSION_COOKIE]
    now = datetime.now(UTC)
    policy = sessions.SessionPolicy(idle=timedelta(minutes=30), lifetime=timedelta(hours=12))
    conn = await console.db()
    try:
        # Used every 25 minutes, it lives on; 31 minutes unused, it is over.
        for minutes in (25, 50, 75):
            later = now + timedelta(minutes=minutes)
            assert await sessions.session_user(conn, session_id, policy, later) is not None
        assert (
            await sessions.session_user(conn, session_id, policy, later + timedelta(minutes=31))
            is None
        )
        # However busy, it ends 12 hours after sign-in.
        for minutes in range(100, 12 * 60, 20):
            later = now + timedelta(minutes=minutes)
            assert await sessions.session_user(conn, session_id, policy, later) is not None
        assert (
            await sessions.session_user(
                conn, session_id, policy, now + timedelta(hours=12, seconds=1)
            )
            is None
        )
    finally:
        await conn.close()


async def test_disable_rotate_and_list_take_effect_for_open_sessions(console: Console) -> None:
    disabled, gone = await console.signed_in()
    rotated, stale = await console.signed_in()
    listed = json.loads(
        "[" + ",".join((await console.veilig("staff", "list", "--json")).splitlines()) + "]"
    )
    by_name = {a["username"]: a for a in listed}
    assert by_name[disabled]["open_sessions"] == 1
    assert by_name[rotated]["disabled_at"] is None

    await console.veilig("staff", "disable", disabled)
    new_token = (await console.veilig("staff", "rotate", rotated)).splitlines()[-1]
    async with gone, stale:
        assert (await gone.get("/console/api/me")).status_code == 401
        assert (await stale.get("/console/api/me")).status_code == 401
    table = await console.veilig("staff", "list")
    assert disabled in table and "disabled" in table

    conn = await console.db()
    try:
        accounts = {a.username: a for a in await staff.list_staff(conn)}
    finally:
        await conn.close()
    assert accounts[disabled].disabled_at is not None
    assert accounts[disabled].open_sessions == accounts[rotated].open_sessions == 0
    async with console.browser() as browser:
        fresh = await browser.post("/console/api/signin", json={"token": new_token}, headers=ORIGIN)
        assert fresh.status_code == 204
        assert (await browser.get("/console/api/me")).json()["username"] == rotated


async def triaged(console: Console, *reports: IncidentReported) -> None:
    """Send reports to triage and wait until it decided them."""
    await Stack(console.settings, console.browser()).send(*reports)
    conn = await console.db()
    try:
        ids = [r.incident_id for r in reports]
        await eventually(
            lambda: conn.fetchval(
                "SELECT count(*) = $2 FROM triage.incidents WHERE incident_id = ANY($1)",
                ids,
                len(ids),
            )
        )
    finally:
        await conn.close()


async def test_claim_hold_start_and_cancel_are_events_and_history(console: Console) -> None:
    me, browser = await console.signed_in()
    colleague, _ = await console.account()
    report = reported("Rook uit een schuur, niemand in de buurt", hint="brand")
    await triaged(console, report)
    path = f"/console/api/v1/incidents/{report.incident_id}"
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    async with browser:

        async def act(action: str, **body: object) -> httpx.Response:
            return await browser.post(f"{path}/{action}", json=body, headers=ORIGIN)

        assert (await act("claim")).status_code == 200
        assert (await act("claim")).status_code == 409  # owned by me already
        assert (await act("assign", owner="nobody.here")).status_code == 409
        assert (await act("start")).status_code == 409  # nobody acknowledged it yet
        assert (
            await act("hold", reason="wacht", resume_at="2020-01-01T00:00:00Z")
        ).status_code == 409
        assert (
            await act("hold", reason="wacht op de eigenaar", resume_at=later)
        ).status_code == 200
        assert (await act("assign", owner=colleague, reason="overdracht")).status_code == 200
        assert (await act("start", reason="eigenaar gebeld")).status_code == 200
        assert (
            await act("cancel", reason="loos alarm, bevestigd door eigenaar")
        ).status_code == 200
        assert (await act("start")).status_code == 409  # cancelled is final
        view = (await browser.get(path)).json()

    assert view["status"] == "cancelled"
    assert view["owner"] == colleague
    assert [(h["kind"], h["actor"]) for h in view["history"][1:]] == [
        ("assigned", me),
        ("on hold", me),
        ("assigned", me),
        ("started", me),
        ("cancelled", me),
    ]
    assert view["history"][2]["detail"]["resume_at"] is not None
    events = await Stack(console.settings, console.browser()).outputs(
        {report.incident_id}, want=6, settle=1
    )
    facts = [
        (type(e).__name__, getattr(e, "new_status", None) or getattr(e, "owner", None))
        for e in events[1:]
    ]
    assert facts == [
        ("IncidentAssigned", me),
        ("IncidentStatusChanged", "on_hold"),
        ("IncidentAssigned", colleague),
        ("IncidentStatusChanged", "in_progress"),
        ("IncidentStatusChanged", "cancelled"),
    ]
    assert events[-1].reason == "loos alarm, bevestigd door eigenaar"  # type: ignore[attr-defined]


async def test_revealing_a_reporters_contact_needs_a_reason_and_is_audited(
    console: Console,
) -> None:
    me, browser = await console.signed_in()
    contact = Reporter(name="A. de Vries", phone="0612345678")
    report = reported("Verdachte man bij de fietsenstalling").model_copy(
        update={"reporter_sealed": seal(contact.model_dump_json())}
    )
    await triaged(console, report)
    path = f"/console/api/v1/incidents/{report.incident_id}"
    async with browser:
        page = (await browser.get(path)).json()
        assert page["has_contact"] and page["contact_reveals"] == []
        assert "0612345678" not in json.dumps(page)
        no_reason = await browser.post(f"{path}/contact", json={}, headers=ORIGIN)
        assert no_reason.status_code == 422
        shown = await browser.post(
            f"{path}/contact", json={"reason": "terugbellen voor signalement"}, headers=ORIGIN
        )
        assert shown.status_code == 200
        assert shown.json()["phone"] == "0612345678"
        page = (await browser.get(path)).json()
    assert [(r["actor"], r["reason"]) for r in page["contact_reveals"]] == [
        (me, "terugbellen voor signalement")
    ]
    _, ops = await console.signed_in("ops")
    async with ops:
        refused = await ops.post(f"{path}/contact", json={"reason": "nieuwsgierig"}, headers=ORIGIN)
        assert refused.status_code == 403
    assert await contact_reveals(console.settings, report.incident_id) == [
        (me, "terugbellen voor signalement")
    ]


async def contact_reveals(settings: Settings, incident_id: uuid.UUID) -> list[tuple[str, str]]:
    """The audit rows of an incident's contact reveals: (who, why)."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        rows = await conn.fetch(
            "SELECT actor, detail->>'reason' AS reason FROM triage.audit "
            "WHERE incident_id = $1 AND action = 'reveal_contact' ORDER BY id",
            incident_id,
        )
    finally:
        await conn.close()
    return [(r["actor"], r["reason"]) for r in rows]


async def test_the_queue_narrows_by_filters_and_counts_every_view(console: Console) -> None:
    _, browser = await console.signed_in("ops")
    partner = f"app-{uuid.uuid4().hex[:6]}"
    fire = reported("Brand in een schuur, vlammen", flags=Flags(in_progress=True), partner=partner)
    centre = reported("Graffiti op de kerkdeur", hint="vandalisme", partner=partner)
    centre = centre.model_copy(update={"location": locate(lat=52.3812, lon=4.6366)})
    await triaged(console, fire, centre)
    async with browser:

        async def queue(**query: str) -> dict[str, Any]:
            response = await browser.get("/console/api/queue", params={"partner": partner, **query})
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        everything = await queue()
        assert {i["incident_id"] for i in everything["items"]} == {
            str(fire.incident_id),
            str(centre.incident_id),
        }
        assert everything["items"][0]["incident_id"] == str(fire.incident_id)  # P1 first
        assert everything["counts"]["open"] == 2
        assert everything["counts"]["unacknowledged"] == 1
        in_centre = await queue(wijk="WK039201")
        assert [i["incident_id"] for i in in_centre["items"]] == [str(centre.incident_id)]
        assert in_centre["counts"]["open"] == 1 and in_centre["counts"]["unacknowledged"] == 0
        urgent = await queue(view="unacknowledged")
        assert [i["incident_id"] for i in urgent["items"]] == [str(fire.incident_id)]
        assert (await queue(category="brand", priority="P4"))["items"] == []
        assert (await browser.get("/console/api/queue", params={"view": "nope"})).status_code == 422


async def test_the_queue_shows_the_zorgsignaal_of_a_door_reported_three_times(
    console: Console,
) -> None:
    """Issue #17: a zorgsignaal is shown in the console's queue, beside the incidents."""
    _, browser = await console.signed_in()
    spot = {"lat": 52.3755, "lon": 4.6220}  # one door in Haarlem-Noord
    now = datetime.now(UTC)
    noise = [  # days apart: separate incidents, not duplicates of one another
        reported(text, hint="woonoverlast", at=now - timedelta(days=days), **spot)
        for text, days in (
            ("Harde muziek en geschreeuw uit de bovenwoning, de hele nacht", 20),
            ("Weer lawaai en bonken op de muren bij de bovenburen", 10),
            ("Opnieuw ruzie en lawaai in dezelfde woning", 1),
        )
    ]
    await triaged(console, *noise)
    async with browser:

        async def signals() -> list[dict[str, Any]]:
            response = await browser.get("/console/api/queue")
            assert response.status_code == 200, response.text
            found = response.json()["signals"]
            return [s for s in found if set(s["incidents"]) & {str(r.incident_id) for r in noise}]

        await eventually(signals, within=60)
        shown = await signals()
    assert len(shown) == 1
    assert set(shown[0]["incidents"]) == {str(r.incident_id) for r in noise}
    assert "woonoverlast" in shown[0]["categories"]
