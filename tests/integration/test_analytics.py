"""Analytics against the real broker and database: exact counts and percentiles from a scripted
stream, redelivery changes nothing, events of two topics in any order, a rebuild from offset 0
equals the live projections table by table, small-cell suppression on the API and the CSV."""

from __future__ import annotations

import csv
import io
import math
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import geo
from schemas.envelope import encode
from schemas.events import (
    Event,
    IncidentAcknowledged,
    IncidentMerged,
    IncidentReported,
    IncidentResolved,
    IncidentTriaged,
    Location,
    NotificationDelivered,
    NotificationDispatched,
    NotificationFailed,
)
from schemas.examples import EXAMPLES
from schemas.timeutil import AMSTERDAM
from schemas.topics import INCIDENT_EVENTS, NOTIFICATION_EVENTS
from services.analytics.rebuild import rebuild
from services.analytics.service import SPEC
from services.common.kafka_security import client_options
from services.common.settings import Settings
from services.common.staff import Role, add_staff
from tests.support import committed_offsets, eventually, produce, running

pytestmark = pytest.mark.integration

MARCH = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # a Monday; March 2025 is all winter time
TOPICS = (INCIDENT_EVENTS, NOTIFICATION_EVENTS)


# --- a scripted stream ------------------------------------------------------------------------


def _event(cls: type[Event], incident: uuid.UUID, at: datetime, **fields: Any) -> Event:
    """An event like the contract's example of ``cls``, about ``incident`` at ``at``."""
    return EXAMPLES[cls].model_copy(
        update={
            "event_id": uuid.uuid4(),
            "incident_id": incident,
            "occurred_at": at,
            "recorded_at": at,
            **fields,
        }
    )


@dataclass
class Incident:
    """One incident of the script and the events that tell its story."""

    id: uuid.UUID
    received: datetime
    buurt: str
    category: str
    priority: str
    partner: str
    events: list[Event] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # measure -> from receipt

    @property
    def wijk(self) -> str:
        return geo.wijk_of(self.buurt)


def incident(
    received: datetime,
    buurt: str,
    category: str,
    *,
    priority: str = "P3",
    partner: str = "politie",
    triage: float | None = 30.0,
    delivery: float | None = None,
    acknowledgement: float | None = None,
    resolution: float | None = None,
    failed_attempts: int = 0,
) -> Incident:
    """An incident with its events; each given duration is seconds from receipt."""
    it = Incident(uuid.uuid4(), received, buurt, category, priority, partner)
    durations = {
        "triage": triage,
        "first_delivery": delivery,
        "acknowledgement": acknowledgement,
        "resolution": resolution,
    }
    it.seconds = {name: float(s) for name, s in durations.items() if s is not None}
    at = {name: received + timedelta(seconds=s) for name, s in it.seconds.items()}
    area = geo.locate(buurt_code=buurt)
    it.events.append(
        _event(
            IncidentReported,
            it.id,
            received,
            occurred_at=received - timedelta(minutes=5),
            partner=partner,
            category_hint=None if triage else category,  # untriaged: the partner's hint
            location=Location(buurt_code=buurt, wijk_code=area.wijk_code, resolution="buurt"),
        )
    )
    if "triage" in at:
        it.events.append(
            _event(
                IncidentTriaged,
                it.id,
                at["triage"],
                category=category,
                priority=priority,
                buurt_code=buurt,
                wijk_code=area.wijk_code,
                acknowledge_by=received + timedelta(minutes=15),
                handle_by=received + timedelta(hours=8),
            )
        )
    message = uuid.uuid4()
    if "first_delivery" in at:
        send = at["first_delivery"] - timedelta(seconds=failed_attempts + 1)
        it.events.append(_event(NotificationDispatched, it.id, send, message_id=message))
        for attempt in range(1, failed_attempts + 1):
            failed_at = send + timedelta(seconds=attempt - 0.5)
            it.events.append(
                _event(NotificationFailed, it.id, failed_at, message_id=message, attempt=attempt)
            )
        it.events.append(
            _event(
                NotificationDelivered,
                it.id,
                at["first_delivery"],
                message_id=message,
                attempt=failed_attempts + 1,
            )
        )
    if "acknowledgement" in at:
        it.events.append(
            _event(IncidentAcknowledged, it.id, at["acknowledgement"], message_id=message)
        )
    if "resolution" in at:
        it.events.append(_event(IncidentResolved, it.id, at["resolution"]))
    return it


