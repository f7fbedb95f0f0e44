"""High impact crimes against a year before (issue #17), through the real broker and database.

The programme's yardstick: burglaries, robberies and violence per wijk per month, against the
same month a year earlier. November 2026 in Oude Stad: six burglaries and robberies, three a
year before; two in Meerwijk, none before; vandalism is no high impact crime.
Ops see the exact numbers; every other role sees them suppressed like every count.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from schemas.timeutil import AMSTERDAM
from tests.integration.test_analytics import (
    Analytics,
    analytics,  # noqa: F401 (a fixture)
    caught_up,
    incident,
    publish,
)
from tests.support import eventually

pytestmark = pytest.mark.integration

OUDE_STAD, MEERWIJK = "WK039201", "WK039221"


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 21, 0, tzinfo=AMSTERDAM)


async def test_high_impact_crimes_per_wijk_per_month_against_a_year_before(
    analytics: Analytics,  # noqa: F811 (the fixture)
) -> None:
    script = [
        *(incident(at(2026, 11, d), "BU03920102", "hic.woninginbraak") for d in (2, 5, 9, 14)),
        *(incident(at(2026, 11, d), "BU03920103", "hic.straatroof") for d in (20, 27)),
        *(incident(at(2025, 11, d), "BU03920102", "hic.woninginbraak") for d in (3, 18, 25)),
        *(incident(at(2026, 11, d), "BU03922102", "hic.overval") for d in (11, 12)),
        *(incident(at(2026, 11, d), "BU03920102", "vandalisme") for d in (1, 2, 3)),
        incident(at(2026, 10, 30), "BU03920102", "hic.geweld"),
    ]
    await publish(analytics.settings, [e for i in script for e in i.events])
    await eventually(lambda: caught_up(analytics.settings), within=60)

    view = await analytics.json("/v1/hic", period="2026-11")
    assert view["exact"] and set(view["categories"]) == {
        "hic.woninginbraak",
        "hic.overval",
        "hic.straatroof",
        "hic.geweld",
    }
    wijken = {w["code"]: w for w in view["wijken"]}
    assert len(wijken) == 21
    (centre,) = wijken[OUDE_STAD]["months"]
    assert (centre["month"], centre["count"], centre["year_before"], centre["trend_percent"]) == (
        "2026-11",
        6,
        3,
        100.0,
    )
    (meerwijk,) = wijken[MEERWIJK]["months"]
    assert (meerwijk["count"], meerwijk["year_before"], meerwijk["trend_percent"]) == (2, 0, None)
    (city,) = view["city"]["months"]
    assert (city["count"], city["year_before"]) == (8, 3)

    # A quarter: each month against its own month a year before.
    quarter = await analytics.json("/v1/hic", period="2026-Q4")
    months = {m["month"]: m for m in {w["code"]: w for w in quarter["wijken"]}[OUDE_STAD]["months"]}
    assert [(m, months[m]["count"]) for m in sorted(months)] == [
        ("2026-10", 1),
        ("2026-11", 6),
        ("2026-12", 0),
    ]

    # Other roles: the same view, small counts suppressed as in every other view.
    shown = await analytics.json("/v1/hic", role="triage", period="2026-11")
    assert not shown["exact"]
    wijken = {w["code"]: w["months"][0] for w in shown["wijken"]}
    assert wijken[MEERWIJK]["count"] == "<5"
    assert wijken[OUDE_STAD]["year_before"] == "<5"
    assert wijken[OUDE_STAD]["trend_percent"] is None
    refused = await analytics.get("/v1/hic", role="triage", period="30d")
    assert refused.status_code == 403
    window = await analytics.get("/v1/hic", period="30d")
    assert window.status_code == 422
