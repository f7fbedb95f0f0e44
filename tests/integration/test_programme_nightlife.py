"""The hospitality association's nightly summary (issue #17), with the real broker and database.

On a Saturday night in the centre, nightlife nuisance is reported on the Grote Markt (twice,
in one hour), in the Smedestraat and by a point near the station; one report is about the
Zijlweg outside the centre and one is vandalism. The morning after, horeca.khn gets one
signed message: counts per street and hour, no text, no place, no reporter.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import uuid4

import pytest

from schemas.envelope import encode
from schemas.events import IncidentReported, IncidentTriaged, Location
from schemas.examples import EXAMPLES
from schemas.timeutil import AMSTERDAM
from schemas.topics import INCIDENT_EVENTS
from services.common.settings import Settings
from services.notify import nightlife
from services.notify.service import make_spec
from services.notify.webhooks import generate_secret
from tests.integration.test_notify import Receiver, notify_config, verified, webhook
from tests.integration.test_programme import receiver  # noqa: F401 (a fixture)
from tests.support import eventually, produce, running
from tools.ports import free_port

pytestmark = pytest.mark.integration


def saturday_weeks_ago(weeks: int) -> date:
    """A Saturday evening old enough that the running loop leaves its night alone."""
    today = datetime.now(AMSTERDAM).date()
    return today - timedelta(days=(today.weekday() - 5) % 7 + 7 * weeks)


def reported_and_triaged(
    at: datetime, category: str, location: Location, description: str
) -> list[Any]:
    incident = uuid4()
    reported = EXAMPLES[IncidentReported].model_copy(
        update={
            "event_id": uuid4(),
            "incident_id": incident,
            "occurred_at": at,
            "recorded_at": at,
            "description": description,
            "location": location,
        }
    )
    triaged = EXAMPLES[IncidentTriaged].model_copy(
        update={
            "event_id": uuid4(),
            "incident_id": incident,
            "occurred_at": at,
            "recorded_at": at,
            "category": category,
            "priority": "P3",
            "buurt_code": location.buurt_code,
            "wijk_code": location.wijk_code,
            "recipients": (),
        }
    )
    return [reported, triaged]


def place(buurt: str, address: str | None = None, point: bool = False) -> Location:
    return Location(
        address=address,
        lat=52.3874 if point else None,
        lon=4.6376 if point else None,
        buurt_code=buurt,
        wijk_code=f"WK{buurt[2:8]}",
        resolution="point" if point else "buurt",
        inside_haarlem=True,
    )


async def test_the_morning_after_horeca_gets_counts_per_street_and_hour_only(
    settings: Settings,
    receiver: Receiver,  # noqa: F811 (the fixture)
) -> None:
    evening = saturday_weeks_ago(2)

    def at(hour: int, minute: int) -> datetime:
        day = evening if hour >= 12 else evening + timedelta(days=1)
        return datetime.combine(day, time(hour, minute), tzinfo=AMSTERDAM)

    shouting = "Dronken groep schreeuwt en schopt tegen fietsen, een van hen heet Kevin"
    events = [
        *reported_and_triaged(
            at(23, 10), "uitgaansoverlast", place("BU03920102", "Grote Markt 13"), shouting
        ),
        *reported_and_triaged(
            at(23, 40), "uitgaansoverlast", place("BU03920102", "grote markt 2, Haarlem"), shouting
        ),
        *reported_and_triaged(
            at(1, 5), "uitgaansoverlast", place("BU03920102", "Smedestraat 27"), shouting
        ),
        *reported_and_triaged(
            at(2, 30), "uitgaansoverlast", place("BU03920101", point=True), shouting
        ),
        *reported_and_triaged(
            at(0, 15), "uitgaansoverlast", place("BU03921501", "Zijlweg 101"), shouting
        ),
        *reported_and_triaged(at(0, 20), "vandalisme", place("BU03920102", "Grote Markt 1"), "x"),
        *reported_and_triaged(
            at(21, 30), "uitgaansoverlast", place("BU03920102", "Grote Markt 13"), shouting
        ),
    ]
    async with running(make_spec(notify_config(free_port())), settings) as (app, _client):
        key = generate_secret()
        await webhook(settings, receiver, nightlife.RECIPIENT, [key])
        messages = [encode(e) for e in events]
        await produce(
            settings,
            settings.topic(INCIDENT_EVENTS.name),
            [(m.key, m.value, list(m.headers)) for m in messages],
        )
        runtime = app.state.service["runtime"]
        notify = runtime.extras["notify"]
        async with runtime.pool.acquire() as conn:

            async def all_triaged() -> bool:
                found = await conn.fetchval("SELECT count(triaged) FROM incidents")
                return bool(found == len(events) // 2)

            await eventually(all_triaged, within=30)
            async with nightlife.webhook_client(settings, notify.config) as client:
                sent = await nightlife.send_summary(conn, notify, client, evening)
                again = await nightlife.send_summary(conn, notify, client, evening)
    assert sent is not None and sent.outcome == "delivered"
    assert again is None  # one message per night
    # The running service's own loop may send the summary of the night before today's morning
    # (what the clock says now) too: this test's night is the one it chose.
    (message,) = [
        m for m in receiver.of(nightlife.RECIPIENT) if m.json.get("night") == evening.isoformat()
    ]
    verified(message, key)
    assert message.json == {
        "type": "nightlife.summary",
        "night": evening.isoformat(),
        "area": {"wijk_code": "WK039201", "category": "uitgaansoverlast"},
        "total": 4,
        "counts": [
            {"street": "Grote Markt", "hour": "23:00", "count": 2},
            {"street": "Smedestraat", "hour": "01:00", "count": 1},
            {"street": "buurt Stationsbuurt", "hour": "02:00", "count": 1},
        ],
    }
    for secret in ("Kevin", "Dronken", "Grote Markt 13", "52.38"):
        assert secret not in message.body.decode(), secret
