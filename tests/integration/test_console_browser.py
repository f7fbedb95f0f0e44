"""The triage console in headless Chromium against the real triage service, Kafka and
PostgreSQL, told as a night shift: sign in with the one-time link, see a new P1 arrive without
reload, work it from the keyboard, sign out; a disabled colleague's open page is refused.
axe-core checks the queue and the incident page. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Browser, Page, Route, async_playwright
from playwright.async_api import Error as PlaywrightError

from schemas.envelope import encode
from schemas.events import Flags, IncidentReported, Reporter
from services.common import staff
from services.common.pii import seal
from services.common.service import create_app
from services.common.settings import Settings
from services.common.staff_cli import signin_link
from services.notify.service import make_spec
from services.notify.webhooks import generate_secret
from services.triage.service import SPEC
from tests.integration.test_analytics_browser import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.integration.test_console import contact_reveals
from tests.integration.test_notify import (
    Mailbox,
    Receiver,
    notify_config,
    receiver_server,
    smtp_server,
)
from tests.integration.test_triage import reported
from tests.support import (
    eventually,
    fresh_database,
    produce,
    running,
    served,
    stack_settings,
)
from tools.demo import point_recipients_at_standins

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]

__all__ = ["receiver_server", "smtp_server"]  # module fixtures of test_notify used here
SCALE = 0.08  # notify's acknowledgement windows: P1's 2 minutes become 9.6 seconds
ARTEFACTS = Path("test-artifacts")
AXE = Path(__file__).parents[1] / "vendor" / "axe-core" / "axe.min.js"
WAIT_MS = 30_000
# Points in four wijken, far from the other tests' reports (Schalkwijk): no automatic merges.
NOORD, OOST, CENTRE, ZUID = (
    (52.3950, 4.6400),
    (52.3800, 4.6650),
    (52.3812, 4.6366),
    (52.3700, 4.6150),
)


@dataclass
class Platform:
    settings: Settings
    url: str
    browser: Browser
    receiver: Receiver
    page_errors: list[str] = field(default_factory=list)

    def messages(self, incident: IncidentReported) -> dict[str, list[Any]]:
        """What the receiver got about ``incident``: recipient -> JSON bodies."""
        found: dict[str, list[Any]] = {}
        for name, received in self.receiver.received.items():
            for r in received:
                if r.json.get("incident_id") == str(incident.incident_id):
                    found.setdefault(name, []).append(r.json)
        return found

    async def db(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.settings.database_url.get_secret_value())

    async def account(self, role: staff.Role = "triage") -> str:
        username = f"n.{uuid.uuid4().hex[:8]}"
        conn = await self.db()
        try:
            await staff.add_staff(conn, username, role)
        finally:
            await conn.close()
        return username

    async def link(self, username: str) -> str:
        conn = await self.db()
        try:
            link = await signin_link(conn, self.settings, username)
        finally:
            await conn.close()
        return self.url + link[link.index("/console/") :]

    async def page(self) -> Page:
        # The tests evaluate scripts (waits, axe-core) that the page's own CSP forbids.
        page = await self.browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        return page

    async def signed_in(self, role: staff.Role = "triage") -> tuple[str, Page]:
        """A new account's page on the queue, signed in with a one-time link."""
        username = await self.account(role)
        page = await self.page()
        await page.goto(await self.link(username))
        await page.wait_for_url(f"{self.url}/console/")
        await page.wait_for_function(
            "document.querySelector('#live').className === 'live'", timeout=WAIT_MS
        )
        return username, page

    async def report(self, *events: IncidentReported) -> None:
        messages = [(e.key, e.value, list(e.headers)) for e in map(encode, events)]
        await produce(self.settings, self.settings.topic("incident-events"), messages)


@pytest.fixture(scope="module")
async def platform(
    kafka_bootstrap: str,
    admin_database_url: str,
    receiver_server: Receiver,
    smtp_server: tuple[Mailbox, int],
) -> AsyncIterator[Platform]:
    """Triage on a real socket (a browser needs one), notify delivering every recipient to a
    receiver as JSON webhooks (acknowledgement windows scaled down), and one Chromium."""
    async with fresh_database(admin_database_url) as url, contextlib.AsyncExitStack() as stack:
        settings = stack_settings(kafka_bootstrap, url, f"t{uuid.uuid4().hex[:10]}.")
        port = free_port()
        settings = settings.model_copy(update={"triage_port": port})
        notify = make_spec(notify_config(smtp_server[1], escalation_time_scale=SCALE))
        await stack.enter_async_context(running(notify, settings))
        await point_recipients_at_standins(
            settings, generate_secret(), url=receiver_server.base, webhook_format="json"
        )
        base = await stack.enter_async_context(served(create_app(SPEC, settings), port))
        playwright = await stack.enter_async_context(async_playwright())
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield Platform(settings, base, browser, receiver_server)
        finally:
            await browser.close()