def merge(first: Incident, duplicate: Incident, at: datetime) -> Event:
    return _event(IncidentMerged, first.id, at, duplicate_incident_id=duplicate.id, report_count=2)


def percentile_cont(values: Sequence[float], q: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def publish(settings: Settings, events: Sequence[Event]) -> None:
    """Produce ``events`` in the given order, each to its own topic."""
    for topic in TOPICS:
        messages = [
            (m.key, m.value, list(m.headers))
            for m in (encode(e) for e in events)
            if m.topic == topic.name
        ]
        if messages:
            await produce(settings, settings.topic(topic.name), messages)


async def caught_up(settings: Settings) -> bool:
    """Whether analytics committed every offset of both topics."""
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        for topic in TOPICS:
            name = settings.topic(topic.name)
            partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
            ends = await consumer.end_offsets(partitions)
            committed = await committed_offsets(
                settings, settings.group_id("analytics", topic.name)
            )
            if any(end and committed.get(tp, -1) < end for tp, end in ends.items()):
                return False
        return True
    finally:
        await consumer.stop()


async def tables(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """The projections, row by row (the inbox by event id: its timestamps are local)."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return {
            "inbox": [
                tuple(r)
                for r in await conn.fetch("SELECT event_id FROM analytics.inbox ORDER BY 1")
            ],
            "events": [
                tuple(r)
                for r in await conn.fetch("SELECT * FROM analytics.events ORDER BY event_id")
            ],
            "incident_facts": [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT * FROM analytics.incident_facts ORDER BY incident_id"
                )
            ],
            # A rebuild drops indexes for its bulk load and builds them again.
            "indexes": [
                tuple(r)
                for r in await conn.fetch(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'analytics' "
                    "ORDER BY 1"
                )
            ],
        }
    finally:
        await conn.close()


async def staff_tokens(settings: Settings, *roles: Role) -> dict[Role, str]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        return {role: await add_staff(conn, f"{role}.tester", role) for role in roles}
    finally:
        await conn.close()


@dataclass
class Analytics:
    client: httpx.AsyncClient
    settings: Settings
    tokens: dict[Role, str]

    async def get(self, path: str, role: Role = "ops", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return await self.client.get(path, params=params, headers=headers)

    async def json(self, path: str, role: Role = "ops", **params: Any) -> Any:
        response = await self.get(path, role, **params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def analytics(settings: Settings) -> AsyncIterator[Analytics]:
    async with running(SPEC, settings) as (_app, client):
        tokens = await staff_tokens(settings, "ops", "triage", "admin")
        yield Analytics(client, settings, tokens)


# --- the script -------------------------------------------------------------------------------

CENTRE, STATION, BAKENES = "BU03920102", "BU03920101", "BU03920103"
SCHRIJVERSBUURT = "BU03921501"


def march_script() -> tuple[list[Incident], list[Event]]:
    """Twelve incidents in March 2025 with known times, one merged duplicate."""
    rng = random.Random(7)
    incidents = []
    for i in range(10):
        incidents.append(
            incident(
                MARCH + timedelta(hours=i * 7),
                CENTRE if i % 2 else SCHRIJVERSBUURT,
                "vandalisme" if i < 6 else "hic.woninginbraak",
                priority="P4" if i < 6 else "P2",
                partner="politie" if i % 3 else "handhaving",
                triage=rng.randint(5, 600),
                delivery=rng.randint(700, 900),
                acknowledgement=rng.randint(1_000, 3_000) if i < 8 else None,
                resolution=rng.randint(4_000, 40_000) if i < 5 else None,
                failed_attempts=i % 3,
            )
        )
    first, duplicate = (
        incidents[6],
        incident(
            MARCH + timedelta(hours=42, minutes=3), CENTRE, "hic.woninginbraak", priority="P2"
        ),
    )
    untriaged = incident(MARCH + timedelta(days=5), STATION, "overig", triage=None)
    events = [e for it in (*incidents, duplicate, untriaged) for e in it.events]
    events.append(merge(first, duplicate, MARCH + timedelta(hours=43)))
    return [*incidents, untriaged], events


def out_of_order(events: list[Event]) -> list[Event]:
    """Notifications before the incidents they are about, each topic shuffled."""
    rng = random.Random(11)
    notifications = [e for e in events if e.topic is NOTIFICATION_EVENTS]
    incidents = [e for e in events if e.topic is INCIDENT_EVENTS]
    rng.shuffle(notifications)
    rng.shuffle(incidents)
    return notifications + incidents


async def test_a_scripted_stream_gives_exactly_the_expected_numbers(
    analytics: Analytics,
) -> None:
    incidents, events = march_script()
    await publish(analytics.settings, out_of_order(events))
    await eventually(lambda: caught_up(analytics.settings), within=60)

    # Counts per wijk and category: the duplicate is not an incident of its own.
    wijk_counts = Counter((it.wijk, it.category) for it in incidents)
    for category in ("vandalisme", "hic.woninginbraak", "overig"):
        body = await analytics.json(
            "/v1/incidents/areas", period="2025-03", level="wijk", category=category
        )
        shown = {a["code"]: a["count"] for a in body["areas"]}
        expected = {w: n for (w, c), n in wijk_counts.items() if c == category}
        assert {k: v for k, v in shown.items() if v} == expected, category
        assert body["total"] == sum(expected.values())
    # ... per week, day and hour for ops: local time, the buckets that overlap the period.
    weeks = await analytics.json("/v1/incidents/series", period="2025-03", step="week")
    per_week = Counter(
        f"{(it.received - timedelta(minutes=5)).astimezone(AMSTERDAM):%G-W%V}" for it in incidents
    )
    assert {p["label"]: p["count"] for p in weeks["points"] if p["count"]} == per_week
    hours = await analytics.json(
        "/v1/incidents/series", period="2025-03-10", step="hour", area="WK039201"
    )
    assert len(hours["points"]) == 24
    assert sum(p["count"] for p in hours["points"]) == sum(
        1
        for it in incidents
        if it.wijk == "WK039201"
        and (it.received - timedelta(minutes=5)).astimezone(AMSTERDAM).day == 10
    )
    buurten = await analytics.json("/v1/incidents/areas", period="2025-Q1", level="buurt")
    assert {a["code"]: a["count"] for a in buurten["areas"] if a["count"]} == Counter(
        it.buurt for it in incidents
    )

    # Percentiles of each measure, exactly as percentile_cont computes them.
    times = await analytics.json("/v1/response-times", period="2025-03")
    for measure in ("triage", "first_delivery", "acknowledgement", "resolution"):
        values = [it.seconds[measure] for it in incidents if measure in it.seconds]
        got = times["seconds"][measure]
        assert got["n"] == len(values), measure
        for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
            assert got[name] == pytest.approx(percentile_cont(values, q)), (measure, name)

    # Backlog: the unresolved incidents (the duplicate is merged, not open).
    backlog = await analytics.json("/v1/backlog")
    open_incidents = [it for it in incidents if "resolution" not in it.seconds]
    assert backlog["by_priority"]["total"] == len(open_incidents)
    assert backlog["by_priority"]["parts"]["P2"] == 4
    assert backlog["by_status"]["parts"]["acknowledged"] == 3
    assert backlog["by_status"]["parts"]["triaged"] == 2
    assert backlog["by_status"]["parts"]["reported"] == 1

    deliveries = await analytics.json("/v1/deliveries", period="2025-03")
    assert deliveries["outcomes"]["parts"]["delivered"] == 10
    assert deliveries["outcomes"]["parts"]["failed"] == sum(i % 3 for i in range(10))
    volumes = await analytics.json("/v1/partners", period="2025")
    assert volumes["partners"]["parts"] == {"handhaving": 4, "politie": 8}  # duplicate too
    assert volumes["duplicates_merged"] == 1

    # SLA: acknowledged after 15 minutes, or never (those are breached by now).
    sla = await analytics.json("/v1/sla", period="2025-03")
    late = [
        it
        for it in incidents
        if it.seconds.get("acknowledgement", math.inf) > 900 and "triage" in it.seconds
    ]
    assert sla["breached"]["acknowledge"]["total"] == len(late)


async def test_delivering_the_same_events_again_changes_nothing(analytics: Analytics) -> None:
    _, events = march_script()
    await publish(analytics.settings, events)
    await eventually(lambda: caught_up(analytics.settings), within=60)
    before = await tables(analytics.settings)
    assert len(before["events"]) == len(events)

    await publish(analytics.settings, list(reversed(events)))
    await eventually(lambda: caught_up(analytics.settings), within=60)
    assert await tables(analytics.settings) == before


async def test_the_arrival_order_does_not_matter(settings: Settings) -> None:
    _, events = march_script()
    projections = []
    for order in (events, out_of_order(events), list(reversed(events))):
        prefix = f"t{uuid.uuid4().hex[:10]}."
        run = settings.model_copy(
            update={"topic_prefix": prefix, "consumer_group_prefix": f"test-{prefix}"}
        )
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        await conn.execute("DROP SCHEMA IF EXISTS analytics CASCADE")
        await conn.close()
        async with running(SPEC, run):
            await publish(run, order)
            await eventually(lambda run=run: caught_up(run), within=60)
            projections.append(await tables(run))
    assert projections[0]["incident_facts"] == projections[1]["incident_facts"]
    assert projections[0]["incident_facts"] == projections[2]["incident_facts"]
    assert projections[0]["events"] == projections[2]["events"]


async def test_a_rebuild_from_offset_zero_equals_the_live_projections(
    analytics: Analytics,
) -> None:
    _, events = march_script()
    await publish(analytics.settings, out_of_order(events))
    # The log also holds a producer's retry (events twice) and a record that is no event.
    await publish(analytics.settings, events[:5])
    poison = encode(events[0])
    headers = [(k, v) for k, v in poison.headers if k != "ce_id"] + [("ce_id", b"not-it")]
    topic = analytics.settings.topic(INCIDENT_EVENTS.name)
    await produce(analytics.settings, topic, [(poison.key, b"{}", headers)])
    await eventually(lambda: caught_up(analytics.settings), within=60)
    live = await tables(analytics.settings)

    seen: list[tuple[int, int]] = []
    result = await rebuild(analytics.settings, batch=7, progress=lambda d, t: seen.append((d, t)))

    rebuilt = await tables(analytics.settings)
    for table in ("inbox", "events", "incident_facts", "indexes"):
        assert rebuilt[table] == live[table], table
    assert (result.records, result.events, result.invalid) == (len(events) + 6, len(events), 1)
    assert seen[-1] == (len(events) + 6, len(events) + 6)
    assert list(result.phases) == ["prepare", "load", "complete", "swap"]
    assert all(seconds >= 0 for seconds in result.phases.values())

    # The live service goes on in the swapped-in tables.
    later = incident(MARCH + timedelta(days=20), BAKENES, "brand", priority="P1")
    await publish(analytics.settings, later.events)
    await eventually(lambda: caught_up(analytics.settings), within=60)
    after = await tables(analytics.settings)
    assert len(after["events"]) == len(events) + len(later.events)
    assert later.id in {row[0] for row in after["incident_facts"]}


# --- small-cell suppression -------------------------------------------------------------------


def april_script() -> list[Event]:
    """Vandalism in April 2025: 3 in the Stationsbuurt, 12 in the Binnenstad, 6 in Bakenes
    (wijk Oude Stad: 21), and 7 in the Schrijversbuurt."""
    april = datetime(2025, 4, 7, 10, 0, tzinfo=UTC)
    counts = {STATION: 3, CENTRE: 12, BAKENES: 6, SCHRIJVERSBUURT: 7}
    return [
        e
        for buurt, n in counts.items()
        for i in range(n)
        for e in incident(april + timedelta(hours=i), buurt, "vandalisme").events
    ]


def hidden(value: object) -> bool:
    return isinstance(value, str)


def assert_no_single_unknown(total: object, parts: Sequence[object]) -> None:
    """The attack: total minus the visible parts. It must never leave one unknown."""
    unknowns = sum(map(hidden, [total, *parts]))
    assert unknowns != 1, (total, parts)
    assert not any(isinstance(v, int) and 0 < v < 5 for v in [total, *parts])


async def test_small_counts_are_suppressed_consistently_outside_ops(
    analytics: Analytics,
) -> None:
    await publish(analytics.settings, april_script())
    await eventually(lambda: caught_up(analytics.settings), within=60)
    query = {"period": "2025-04", "category": "vandalisme"}

    exact = await analytics.json("/v1/incidents/areas", "ops", level="buurt", **query)
    assert {a["code"]: a["count"] for a in exact["areas"] if a["count"]} == {
        STATION: 3,
        CENTRE: 12,
        BAKENES: 6,
        SCHRIJVERSBUURT: 7,
    }

    for role in ("triage", "admin"):
        buurten = await analytics.json("/v1/incidents/areas", role, level="buurt", **query)
        wijken = await analytics.json("/v1/incidents/areas", role, level="wijk", **query)
        shown = {a["code"]: a["count"] for a in buurten["areas"]}
        assert shown[STATION] == "<5"
        assert shown[CENTRE] == 12
        # Oude Stad is 21 and shown: with only the Stationsbuurt hidden, 21 - 12 - 6 = 3 would
        # give it away, so Bakenes (the smallest visible) is hidden too.
        wijk_shown = {a["code"]: a["count"] for a in wijken["areas"]}
        assert wijk_shown["WK039201"] == 21
        assert shown[BAKENES] == "x"
        for wijk, total in wijk_shown.items():
            parts = [a["count"] for a in buurten["areas"] if a["wijk"] == wijk]
            assert_no_single_unknown(total, parts)
        assert_no_single_unknown(wijken["total"], list(wijk_shown.values()))

        # The same cells in every other view of April: categories, the quarter, the months.
        per_category = await analytics.json(
            "/v1/incidents/categories", role, period="2025-04", area=STATION
        )
        assert per_category["total"] == "<5"
        months = await analytics.json(
            "/v1/incidents/series", role, period="2025", area=BAKENES, category="vandalisme"
        )
        assert {p["label"]: p["count"] for p in months["points"]}["2025-04"] == "x"
        days = await analytics.get("/v1/incidents/series", role, period="2025-04", step="day")
        assert days.status_code == 403

        # The live overview of these roles: the calendar month and the months of the year.
        overview = await analytics.json("/v1/overview", role)
        assert overview["exact"] is False and overview["deliveries_period"][:4].isdigit()
        assert [s["title"][:22] for s in overview["series"]] == ["Incidenten per maand, "]

        # Rolling windows could be subtracted from each other: ops only.
        window = await analytics.get("/v1/incidents/areas", role, period="7d")
        assert window.status_code == 403
        assert window.headers["content-type"] == "application/problem+json"


async def test_the_wijk_report_csv_suppresses_and_resists_subtraction(
    analytics: Analytics,
) -> None:
    await publish(analytics.settings, april_script())
    await eventually(lambda: caught_up(analytics.settings), within=60)

    response = await analytics.get("/v1/reports/wijk/WK039201.csv", "triage", period="2025-04")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    total = next(r for r in rows if r["section"] == "total")
    buurten = [r for r in rows if r["section"] == "top_buurt"]
    categories = {r["code"]: r for r in rows if r["section"] == "category"}
    assert total["count"] == "21" and categories["vandalisme"]["count"] == "21"
    assert {r["code"]: r["count"] for r in buurten} == {CENTRE: "12", STATION: "<5", BAKENES: "x"}
    # Hidden buurten sort last by code, not by their (hidden) size.
    assert [r["code"] for r in buurten] == [CENTRE, STATION, BAKENES]
    counts = [r["count"] for r in rows if r["section"] in ("total", "category", "top_buurt")]
    assert not any(c.isdigit() and 0 < int(c) < 5 for c in counts)
    assert_no_single_unknown(
        int(total["count"]), [int(c) if c.isdigit() else c for c in (r["count"] for r in buurten)]
    )
    # Outside ops, n is a band and fewer than 5 incidents give no percentiles.
    for row in (r for r in rows if r["section"] == "response_time"):
        assert row["name"] in ("n=0", "n=<5", "n=>=5"), row
        assert (row["p50_s"] != "") == (row["name"] == "n=>=5"), row

    exact = await analytics.get("/v1/reports/wijk/WK039201.csv", "ops", period="2025-04")
    exact_buurten = {
        r["code"]: r["count"]
        for r in csv.DictReader(io.StringIO(exact.text))
        if r["section"] == "top_buurt"
    }
    assert exact_buurten == {CENTRE: "12", BAKENES: "6", STATION: "3"}

    page = await analytics.get("/reports/wijk/WK039201", "triage", period="2025-04")
    assert page.status_code == 200 and "&lt;5" in page.text and "Afdrukken" in page.text


async def test_every_route_needs_a_staff_token(analytics: Analytics) -> None:
    for path in ("/v1/backlog", "/v1/overview", "/v1/reports/wijk/WK039201.csv", "/dashboard"):
        response = await analytics.client.get(path)
        assert response.status_code == 401, path
    assert (await analytics.get("/v1/backlog", "triage")).status_code == 200
    assert (await analytics.client.get("/login", params={"token": "vs_x"})).status_code == 401
    login = await analytics.client.get("/login", params={"token": analytics.tokens["admin"]})
    assert login.status_code == 303 and login.headers["location"] == "/dashboard"
    assert "httponly" in login.headers["set-cookie"].lower()
    page = await analytics.client.get("/dashboard")  # the client keeps the cookie
    assert page.status_code == 200 and 'id="map"' in page.text
    assert "https://" not in page.text and "http://" not in page.text.replace(
        "http://www.w3.org", ""
    )
    spec = (await analytics.client.get("/openapi.json")).json()
    assert "/v1/reports/wijk/{wijk}.csv" in spec["paths"]
