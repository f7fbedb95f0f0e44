"""Wijkveiligheidsplannen (issue #17) as a story against the real broker and database.

Meerwijk's residents make youth nuisance a priority. An operator records their plan with
`veilig plans set`; triage, running all along, raises the next youth-nuisance report in
Meerwijk (and only there) one step. The change is an event on ``safety-plans`` and an audit
row; the wijk report shows how the plan's priorities are handled. An admin ends the plan
through the API and the raise stops, again without a restart.
"""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from typer.testing import CliRunner, Result

from schemas.envelope import decode
from schemas.events import IncidentTriaged, SafetyPlanAdopted, SafetyPlanEnded
from schemas.timeutil import AMSTERDAM
from schemas.topics import SAFETY_PLANS
from services.analytics.service import SPEC as ANALYTICS
from services.cli import app as veilig
from services.common.settings import Settings, get_settings
from services.common.staff import Role, add_staff
from tests.integration.test_programme import Programme, incident_events, programme
from tests.support import eventually, read_topic, running

pytestmark = pytest.mark.integration

MEERWIJK, OUDE_STAD = "WK039221", "WK039201"
YOUTH = "Jongeren hangen rond bij de ingang van de flat en vallen bewoners lastig"


def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """`veilig ...` against the test's database and topics (in a thread: it runs its own
    event loop)."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url.get_secret_value())
    monkeypatch.setenv("TOPIC_PREFIX", settings.topic_prefix)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(veilig, list(args))
    finally:
        get_settings.cache_clear()


async def staff_token(settings: Settings, username: str, role: Role) -> dict[str, str]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return {"Authorization": f"Bearer {await add_staff(conn, username, role)}"}
    finally:
        await conn.close()


async def youth_report(stage: Programme, buurt: str, hours_ago: float = 1) -> UUID:
    # Buurt codes, not points: reports without a point are never merged automatically.
    return await stage.report(
        "politie",
        description=YOUTH,
        category_hint="jeugdoverlast",
        occurred_at=(datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(),
        location={"buurt_code": buurt},
    )


async def triaged(settings: Settings, incident_id: UUID) -> IncidentTriaged:
    events = await incident_events(settings, incident_id, IncidentTriaged)
    (decision,) = [e for e in events if isinstance(e, IncidentTriaged)]
    return decision


async def test_a_wijks_safety_plan_raises_its_priorities_live_and_shows_in_the_wijk_report(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    today = datetime.now(AMSTERDAM).date()
    async with (
        programme(settings, notify=False) as (stage, _),
        running(ANALYTICS, settings) as (_, analytics),
    ):
        assert stage.triage is not None
        admin = await staff_token(settings, "r.admin", "admin")
        ops = await staff_token(settings, "o.ops", "ops")
        triage_staff = await staff_token(settings, "t.staff", "triage")

        # No plans ship: before Meerwijk adopts one, youth nuisance there is P3.
        before = await triaged(settings, await youth_report(stage, "BU03922101", hours_ago=3))
        assert before.priority == "P3"

        done = await asyncio.to_thread(
            cli,
            settings,
            monkeypatch,
            "plans",
            "set",
            MEERWIJK,
            "--category",
            "jeugdoverlast",
            "--category",
            "woonoverlast",
            "--starts",
            str(today - timedelta(days=30)),
            "--adopted-by",
            "Wijkraad Meerwijk",
            "--adopted-on",
            str(today - timedelta(days=45)),
        )
        assert done.exit_code == 0, done.output
        assert "version 1" in done.output

        # Triage was not restarted: the next report in Meerwijk is raised, with the reason.
        raised = await triaged(settings, await youth_report(stage, "BU03922102"))
        assert raised.priority == "P2"
        assert f"jeugdoverlast is in the safety plan of {MEERWIJK}: P3 -> P2" in raised.reasons
        elsewhere = await triaged(settings, await youth_report(stage, "BU03920102"))
        assert (elsewhere.wijk_code, elsewhere.priority) == (OUDE_STAD, "P3")

        # Every staff role may read the plans; only admin changes them.
        listed = await stage.triage.get("/v1/safety-plans", headers=triage_staff)
        assert listed.status_code == 200, listed.text
        (plan,) = listed.json()
        assert (plan["wijk_code"], plan["categories"], plan["version"]) == (
            MEERWIJK,
            ["jeugdoverlast", "woonoverlast"],
            1,
        )
        assert plan["runs_today"] and plan["adopted_by"] == "Wijkraad Meerwijk"
        refused = await stage.triage.post(
            f"/v1/safety-plans/{MEERWIJK}/end", json={}, headers=triage_staff
        )
        assert refused.status_code == 403
        invalid = await stage.triage.put(
            "/v1/safety-plans/WK039299",
            json={
                "categories": ["overig"],
                "starts_on": str(today),
                "adopted_by": "x",
                "adopted_on": str(today),
            },
            headers=admin,
        )
        assert invalid.status_code == 422
        assert "not a wijk of Haarlem" in invalid.json()["detail"]
        assert "'overig' has no priority to raise" in invalid.json()["detail"]

        # The wijk report (ops: exact numbers) shows the plan's priorities being handled.
        async def report_counts() -> dict[str, Any] | None:
            found = await analytics.get(f"/v1/reports/wijk/{MEERWIJK}", headers=ops)
            assert found.status_code == 200, found.text
            body: dict[str, Any] = found.json()
            plan = body["plan"]
            if plan is None or plan["priorities"][0]["count"] != 2:
                return None
            return body

        await eventually(report_counts, within=30)
        body = await report_counts()
        assert body is not None
        plan = body["plan"]
        assert (plan["categories"], plan["adopted_by"]) == (
            ["jeugdoverlast", "woonoverlast"],
            "Wijkraad Meerwijk",
        )
        youth, residential = plan["priorities"]
        assert (youth["code"], youth["count"], youth["previous"], youth["open"]) == (
            "jeugdoverlast",
            2,
            0,
            2,
        )
        assert youth["acknowledge"]["n"] == 0 and youth["acknowledge"]["p50"] is None
        assert (residential["code"], residential["count"], residential["open"]) == (
            "woonoverlast",
            0,
            0,
        )
        # Other roles get the same report with small counts suppressed.
        shown = await analytics.get(f"/v1/reports/wijk/{MEERWIJK}", headers=triage_staff)
        youth_shown = shown.json()["plan"]["priorities"][0]
        assert (youth_shown["count"], youth_shown["open"]) == ("<5", "<5")
        csv = await analytics.get(f"/v1/reports/wijk/{MEERWIJK}.csv", headers=ops)
        assert "plan_priority,jeugdoverlast,jeugdoverlast,2,0" in csv.text
        assert "plan_open,jeugdoverlast,jeugdoverlast,2" in csv.text

        # An admin ends the plan yesterday: the raise stops, again without a restart.
        ended = await stage.triage.post(
            f"/v1/safety-plans/{MEERWIJK}/end",
            json={"ends_on": str(today - timedelta(days=1)), "reason": "nieuw plan in de maak"},
            headers=admin,
        )
        assert ended.status_code == 200, ended.text
        assert ended.json()["version"] == 2
        # Ending it again conflicts with the plan as it stands; a wijk without a plan has none.
        for wijk, status in ((MEERWIJK, 409), ("WK039201", 404)):
            again = await stage.triage.post(f"/v1/safety-plans/{wijk}/end", json={}, headers=admin)
            assert again.status_code == status, again.text
            assert again.headers["content-type"] == "application/problem+json"
        numeric = await stage.triage.put(
            f"/v1/safety-plans/{MEERWIJK}",
            json={"categories": ["jeugdoverlast"], "starts_on": 0, "adopted_by": "x",
                  "adopted_on": str(today)},
            headers=admin,
        )  # fmt: skip
        assert numeric.status_code == 422  # a date is YYYY-MM-DD, not seconds since 1970
        # Happening now: an hour ago may still be yesterday, when the plan ran (after midnight).
        after = await triaged(settings, await youth_report(stage, "BU03922103", hours_ago=0))
        assert after.priority == "P3"

        # Every change is an event on safety-plans, keyed by the wijk, and an audit row.
        records = await read_topic(
            settings,
            settings.topic(SAFETY_PLANS.name),
            until=lambda rs: len(rs) >= 2,
            within=30,
        )
    adopted, end = (decode(r.headers, r.value) for r in records)
    assert isinstance(adopted, SafetyPlanAdopted) and isinstance(end, SafetyPlanEnded)
    assert {r.key for r in records} == {MEERWIJK.encode()}
    assert (adopted.version, adopted.categories, adopted.actor) == (
        1,
        ("jeugdoverlast", "woonoverlast"),
        f"cli:{getpass.getuser()}",
    )
    assert (end.version, end.ends_on, end.actor) == (2, today - timedelta(days=1), "r.admin")
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        audit = await conn.fetch(
            "SELECT actor, role, action, detail->>'wijk_code' AS wijk FROM triage.audit "
            "WHERE action LIKE 'safety-plan.%' ORDER BY id"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in audit] == [
        (adopted.actor, "operator", "safety-plan.adopted", MEERWIJK),
        ("r.admin", "admin", "safety-plan.ended", MEERWIJK),
    ]
