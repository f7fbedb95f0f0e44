"""The console's incident page and the workflow's timers, against the real broker and database:
the incident on the offline map, the routing rule that chose its recipients, assigning it to
a colleague, a hold that resumes by itself, and a missed handle-by deadline that is raised
once and pages the escalation target once."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from schemas.events import (
    IncidentAssigned,
    IncidentDeadlineMissed,
    IncidentReported,
    IncidentStatusChanged,
)
from schemas.taxonomy import Profile
from services.common import staff
from services.common.db import create_pool
from services.common.settings import Settings
from services.notify.service import make_spec
from services.notify.webhooks import generate_secret
from services.triage import timers
from tests.integration.test_console import ORIGIN, Console, console, triaged
from tests.integration.test_notify import (
    Receiver,
    database,
    notify_config,
    receiver,
    receiver_server,
    smtp_server,
    story,
    webhook,
)
from tests.integration.test_triage import Stack, reported
from tests.support import eventually, running

pytestmark = pytest.mark.integration

__all__ = ["console", "receiver", "receiver_server", "smtp_server"]  # fixtures used here


def _box(path: str) -> tuple[float, float, float, float]:
    """The bounding box of an SVG path's points."""
    points = [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", path)]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)


async def history(console: Console, incident_id: uuid.UUID, kind: str) -> list[str | None]:
    conn = await console.db()
    try:
        rows = await conn.fetch(
            "SELECT actor FROM triage.history WHERE incident_id = $1 AND kind = $2",
            incident_id,
            kind,
        )
    finally:
        await conn.close()
    return [r["actor"] for r in rows]


async def test_the_incident_page_pins_the_report_in_its_buurt_and_shows_the_rule_that_routed_it(
    console: Console,
) -> None:
    _, browser = await console.signed_in("ops")  # everyone who reads the incident sees it
    fire = reported("Vlammen slaan uit een schuur achter de flat", hint="brand")
    nowhere = reported("Iemand belt over overlast, plek onbekend", lat=None, lon=None)
    await triaged(console, fire, nowhere)
    async with browser:
        view = (await browser.get(f"/console/api/v1/incidents/{fire.incident_id}")).json()
        drawn = await browser.get(f"/console/api/incidents/{fire.incident_id}/map")
        unplaced = await browser.get(f"/console/api/incidents/{nowhere.incident_id}/map")

    assert drawn.status_code == 200
    assert drawn.headers["content-type"].startswith("image/svg+xml")
    buurt = fire.location.buurt_code
    (here,) = re.findall(
        rf'<path class="buurt here" data-code="{buurt}"[^>]* d="([^"]+)"', drawn.text
    )
    (pin,) = re.findall(r'<circle class="pin" cx="([\d.]+)" cy="([\d.]+)"', drawn.text)
    left, top, right, bottom = _box(here)
    assert left <= float(pin[0]) <= right and top <= float(pin[1]) <= bottom  # in its buurt
    assert unplaced.status_code == 404
    assert unplaced.json()["type"].endswith("not-on-the-map")

    # The routing decision: every rule checked in order, up to the one that decided.
    steps = view["routing"]
    assert [s["index"] for s in steps] == list(range(len(steps)))
    matched = [s for s in steps if s["matched"]]
    assert matched and not matched[-1]["continued"]
    assert all(s["why"] for s in steps)
    assert [r for s in matched for r in s["added"]] == view["recipients"]
    assert {r["profile"] for r in view["recipients"]} <= {p.value for p in Profile}
    assert any(reason.startswith(f"route {matched[0]['rule']}: ") for reason in view["reasons"])


async def test_an_incident_is_given_to_a_colleague_chosen_from_the_active_staff(
    console: Console,
) -> None:
    me, browser = await console.signed_in()
    colleague, _ = await console.account("admin")
    watcher, _ = await console.account("ops")
    gone, _ = await console.account("triage")
    conn = await console.db()
    try:
        await staff.disable_staff(conn, gone)
    finally:
        await conn.close()
    report = reported("Fiets met geweld van het slot gebroken", hint="vandalisme")
    await triaged(console, report)
    path = f"/console/api/v1/incidents/{report.incident_id}"
    async with browser:
        people = (await browser.get("/console/api/colleagues")).json()

        async def assign(owner: str) -> httpx.Response:
            body = {"owner": owner, "reason": "overdracht bij wisseling van de dienst"}
            return await browser.post(f"{path}/assign", json=body, headers=ORIGIN)

        assert (await assign(gone)).status_code == 409
        assert (await assign(watcher)).status_code == 409
        assert (await assign(colleague)).status_code == 200
        view = (await browser.get(path)).json()

    names = {p["username"]: p["role"] for p in people}
    assert names[me] == "triage" and names[colleague] == "admin"
    assert watcher not in names and gone not in names
    assert view["owner"] == colleague
    assert (view["history"][-1]["kind"], view["history"][-1]["actor"]) == ("assigned", me)
    events = await Stack(console.settings, console.browser()).outputs(
        {report.incident_id}, want=2, settle=1
    )
    assigned = events[-1]
    assert isinstance(assigned, IncidentAssigned)
    assert (assigned.owner, assigned.previous_owner, assigned.actor) == (colleague, None, me)


async def on_hold(
    console: Console, report: IncidentReported, until: datetime
) -> tuple[httpx.AsyncClient, str]:
    """The report triaged and put on hold until ``until`` by a staff member, whose browser
    (not yet opened) and the incident's API path are returned."""
    _, browser = await console.signed_in()
    await triaged(console, report)
    path = f"/console/api/v1/incidents/{report.incident_id}"
    body = {"reason": "wacht op beelden van de gemeente", "resume_at": until.isoformat()}
    async with console.browser() as once:
        once.cookies = browser.cookies
        held = await once.post(f"{path}/hold", json=body, headers=ORIGIN)
    assert held.status_code == 200, held.text
    return browser, path


async def test_a_hold_is_taken_up_again_by_itself_when_its_resume_time_comes(
    console: Console,
) -> None:
    report = reported("Wacht op beelden van de camera bij het station", hint="vandalisme")
    browser, path = await on_hold(console, report, datetime.now(UTC) + timedelta(seconds=2))
    async with browser:

        async def resumed() -> bool:
            return (await browser.get(path)).json()["status"] == "triaged"

        await eventually(resumed)  # the service's own timer loop
        view = (await browser.get(path)).json()

    assert view["resume_at"] is None
    assert (view["history"][-1]["kind"], view["history"][-1]["actor"]) == ("resumed", "system")
    events = await Stack(console.settings, console.browser()).outputs(
        {report.incident_id}, want=3, settle=1
    )
    changes = [
        (e.old_status, e.new_status, e.actor)
        for e in events
        if isinstance(e, IncidentStatusChanged)
    ]
    assert changes[-1] == ("on_hold", "triaged", "system")


async def test_two_triage_instances_resume_a_hold_and_raise_a_missed_deadline_once(
    console: Console,
) -> None:
    report = reported("Kapotte lantaarnpaal, wacht op de gemeente", hint="vandalisme")
    later = datetime.now(UTC) + timedelta(hours=1)
    browser, path = await on_hold(console, report, later)
    async with browser:
        handle_by = datetime.fromisoformat((await browser.get(path)).json()["handle_by"])

    url = console.settings.database_url.get_secret_value()
    pools = [await create_pool(url, "triage") for _ in range(2)]
    try:
        # Two instances' rounds at once, each with a clock past the resume time.
        await asyncio.gather(
            *(timers.resume_due(p, console.settings, later + timedelta(seconds=1)) for p in pools)
        )
        assert await history(console, report.incident_id, "resumed") == ["system"]
        past = max(handle_by, later) + timedelta(seconds=1)
        for _ in range(2):  # and again: the deadline was raised already
            await asyncio.gather(*(timers.raise_missed(p, console.settings, past) for p in pools))
        assert await history(console, report.incident_id, "deadline missed") == ["system"]
    finally:
        for p in pools:
            await p.close()

    events = await Stack(console.settings, console.browser()).outputs(
        {report.incident_id}, want=4, settle=2
    )
    (missed,) = [e for e in events if isinstance(e, IncidentDeadlineMissed)]
    assert (missed.handle_by, missed.status) == (handle_by, "triaged")
    resumed = [e for e in events if isinstance(e, IncidentStatusChanged) and e.actor == "system"]
    assert [(e.old_status, e.new_status) for e in resumed] == [("on_hold", "triaged")]


async def test_a_missed_handle_by_deadline_pages_the_escalation_target_once(
    settings: Settings, receiver: Receiver, smtp_server: tuple[object, int]
) -> None:
    wijkagent = "politie.wijkagent.WK039201"  # its chain: the meldkamer, then the ovd
    incident = story(settings)
    async with running(make_spec(notify_config(smtp_server[1])), settings):
        await webhook(settings, receiver, wijkagent, [generate_secret()])
        await webhook(settings, receiver, "politie.meldkamer", [generate_secret()])
        decided = incident.triaged("hic.woninginbraak", "P3", {wijkagent: Profile.FULL})
        await incident.publish(incident.reported, decided)
        await receiver.wait(wijkagent)
        missed = incident.later(
            IncidentDeadlineMissed, handle_by=decided.handle_by, priority="P3", status="triaged"
        )
        repeated = missed.model_copy(update={"event_id": uuid.uuid4()})
        await incident.publish(missed, missed, repeated)  # a redelivery, and a repeat
        (page,) = await receiver.wait("politie.meldkamer")
        async with database(settings) as conn:
            ids = [missed.event_id, repeated.event_id]
            await eventually(
                lambda: conn.fetchval(
                    "SELECT count(*) = 2 FROM inbox WHERE event_id = ANY($1)", ids
                )
            )
            pages = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE incident_id = $1 AND recipient = $2",
                incident.incident_id,
                "politie.meldkamer",
            )
    assert pages == 1
    assert page.json["kind"] == "alert"
    assert page.json["update_reason"].startswith("Afhandeltermijn verstreken")
    assert len(receiver.of(wijkagent)) == 1  # the wijkagent itself is not paged again