@pytest.fixture(autouse=True)
def no_script_errors(platform: Platform) -> Iterator[None]:
    """Every test's pages ran without an uncaught script error."""
    platform.page_errors.clear()
    yield
    assert platform.page_errors == []


async def shot(page: Page, name: str) -> None:
    ARTEFACTS.mkdir(exist_ok=True)  # noqa: ASYNC240 (a folder, once)
    await page.screenshot(path=str(ARTEFACTS / f"console-{name}.png"), full_page=True)


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it is now."""
    await page.add_script_tag(content=AXE.read_text())
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def row(page: Page, incident: IncidentReported) -> Any:
    return page.locator(f'#queue tbody tr[data-id="{incident.incident_id}"]')


async def test_a_new_p1_arrives_live_and_its_acknowledgement_stops_the_paging(
    platform: Platform,
) -> None:
    _, page = await platform.signed_in()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        # A fire in progress arrives: it is in the queue without a reload, as P1, counting down.
        fire = reported("Uitslaande brand in een woning, veel rook", flags=Flags(in_progress=True))
        graffiti = reported("Graffiti op de muur van de school", hint="vandalisme")
        await platform.report(fire, graffiti)
        await row(page, fire).wait_for(timeout=WAIT_MS)
        await row(page, graffiti).wait_for(timeout=WAIT_MS)
        assert await row(page, fire).locator(".prio").text_content() == "P1"
        assert "over" in (await row(page, fire).locator(".countdown").first.text_content() or "")
        unacknowledged = page.locator('#views button[data-view="unacknowledged"] .count')
        assert await unacknowledged.text_content() == "1"

        # Down to the graffiti, back up to the fire, open it and acknowledge it: "a".
        await page.keyboard.press("j")
        assert await row(page, graffiti).get_attribute("aria-selected") == "true"
        await page.keyboard.press("k")
        assert await row(page, fire).get_attribute("aria-selected") == "true"
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{platform.url}/console/incidents/{fire.incident_id}")
        assert "brand" in (await page.locator("#incident-view").text_content() or "").lower()
        await page.keyboard.press("a")
        history = page.locator("#incident-view table tbody")
        await history.get_by_text("acknowledged").wait_for(timeout=WAIT_MS)
        acknowledged_at = asyncio.get_running_loop().time()

        # Notify's messages are on the page, with no escalation timer running any more.
        messages = page.locator('#incident-view tr[data-recipient="brandweer"]')
        await messages.wait_for(timeout=WAIT_MS)
        assert await page.locator("#incident-view tr[data-recipient] [data-deadline]").count() == 0
        await shot(page, "incident")
        assert await serious_violations(page) == []

        # Back to the queue (Escape): off the unacknowledged view; the key map (?).
        await page.keyboard.press("Escape")
        await page.wait_for_url(f"{platform.url}/console/")
        await page.wait_for_function(
            "document.querySelector('#views button[data-view=\"unacknowledged\"] .count')"
            ".textContent === '0'",
            timeout=WAIT_MS,
        )
        await page.keyboard.press("?")
        keymap = await page.locator("#keymap").text_content() or ""
        assert all(word in keymap for word in ("bevestigen", "oppakken", "herclassificeren"))
        await shot(page, "keys")
        await page.keyboard.press("Escape")
        await shot(page, "queue")
        assert await serious_violations(page) == []

        # Past the acknowledgement window (and a page's worth more): nobody was paged.
        window = 120 * SCALE + 3
        await asyncio.sleep(max(0.0, acknowledged_at + window - asyncio.get_running_loop().time()))
        told = platform.messages(fire)
        assert set(told) == {"brandweer", "politie.meldkamer"}  # no politie.ovd
        assert [m["kind"] for m in told["brandweer"] + told["politie.meldkamer"]] == ["alert"] * 2
    finally:
        await page.close()
    assert requests and all(url.startswith(platform.url) for url in requests), requests


async def test_a_sign_in_link_works_once_and_signing_out_refuses_the_old_cookie(
    platform: Platform,
) -> None:
    username = await platform.account()
    link = await platform.link(username)
    page = await platform.page()

    async def slowly(route: Route) -> None:
        await asyncio.sleep(3)
        with contextlib.suppress(PlaywrightError):  # the page may have gone meanwhile
            await route.continue_()

    try:
        # The page asks for its reference data as it starts; on a slow day the answer comes
        # after the first click, and signing out must not wait for it.
        await page.route("**/console/api/reference", slowly)
        await page.goto(link)
        await page.wait_for_url(f"{platform.url}/console/")
        assert "#" not in page.url
        cookies = await page.context.cookies()
        (session,) = [c for c in cookies if c["name"] == "veilig_console"]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        assert session["path"] == "/console"

        await page.get_by_role("button", name="Afmelden").click()
        await page.wait_for_url(f"{platform.url}/console/signin")
        again = await page.context.request.get(
            f"{platform.url}/console/api/me",
            headers={"Cookie": f"veilig_console={session['value']}"},
        )
        assert again.status == 401

        other = await platform.page()
        try:
            await other.goto(link)  # the same link, a second time
            await other.get_by_text("Aanmelden mislukt").wait_for(timeout=WAIT_MS)
            assert other.url == f"{platform.url}/console/signin"
        finally:
            await other.close()
    finally:
        await page.close()


async def test_a_disabled_accounts_open_page_is_refused_at_once(platform: Platform) -> None:
    username, page = await platform.signed_in()
    try:
        conn = await platform.db()
        try:
            await staff.disable_staff(conn, username)
        finally:
            await conn.close()
        # The live queue notices at its next look and sends the page to sign in.
        await page.wait_for_url(f"{platform.url}/console/signin", timeout=WAIT_MS)
        refused = await page.context.request.get(f"{platform.url}/console/api/v1/queue")
        assert refused.status == 401
    finally:
        await page.close()


async def test_an_ops_engineer_is_offered_no_actions_and_refused_them(platform: Platform) -> None:
    _, page = await platform.signed_in("ops")
    try:
        report = reported("Vernielde bushalte", hint="vandalisme", lat=ZUID[0], lon=ZUID[1])
        await platform.report(report)
        await row(page, report).click()
        await page.wait_for_url(f"{platform.url}/console/incidents/{report.incident_id}")
        await page.locator("#incident-title").wait_for()
        assert await page.locator("[data-action]").count() == 0
        await page.keyboard.press("x")
        assert not await page.locator("#ask").is_visible()
        refused = await page.evaluate(
            """async (id) => (await fetch(`/console/api/v1/incidents/${id}/resolve`, {
                method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify({outcome: "handled"})})).status""",
            str(report.incident_id),
        )
        assert refused == 403

        # "/" goes to the filters; the page speaks English on request, and keeps to it.
        await page.keyboard.press("Escape")
        await page.keyboard.press("/")
        assert await page.evaluate("document.activeElement.name") == "wijk"
        await page.get_by_role("button", name="English").click()
        await page.get_by_role("heading", name="Triage console").wait_for()
        assert await page.text_content("#live") == "live"  # the status, in English too
        assert await page.evaluate("document.documentElement.lang") == "en"
        await page.reload()
        await page.get_by_role("button", name="Sign out").wait_for()
        await page.get_by_role("button", name="Nederlands").click()
        await page.get_by_role("button", name="Afmelden").wait_for()

        # On a tablet, upright: the same page, nothing cut off, still accessible.
        await page.set_viewport_size({"width": 820, "height": 1180})
        await row(page, report).wait_for()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 820, width
        await shot(page, "tablet")
        assert await serious_violations(page) == []
    finally:
        await page.close()


async def incident_page(platform: Platform, page: Page, incident: IncidentReported) -> None:
    await row(page, incident).locator("a").click()
    await page.wait_for_url(f"{platform.url}/console/incidents/{incident.incident_id}")
    await page.locator("#incident-title").wait_for()


async def answer(page: Page, **fields: str) -> None:
    """Fill the open dialog's fields and submit it."""
    dialog = page.locator("#ask")
    await dialog.wait_for()
    for name, value in fields.items():
        control = dialog.locator(f'[name="{name}"]')
        if await control.evaluate("e => e.tagName") == "SELECT":
            await control.select_option(value)
        else:
            await control.fill(value)
    await dialog.get_by_role("button", name="Uitvoeren").click()
    await dialog.wait_for(state="hidden")


