"""The demo scenario's programme part holds together: a valid plan that covers the report it
shows, and three neighbour-nuisance reports that make one zorgsignaal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from schemas import geo
from services.triage.plans import parse_plan
from services.triage.prevention import PreventionSettings, Sighting, Spot, zorgsignaal
from tools.demo import load_scenario


def test_the_plan_is_valid_and_covers_the_report_the_demo_shows() -> None:
    scenario = load_scenario()
    today = datetime.now(UTC).date()
    plan = parse_plan(
        {
            "wijk_code": scenario["plan"]["wijk"],
            "categories": scenario["plan"]["categories"],
            "starts_on": today - timedelta(days=30),
            "adopted_by": scenario["plan"]["adopted_by"],
            "adopted_on": today - timedelta(days=45),
        }
    )
    (shown,) = [r for r in scenario["reports"] if r.get("show") == "plan"]
    assert geo.wijk_of(shown["location"]["buurt_code"]) == plan.wijk_code
    assert "verdachte-situatie" in plan.categories  # what the door-handle report is


def test_the_third_report_at_the_door_raises_the_zorgsignaal() -> None:
    reports = [r for r in load_scenario()["reports"] if r.get("category_hint") == "woonoverlast"]
    now = datetime.now(UTC)
    seen = [
        Sighting(
            uuid4(),
            now - timedelta(days=r.get("days_ago", 0)),
            r["category_hint"],
            Spot(r["location"]["lat"], r["location"]["lon"], None),
        )
        for r in reports
    ]
    assert len(seen) == 3
    assert geo.locate(lat=seen[-1].spot.lat, lon=seen[-1].spot.lon).wijk_code == "WK039221"
    signal = zorgsignaal(seen[-1], seen[:-1], [], PreventionSettings())
    assert signal is not None and len(signal.incidents) == 3