async def in_history(page: Page, kind: str) -> None:
    cell = page.locator("#incident-view table tbody td", has_text=kind)
    await cell.first.wait_for(timeout=WAIT_MS)


async def test_reclassify_reveal_merge_claim_hold_and_cancel(platform: Platform) -> None:
    me, page = await platform.signed_in()
    contact = Reporter(name="J. Bakker", phone="0687654321")
    # Far apart, and from the other tests' reports: triage merges none of them by itself.
    tags = reported(
        "Tags gespoten op de gevel van het buurthuis", hint="vandalisme", lat=NOORD[0], lon=NOORD[1]
    ).model_copy(update={"reporter_sealed": seal(contact.model_dump_json())})
    noise = reported(
        "Buren maken al uren ruzie, veel geschreeuw", hint="woonoverlast", lat=OOST[0], lon=OOST[1]
    )
    again = reported(
        "Harde muziek en geschreeuw bij de buren", hint="woonoverlast", lat=CENTRE[0], lon=CENTRE[1]
    )
    await platform.report(tags, noise, again)
    for incident in (tags, noise, again):
        await row(page, incident).wait_for(timeout=WAIT_MS)
    try:
        # Reclassified: the new recipients are notified, and the page shows their messages.
        await incident_page(platform, page, tags)
        await page.keyboard.press("r")
        await answer(page, category="jeugdoverlast", reason="het zijn jongeren, bekend groepje")
        await in_history(page, "reclassified")
        await eventually(lambda: "jeugd.team" in platform.messages(tags), within=30)
        await page.locator('#incident-view tr[data-recipient="jeugd.team"]').wait_for(
            timeout=WAIT_MS
        )

        # The reporter's contact: only on request, with a reason, and audited.
        assert "0687654321" not in (await page.content())
        await page.locator('[data-action="contact"]').click()
        await answer(page, reason="terugbellen voor een signalement")
        await page.locator("#contact-details").get_by_text("0687654321").wait_for()
        await page.get_by_text(f"{me}: terugbellen voor een signalement").wait_for()
        assert await contact_reveals(platform.settings, tags.incident_id) == [
            (me, "terugbellen voor een signalement")
        ]
        await shot(page, "reveal")

        # Two reports of one quarrel: the later merged into the first.
        await page.keyboard.press("Escape")
        await incident_page(platform, page, again)
        await page.keyboard.press("m")
        await answer(page, into=str(noise.incident_id), reason="zelfde ruzie")
        await in_history(page, "merged")
        await page.keyboard.press("Escape")
        await row(page, again).wait_for(state="detached", timeout=WAIT_MS)

        # Claimed ("c"), put on hold with a resume time, then called off: a cancel to all.
        await incident_page(platform, page, noise)
        await page.locator("#incident-view").get_by_text("Harde muziek").wait_for()
        await page.keyboard.press("c")
        await in_history(page, "assigned")
        await page.locator('[data-action="hold"]').click()
        await answer(page, reason="wacht op de wijkagent", resume_at="2030-01-01T12:00")
        await in_history(page, "on hold")
        await page.locator('[data-action="cancel"]').click()
        await answer(page, reason="melder trekt het in, ruzie is bijgelegd")
        await in_history(page, "cancelled")
        assert await page.locator("[data-action]").count() == 0  # nothing left to do
        await shot(page, "cancelled")

        def cancelled() -> bool:
            told = platform.messages(noise)
            return bool(told) and all(m[-1]["kind"] == "cancel" for m in told.values())

        await eventually(cancelled, within=30)
        assert set(platform.messages(noise)) == {"handhaving", "zorg.veiligheidshuis"}
    finally:
        await page.close()


async def test_the_incident_on_the_map_its_routing_rule_and_assigning_it_to_a_colleague(
    platform: Platform,
) -> None:
    me, page = await platform.signed_in()
    colleague = await platform.account("admin")
    smoke = reported("Rook uit de meterkast in een portiek", hint="brand", lat=ZUID[0], lon=ZUID[1])
    await platform.report(smoke)
    await row(page, smoke).wait_for(timeout=WAIT_MS)
    try:
        # On the offline map: a pin on its point, its buurt highlighted, named for a reader.
        await incident_page(platform, page, smoke)
        await page.locator("#incident-map svg .pin").wait_for(timeout=WAIT_MS)
        buurt = smoke.location.buurt_code
        assert await page.locator(f'#incident-map .buurt.here[data-code="{buurt}"]').count() == 1
        label = await page.locator("#incident-map svg").get_attribute("aria-label") or ""
        assert label.startswith("Exacte plek van de melding")

        # The routing decision: the rule that chose the recipients, and the rules before it.
        summary = await page.locator("#routing-summary").text_content() or ""
        assert summary.startswith("Ontvangers gekozen door regel")
        matched = page.locator("#routing tbody tr.matched")
        assert await matched.count() >= 1
        rule = await matched.first.get_attribute("data-rule")
        assert rule is not None and rule in summary
        assert await serious_violations(page) == []
        await shot(page, "incident-map-routing")

        # Given to a colleague chosen from the active staff; "c" takes it back.
        owner = page.locator('#incident-view dt:text-is("Eigenaar") + dd')
        await page.locator('[data-action="assign"]').click()
        await answer(page, owner=colleague, reason="overdracht aan de dienstdoende")
        await eventually(lambda: _is(owner, colleague), within=WAIT_MS / 1000)
        await shot(page, "assigned")
        await page.keyboard.press("c")
        await eventually(lambda: _is(owner, me), within=WAIT_MS / 1000)
    finally:
        await page.close()


async def _is(locator: Any, text: str) -> bool:
    return (await locator.text_content()) == text


async def test_an_unacknowledged_p1_counts_down_to_notifys_next_escalation(
    platform: Platform,
) -> None:
    _, page = await platform.signed_in()
    fire = reported(
        "Brand in een schuur, vlammen slaan eruit",
        flags=Flags(in_progress=True),
        lat=NOORD[0],
        lon=NOORD[1],
    )
    shown = row(page, fire).locator(".escalation")

    async def timers() -> list[datetime]:
        """Notify's running escalation timers for the fire, as notify itself has them."""
        conn = await platform.db()
        try:
            rows = await conn.fetch(
                "SELECT escalate_at FROM notify.escalations WHERE incident_id = $1 "
                "AND stopped_at IS NULL ORDER BY escalate_at",
                fire.incident_id,
            )
        finally:
            await conn.close()
        return [r["escalate_at"] for r in rows]

    async def counting_down_to_notifys_next() -> datetime | None:
        """The time the row counts down to, once it is notify's earliest running timer."""
        when = await shown.locator("time").get_attribute("datetime")
        running = await timers()
        if when is None or not running:
            return None
        at = datetime.fromisoformat(when)
        return at if at == running[0] else None

    try:
        await platform.report(fire)
        await row(page, fire).wait_for(timeout=WAIT_MS)
        await shown.locator("time").wait_for(timeout=WAIT_MS)
        await eventually(counting_down_to_notifys_next, within=WAIT_MS / 1000)
        first = await counting_down_to_notifys_next()
        assert first is not None
        # It ticks for the eye; a screen reader reads the time instead of every second.
        countdown = shown.locator(".countdown")
        assert await countdown.get_attribute("aria-hidden") == "true"
        assert (await countdown.text_content() or "").startswith("over")
        assert await page.locator('#queue th:text-is("Volgende escalatie")').count() == 1
        await shot(page, "queue-escalation")

        # Nobody acknowledges: notify pages the next in the chain and sets the next timer,
        # and the row counts down to that one.
        async def moved_on() -> bool:
            later = await counting_down_to_notifys_next()
            return later is not None and later > first

        await eventually(moved_on, within=WAIT_MS / 1000)

        # Acknowledged ("a" on the incident): notify stops every timer, the countdown goes.
        await row(page, fire).locator("a").click()
        await page.wait_for_url(f"{platform.url}/console/incidents/{fire.incident_id}")
        await page.keyboard.press("a")
        await (
            page.locator("#incident-view table tbody")
            .get_by_text("acknowledged")
            .wait_for(timeout=WAIT_MS)
        )
        await page.keyboard.press("Escape")
        await page.wait_for_url(f"{platform.url}/console/")
        await eventually(lambda: _is(shown, "—"), within=WAIT_MS / 1000)

        async def stopped() -> bool:
            return await timers() == []

        await eventually(stopped, within=WAIT_MS / 1000)
    finally:
        await page.close()
