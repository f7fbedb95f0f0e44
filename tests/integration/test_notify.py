"""Notify against the real broker and PostgreSQL, a real local HTTP receiver (verifying every
request with the ``standardwebhooks`` library, as a partner would) and a real SMTP server.

Timers are shortened through NotifySettings (retry base, escalation time scale), never by
sleeping through production windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
import uvicorn
from aiokafka.structs import ConsumerRecord
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typer.testing import CliRunner

from schemas.envelope import decode, encode
from schemas.events import (
    Event,
    IncidentMerged,
    IncidentPriorityChanged,
    IncidentReported,
    IncidentResolved,
    IncidentTriaged,
    NotificationAcknowledged,
    NotificationDelivered,
    NotificationDispatched,
    NotificationEscalated,
    NotificationFailed,
    Recipient,
    Reporter,
)
from schemas.examples import EXAMPLES
from schemas.taxonomy import Priority, Profile
from schemas.topics import INCIDENT_EVENTS, NOTIFICATION_EVENTS
from services.common.consumer import Incoming
from services.common.pii import seal
from services.common.settings import Settings, get_settings
from services.common.staff import add_staff
from services.notify.cap import CAP_MEDIA_TYPE, validate_cap
from services.notify.cli import recipients_app
from services.notify.handlers import take
from services.notify.registry import Format, set_channel
from services.notify.service import make_spec
from services.notify.settings import NotifySettings
from services.notify.webhooks import generate_secret
from tests.integration.test_service_runner import service_env
from tests.support import connected, eventually, produce, read_topic, running
from tools.ports import free_port

pytestmark = pytest.mark.integration

DESCRIPTION = "Rookontwikkeling uit de kelder van het pand, bewoners staan buiten."
ADDRESS = "Grote Markt 2, Haarlem"
LAT, LON = 52.3812, 4.6366
NAME, PHONE, EMAIL = "Fenna Koster", "06-98765432", "fenna@example.org"
REPORTER = Reporter(name=NAME, phone=PHONE, email=EMAIL)
BASE_URL = "http://notify.test"

# --- a partner's webhook endpoint ------------------------------------------------------------


@dataclass
class Answer:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Endpoints ``/hooks/<name>``; each answers its script first, then 204."""

    base: str = ""
    received: dict[str, list[Received]] = field(default_factory=dict)
    scripts: dict[str, list[Answer]] = field(default_factory=dict)

    async def hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.body()
        self.received.setdefault(name, []).append(
            Received(time.monotonic(), dict(request.headers), body)
        )
        script = self.scripts.get(name)
        answer = script.pop(0) if script else Answer()
        await asyncio.sleep(answer.delay)
        return Response(status_code=answer.status, headers=answer.headers)

    def url(self, code: str) -> str:
        return f"{self.base}/hooks/{slug(code)}"

    def of(self, code: str) -> list[Received]:
        return self.received.get(slug(code), [])

    async def wait(self, code: str, count: int = 1, within: float = 30.0) -> list[Received]:
        await eventually(lambda: len(self.of(code)) >= count, within=within)
        return self.of(code)


def slug(code: str) -> str:
    """A recipient code as a path segment (a kind's placeholder braces dropped)."""
    return code.replace("{", "").replace("}", "")


@pytest.fixture(scope="module")
async def receiver_server() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/hooks/{name}", receiver.hook, methods=["POST"])])
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, within=10)
    receiver.base = f"http://127.0.0.1:{port}"
    yield receiver
    server.should_exit = True
    await task


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    receiver_server.received.clear()
    receiver_server.scripts.clear()
    return receiver_server


# --- an SMTP server --------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture(scope="module")
async def smtp_server() -> AsyncIterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(mailbox, hostname="localhost", loop=loop), "127.0.0.1", 0
    )
    yield mailbox, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
def mailbox(smtp_server: tuple[Mailbox, int]) -> Mailbox:
    smtp_server[0].messages.clear()
    return smtp_server[0]


def notify_config(smtp_port: int, **changes: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 1.0,
        "retry_max_attempts": 4,
        "http_timeout_seconds": 2.0,
        "smtp_timeout_seconds": 2.0,
        "lease_seconds": 5.0,
        "poll_seconds": 0.1,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_starttls": False,  # the test's relay on loopback
        "public_base_url": BASE_URL,
    }
    values.update(changes)
    return NotifySettings(**values)


# --- events ----------------------------------------------------------------------------------


@dataclass
class Story:
    """One incident: its report and the events that follow, produced to incident-events."""

    settings: Settings
    reported: IncidentReported
    incident_id: UUID = field(init=False)

    def __post_init__(self) -> None:
        self.incident_id = self.reported.incident_id

    def triaged(
        self,
        category: str,
        priority: Priority,
        recipients: dict[str, Profile],
        *,
        report_count: int = 1,
        acknowledge_within: timedelta = timedelta(minutes=2),
    ) -> IncidentTriaged:
        now = datetime.now(UTC)
        return IncidentTriaged.model_validate(
            {
                **EXAMPLES[IncidentTriaged].model_dump(),
                "event_id": uuid4(),
                "incident_id": self.incident_id,
                "occurred_at": now,
                "recorded_at": now,
                "category": category,
                "priority": priority,
                "top_categories": (),
                "acknowledge_by": self.reported.recorded_at + acknowledge_within,
                "handle_by": now + timedelta(hours=1),
                "recipients": [Recipient(code=c, profile=p) for c, p in recipients.items()],
                "report_count": report_count,
            }
        )

    def later(self, cls: type[Event], **fields: Any) -> Event:
        now = datetime.now(UTC)
        return cls.model_validate(
            {
                "event_id": uuid4(),
                "incident_id": self.incident_id,
                "occurred_at": now,
                "recorded_at": now,
                "producer": "triage",
                **fields,
            }
        )

    async def publish(self, *events: Event) -> None:
        messages = [encode(e) for e in events]
        await produce(
            self.settings,
            self.settings.topic(INCIDENT_EVENTS.name),
            [(m.key, m.value, list(m.headers)) for m in messages],
        )


def story(settings: Settings, **report: Any) -> Story:
    now = datetime.now(UTC)
    reported = IncidentReported.model_validate(
        {
            **EXAMPLES[IncidentReported].model_dump(),
            "event_id": uuid4(),
            "incident_id": uuid4(),
            "occurred_at": now - timedelta(minutes=1),
            "recorded_at": now,
            "description": DESCRIPTION,
            "location": {
                "lat": LAT,
                "lon": LON,
                "address": ADDRESS,
                "buurt_code": "BU03920102",
                "wijk_code": "WK039201",
                "resolution": "point",
                "inside_haarlem": True,
            },
            "reporter_sealed": seal(REPORTER.model_dump_json(exclude_none=True)),
            **report,
        }
    )
    return Story(settings, reported)


async def notifications(
    settings: Settings,
    until: Callable[[list[Event]], bool],
    *,
    within: float = 30.0,
    settle: float = 0.0,
) -> list[Event]:
    """The events on notification-events once ``until`` holds for them."""
    records = await read_topic(
        settings,
        settings.topic(NOTIFICATION_EVENTS.name),
        until=lambda rs: until([decode(r.headers, r.value) for r in rs]),
        within=within,
        settle=settle,
    )
    return [decode(r.headers, r.value) for r in records]


def of(events: list[Event], cls: type[Event], recipient: str | None = None) -> list[Any]:
    return [
        e
        for e in events
        if isinstance(e, cls) and (recipient is None or getattr(e, "recipient", None) == recipient)
    ]


def database(settings: Settings) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
    return connected(settings, "notify")


async def webhook(
    settings: Settings,
    receiver: Receiver,
    code: str,
    secrets: list[str],
    fmt: Format = "json",
    email: str | None = None,
) -> None:
    async with database(settings) as conn:
        await set_channel(
            conn,
            code,
            webhook_url=receiver.url(code),
            secrets=secrets,
            webhook_format=fmt,
            email=email,
        )


def verified(received: Received, secret: str) -> None:
    """The request verifies as a Standard Webhooks request (raises otherwise)."""
    Webhook(secret).verify(received.body, received.headers, json_parse=False)


def text_of(message: EmailMessage) -> str:
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    return f"{plain.get_content()}\n{html.get_content()}"


# --- the tests -------------------------------------------------------------------------------


async def test_a_p1_fire_reaches_the_fire_brigade_as_cap_and_the_control_room_as_signed_json(
    settings: Settings, receiver: Receiver, mailbox: Mailbox, smtp_server: tuple[Mailbox, int]
) -> None:
    fire, old_key, new_key = generate_secret(), generate_secret(), generate_secret()
    coordinator = "coordinator@buurtpreventie.example"
    async with running(make_spec(notify_config(smtp_server[1])), settings):
        await webhook(settings, receiver, "brandweer", [fire], fmt="cap")
        # Two active secrets: the control room is rotating its key.
        await webhook(settings, receiver, "politie.meldkamer", [new_key, old_key])
        async with database(settings) as conn:
            # The kind's channel serves every buurt's coordinators.
            await set_channel(conn, "buurtpreventie.{buurt}", email=coordinator)
        incident = story(settings)
        triaged = incident.triaged(
            "brand",
            "P1",
            {
                "brandweer": Profile.FULL,
                "politie.meldkamer": Profile.FULL,
                "buurtpreventie.BU03920102": Profile.COARSE,
            },
        )
        await incident.publish(incident.reported)
        await incident.publish(triaged)

        (cap,) = await receiver.wait("brandweer")
        (control,) = await receiver.wait("politie.meldkamer")
        await eventually(lambda: mailbox.to(coordinator))

        # The fire brigade: a valid CAP 1.2 Alert, signed.
        assert cap.headers["content-type"] == CAP_MEDIA_TYPE
        validate_cap(cap.body)
        verified(cap, fire)
        assert b"<msgType>Alert</msgType>" in cap.body
        assert b"<urgency>Immediate</urgency>" in cap.body
        assert b"<severity>Severe</severity>" in cap.body
        assert DESCRIPTION.encode() in cap.body and PHONE.encode() in cap.body

        # The control room: signed JSON, verifiable with either of its secrets.
        verified(control, new_key)
        verified(control, old_key)
        payload = control.json
        assert payload["kind"] == "alert" and payload["profile"] == "full"
        assert payload["report"]["description"] == DESCRIPTION
        assert payload["report"]["reporter"]["phone"] == PHONE
        assert payload["ack_url"].startswith(f"{BASE_URL}/ack/")
        assert control.headers["webhook-id"] == payload["message_id"]

        # The coarse coordinator: no description, no coordinates, no address, no reporter.
        (mail,) = mailbox.to(coordinator)
        content = text_of(mail)
        assert "brand" in str(mail["Subject"])
        assert "Binnenstad" in content
        for secret in (
            DESCRIPTION,
            "Rookontwikkeling",
            str(LAT),
            str(LON),
            "Grote Markt 2",
            NAME,
            PHONE,
            EMAIL,
            "gAAAAA",
        ):
            assert secret not in content, secret
        # Informed, not asked to act: no acknowledgement link.
        assert "/ack/" not in content

        events = await notifications(settings, lambda es: len(of(es, NotificationDelivered)) >= 3)
        delivered = {e.recipient: e for e in of(events, NotificationDelivered)}
        assert set(delivered) == {"brandweer", "politie.meldkamer", "buurtpreventie.BU03920102"}
        assert delivered["brandweer"].channel == "cap"
        assert delivered["buurtpreventie.BU03920102"].channel == "email"
        dispatched = {e.recipient: e for e in of(events, NotificationDispatched)}
        assert dispatched["brandweer"].cap_msg_type == "Alert"
        assert dispatched["politie.meldkamer"].webhook_id == payload["message_id"]
        assert dispatched["buurtpreventie.BU03920102"].profile == "coarse"

        # Resolved: a CAP Cancel referencing the alert, a cancel to everyone else.
        identifier = dispatched["brandweer"].cap_identifier
        await incident.publish(incident.later(IncidentResolved, outcome="handled"))
        _, cancel = await receiver.wait("brandweer", 2)
        validate_cap(cancel.body)
        assert b"<msgType>Cancel</msgType>" in cancel.body
        assert f"veilig@haarlem.nl,{identifier},".encode() in cancel.body
        _, closing = await receiver.wait("politie.meldkamer", 2)
        assert closing.json["kind"] == "cancel" and "ack_url" not in closing.json
        await eventually(lambda: len(mailbox.to(coordinator)) == 2)
        subject = str(mailbox.to(coordinator)[1]["Subject"]).strip()
        assert subject.startswith("[Veilig Haarlem] Ingetrokken")


async def test_a_receiver_failing_three_times_gets_the_fourth_attempt_with_the_same_webhook_id(
    settings: Settings, receiver: Receiver, smtp_server: tuple[Mailbox, int]
) -> None:
    key = generate_secret()
    receiver.scripts["politie.meldkamer"] = [
        Answer(503),
        Answer(429, {"Retry-After": "1"}),
        Answer(500),
        Answer(200),
    ]
    async with running(make_spec(notify_config(smtp_server[1])), settings):
        await webhook(settings, receiver, "politie.meldkamer", [key])
        incident = story(settings)
        await incident.publish(incident.reported)
        await incident.publish(
            incident.triaged("hic.overval", "P1", {"politie.meldkamer": Profile.FULL})
        )
        attempts = await receiver.wait("politie.meldkamer", 4)
        events = await notifications(settings, lambda es: bool(of(es, NotificationDelivered)))

    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    assert len({a.body for a in attempts}) == 1  # the same bytes every time
    for attempt in attempts:
        verified(attempt, key)
    # Retry-After: 1 was honoured although the backoff alone would have been shorter.
    assert attempts[2].at - attempts[1].at >= 0.95
    failed = of(events, NotificationFailed)
    assert [(f.attempt, f.status_code, f.final) for f in failed] == [
        (1, 503, False),
        (2, 429, False),
        (3, 500, False),
    ]
    assert all(f.next_attempt_at is not None for f in failed)
    (delivered,) = of(events, NotificationDelivered)
    assert (delivered.attempt, delivered.status_code) == (4, 200)
    assert [d.attempt for d in of(events, NotificationDispatched)] == [1, 2, 3, 4]


async def test_a_silent_receiver_and_a_recipient_without_channel_end_failed_and_visible(
    settings: Settings, receiver: Receiver, smtp_server: tuple[Mailbox, int]
) -> None:
    receiver.scripts["handhaving"] = [Answer(204, delay=3.0)] * 3
    config = notify_config(smtp_server[1], http_timeout_seconds=0.5, retry_max_attempts=3)
    async with running(make_spec(config), settings) as (_app, client):
        await webhook(settings, receiver, "handhaving", [generate_secret()])
        async with database(settings) as conn:
            token = await add_staff(conn, "ops.notify", "ops")
        incident = story(settings)
        await incident.publish(incident.reported)
        await incident.publish(
            incident.triaged(
                "drugsoverlast",
                "P3",
                {"handhaving": Profile.OPERATIONAL, "horeca.khn": Profile.COARSE},
            )
        )
        events = await notifications(
            settings, lambda es: len([f for f in of(es, NotificationFailed) if f.final]) >= 2
        )
        finals = {f.recipient: f for f in of(events, NotificationFailed) if f.final}
        assert finals["handhaving"].attempt == 3
        assert "timeout" in finals["handhaving"].error.lower()
        assert finals["horeca.khn"].attempt == 3
        assert "no usable channel" in finals["horeca.khn"].error
        assert not of(events, NotificationDelivered)
        # Nothing was sent where there is no channel.
        assert not of(events, NotificationDispatched, "horeca.khn")

        auth = {"Authorization": f"Bearer {token}"}
        listed = await client.get("/v1/deliveries", params={"status": "failed"}, headers=auth)
        assert listed.status_code == 200, listed.text
        rows = {row["recipient"]: row for row in listed.json()}
        assert set(rows) == {"handhaving", "horeca.khn"}
        assert rows["handhaving"]["attempts"] == 3 and rows["handhaving"]["next_attempt_at"] is None
        detail = await client.get(
            f"/v1/deliveries/{rows['handhaving']['message_id']}", headers=auth
        )
        assert [a["outcome"] for a in detail.json()["history"]] == ["retry", "retry", "retry"]
        assert (await client.get("/v1/deliveries")).status_code == 401


async def test_a_gone_endpoint_is_disabled_and_its_messages_go_by_email(
    settings: Settings, receiver: Receiver, mailbox: Mailbox, smtp_server: tuple[Mailbox, int]
) -> None:
    receiver.scripts["zorg.veiligheidshuis"] = [Answer(410)]
    address = "crisisdienst@zorg.example"
    async with running(make_spec(notify_config(smtp_server[1])), settings):
        await webhook(
            settings, receiver, "zorg.veiligheidshuis", [generate_secret()], email=address
        )
        incident = story(settings)
        await incident.publish(incident.reported)
        await incident.publish(
            incident.triaged("verward-gedrag", "P2", {"zorg.veiligheidshuis": Profile.FULL})
        )
        events = await notifications(
            settings, lambda es: bool(of(es, NotificationDelivered, "zorg.veiligheidshuis"))
        )
        (gone,) = of(events, NotificationFailed, "zorg.veiligheidshuis")
        # Not final: the very message that met the 410 goes by e-mail at once (chaos run:
        # the messages in flight when an endpoint disappeared were lost).
        assert (gone.status_code, gone.final, gone.attempt) == (410, False, 1)
        (delivered,) = of(events, NotificationDelivered, "zorg.veiligheidshuis")
        assert (delivered.channel, delivered.attempt) == ("email", 2)
        assert not of(events, NotificationEscalated)  # it arrived: nothing to escalate
        await eventually(lambda: mailbox.to(address))
        (alert,) = mailbox.to(address)
        async with database(settings) as conn:
            disabled = await conn.fetchval(
                "SELECT webhook_disabled_at FROM channels WHERE code = 'zorg.veiligheidshuis'"
            )
        assert disabled is not None

        await incident.publish(
            incident.later(
                IncidentPriorityChanged,
                old_priority="P2",
                new_priority="P1",
                acknowledge_by=datetime.now(UTC) + timedelta(minutes=2),
                handle_by=datetime.now(UTC) + timedelta(hours=1),
                reason="wapen gezien",
            )
        )
        await eventually(lambda: len(mailbox.to(address)) == 2)
        update = mailbox.to(address)[1]
        assert update is not alert
        # A long subject is folded onto a continuation line; readers strip the fold.
        assert str(update["Subject"]).strip().startswith("[Veilig Haarlem] Update: P1")
        assert "wapen gezien" in text_of(update)
        assert len(receiver.of("zorg.veiligheidshuis")) == 1  # the gone endpoint is left alone


async def test_reclassification_updates_stayers_alerts_newcomers_and_tells_the_dropped(
    settings: Settings, receiver: Receiver, smtp_server: tuple[Mailbox, int]
) -> None:
    keys = {
        code: generate_secret() for code in ("handhaving", "politie.wijkagent.{wijk}", "jeugd.team")
    }
    async with running(make_spec(notify_config(smtp_server[1])), settings):
        for code, key in keys.items():
            await webhook(settings, receiver, code, [key])
        wijkagent = "politie.wijkagent.{wijk}"  # the kind's endpoint serves WK039201
        incident = story(settings)
        await incident.publish(incident.reported)
        await incident.publish(
            incident.triaged(
                "drugsoverlast",
                "P3",
                {"handhaving": Profile.OPERATIONAL, "politie.wijkagent.WK039201": Profile.FULL},
            )
        )
        await receiver.wait("handhaving")
        await receiver.wait(wijkagent)
        await incident.publish(
            incident.triaged(
                "jeugdcriminaliteit",
                "P2",
                {"politie.wijkagent.WK039201": Profile.FULL, "jeugd.team": Profile.OPERATIONAL},
            )
        )
        _, dropped = await receiver.wait("handhaving", 2)
        _, update = await receiver.wait(wijkagent, 2)
        (alert,) = await receiver.wait("jeugd.team")
        assert dropped.json["kind"] == "cancel"
        assert "niet langer voor u" in dropped.json["update_reason"]
        assert update.json["kind"] == "update" and update.json["priority"] == "P2"
        assert "jeugdcriminaliteit" in update.json["update_reason"]
        assert (
            alert.json["kind"] == "alert" and alert.json["category"]["code"] == "jeugdcriminaliteit"
        )

        # A duplicate report merged in: an update with the new count, no second alert set.
        duplicate = uuid4()
        await incident.publish(
            incident.later(IncidentMerged, duplicate_incident_id=duplicate, report_count=2)
        )
        _, _, merged = await receiver.wait(wijkagent, 3)
        _, merged_team = await receiver.wait("jeugd.team", 2)
        for message in (merged, merged_team):
            assert message.json["kind"] == "update"
            assert message.json["triage"]["report_count"] == 2
        # A late decision about the duplicate alerts nobody.
        late = story(settings, incident_id=duplicate)
        await late.publish(late.reported)
        await late.publish(
            late.triaged("jeugdcriminaliteit", "P2", {"politie.wijkagent.WK039201": Profile.FULL})
        )
        await asyncio.sleep(2.0)
        assert len(receiver.of("handhaving")) == 2
        assert len(receiver.of(wijkagent)) == 3
        assert len(receiver.of("jeugd.team")) == 2
        for code, key in keys.items():
            for received in receiver.of(code):
                verified(received, key)


async def test_decisions_taken_in_one_batch_each_see_what_the_one_before_did(
    settings: Settings, receiver: Receiver, smtp_server: tuple[Mailbox, int]
) -> None:
    """Notify takes a run of decisions a few statements at a time; an incident decided twice
    in one batch gets an alert and then an update, not two alerts (nor a failed batch: the
    batch is handed to the handler directly, so no retry one record at a time could hide it)."""
    keys = {code: generate_secret() for code in ("handhaving", "jeugd.team")}
    async with running(make_spec(notify_config(smtp_server[1])), settings) as (app, _):
        runtime = app.state.service["runtime"]
        for code, key in keys.items():
            await webhook(settings, receiver, code, [key])
        first, second = story(settings), story(settings)
        batch = [
            first.reported,
            second.reported,
            first.triaged("vandalisme", "P3", {"handhaving": Profile.OPERATIONAL}),
            second.triaged("vandalisme", "P4", {"handhaving": Profile.OPERATIONAL}),
            first.triaged(
                "jeugdoverlast",
                "P2",
                {"handhaving": Profile.OPERATIONAL, "jeugd.team": Profile.OPERATIONAL},
            ),
        ]
        record = ConsumerRecord(INCIDENT_EVENTS.name, 0, 0, 0, 0, None, b"", None, 0, 0, [])
        async with runtime.pool.acquire() as conn, conn.transaction():
            await take(conn, runtime.extras["notify"], [Incoming(record, e) for e in batch])
        told = await receiver.wait("handhaving", 3)
        (team,) = await receiver.wait("jeugd.team")
        await asyncio.sleep(1.0)
        assert len(receiver.of("handhaving")) == 3
        kinds = sorted((m.json["incident_id"], m.json["kind"]) for m in told)
        assert kinds == sorted(
            [
                (str(first.incident_id), "alert"),
                (str(first.incident_id), "update"),
                (str(second.incident_id), "alert"),
            ]
        )
        (update,) = [m for m in told if m.json["kind"] == "update"]
        assert update.json["priority"] == "P2" and "jeugdoverlast" in update.json["update_reason"]
        assert team.json["kind"] == "alert" and team.json["incident_id"] == str(first.incident_id)
        for code, key in keys.items():
            for received in receiver.of(code):
                verified(received, key)


async def test_an_unacknowledged_p1_escalates_on_time_even_across_a_restart_and_stops_on_ack(
    settings: Settings, receiver: Receiver, smtp_server: tuple[Mailbox, int]
) -> None:
    # P1's 2 minutes become 4.8 seconds: room for the first alert on a busy machine.
    scale = 0.04
    config = notify_config(smtp_server[1], escalation_time_scale=scale, escalation_max_levels=5)
    spec = make_spec(config)
    wijkagent = "politie.wijkagent.WK039201"
    incident = story(settings)
    async with running(spec, settings):
        await webhook(settings, receiver, wijkagent, [generate_secret()])
        await webhook(settings, receiver, "politie.meldkamer", [generate_secret()])
        triaged = incident.triaged("hic.woninginbraak", "P1", {wijkagent: Profile.FULL})
        await incident.publish(incident.reported)
        await incident.publish(triaged)
        (alert,) = await receiver.wait(wijkagent)
    # Notify is down when the deadline passes; the timer lives in PostgreSQL.
    deadline = incident.reported.recorded_at + timedelta(seconds=120 * scale)
    await asyncio.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)
    assert not receiver.of("politie.meldkamer")

    async with running(spec, settings) as (_app, client):
        (page,) = await receiver.wait("politie.meldkamer")
        assert page.json["kind"] == "alert"
        assert "Escalatie" in page.json["update_reason"]
        token = page.json["ack_url"].rpartition("/")[2]
        acked = await client.post(
            f"/v1/acknowledgements/{token}", json={"acknowledged_by": "centralist 12"}
        )
        assert acked.status_code == 200, acked.text
        assert acked.json()["recipient"] == "politie.meldkamer"
        acked_at = datetime.now(UTC)

        again = await client.post(f"/v1/acknowledgements/{token}")
        assert again.status_code == 409
        assert "acknowledged" in again.json()["detail"]
        assert (await client.get(f"/ack/{token}")).status_code == 409

        events = await notifications(
            settings, lambda es: bool(of(es, NotificationAcknowledged)), settle=3.0
        )
    escalated = of(events, NotificationEscalated)
    assert escalated, "no escalation"
    first = escalated[0]
    assert (first.recipient, first.level, first.escalated_to) == (
        wijkagent,
        1,
        ("politie.meldkamer",),
    )
    assert first.reason == "not_acknowledged"
    assert first.deadline is not None and abs((first.deadline - deadline).total_seconds()) < 0.1
    assert first.message_id == UUID(alert.json["message_id"])
    # On time: right after the restart, not a full window later.
    assert first.occurred_at - deadline < timedelta(seconds=5)
    # Stopped by the acknowledgement: nothing after it, and no more pages.
    assert all(e.occurred_at < acked_at for e in escalated)
    assert len(receiver.of("politie.meldkamer")) == len(escalated)
    (ack,) = of(events, NotificationAcknowledged)
    assert (ack.recipient, ack.acknowledged_by) == ("politie.meldkamer", "centralist 12")
    assert ack.message_id == UUID(page.json["message_id"])


async def test_the_link_in_a_message_asks_before_it_acknowledges(
    settings: Settings, receiver: Receiver, smtp_server: tuple[Mailbox, int]
) -> None:
    async with running(make_spec(notify_config(smtp_server[1])), settings) as (_app, client):
        await webhook(settings, receiver, "brandweer", [generate_secret()])
        incident = story(settings)
        await incident.publish(incident.reported)
        await incident.publish(incident.triaged("brand", "P1", {"brandweer": Profile.FULL}))
        (alert,) = await receiver.wait("brandweer")
        path = alert.json["ack_url"].removeprefix(BASE_URL)

        page = await client.get(path)  # what a mail scanner's prefetch does
        assert page.status_code == 200 and '<form method="post"' in page.text
        assert (await client.get(path)).status_code == 200  # still not acknowledged

        done = await client.post(path, data={"naam": "bevelvoerder TS 12-1"})
        assert done.status_code == 200 and "Ontvangst bevestigd" in done.text
        assert (await client.post(path)).status_code == 409
        assert (await client.get("/ack/" + "x" * 43)).status_code == 404
        events = await notifications(settings, lambda es: bool(of(es, NotificationAcknowledged)))
    (ack,) = of(events, NotificationAcknowledged)
    assert (ack.recipient, ack.acknowledged_by) == ("brandweer", "bevelvoerder TS 12-1")
    async with database(settings) as conn:
        stopped = await conn.fetchval(
            "SELECT stop_reason FROM escalations WHERE incident_id = $1", incident.incident_id
        )
    assert stopped == "acknowledged"


# --- a real process, killed mid-retry --------------------------------------------------------


async def wait_ready(url: str, proc: subprocess.Popen[bytes], within: float = 60.0) -> None:
    async with httpx.AsyncClient() as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            assert proc.poll() is None, f"notify exited early with {proc.returncode}"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=2.0)).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise AssertionError(f"{url} not ready within {within}s")


@contextlib.contextmanager
def notify_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.notify"], env=env, stdout=out, stderr=out
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def test_killing_notify_mid_retry_loses_no_delivery(
    settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    key = generate_secret()
    # Attempt 1 fails; attempt 2 is still in flight when the process is killed.
    receiver.scripts["politie.meldkamer"] = [Answer(503), Answer(204, delay=4.0), Answer(200)]
    port = free_port()
    env = {
        **service_env(settings, notify=port),
        "NOTIFY_RETRY_BASE_SECONDS": "1",
        "NOTIFY_RETRY_MAX_SECONDS": "2",
        "NOTIFY_HTTP_TIMEOUT_SECONDS": "2",
        "NOTIFY_SMTP_TIMEOUT_SECONDS": "2",
        "NOTIFY_LEASE_SECONDS": "3",
        "NOTIFY_POLL_SECONDS": "0.2",
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "notify.log"
    ready = f"http://127.0.0.1:{port}/health/ready"
    incident = story(settings)
    with notify_process(env, log) as first:
        await wait_ready(ready, first)
        await webhook(settings, receiver, "politie.meldkamer", [key])
        await incident.publish(incident.reported)
        await incident.publish(
            incident.triaged("hic.straatroof", "P1", {"politie.meldkamer": Profile.FULL})
        )
        await receiver.wait("politie.meldkamer", 2)
        first.kill()  # SIGKILL: no graceful anything
        first.wait()
    with notify_process(env, log) as second:
        await wait_ready(ready, second)
        attempts = await receiver.wait("politie.meldkamer", 3, within=30)
        events = await notifications(settings, lambda es: bool(of(es, NotificationDelivered)))
    assert len({a.headers["webhook-id"] for a in attempts}) == 1, log.read_text()
    assert len({a.body for a in attempts}) == 1
    for attempt in attempts:
        verified(attempt, key)
    (delivered,) = of(events, NotificationDelivered)
    # Attempt 2 died with the process; its lease ran out and attempt 3 went through.
    assert delivered.attempt == 3
    async with database(settings) as conn:
        row = await conn.fetchrow(
            "SELECT status, attempts FROM deliveries WHERE incident_id = $1", incident.incident_id
        )
    assert dict(row) == {"status": "delivered", "attempts": 3}


# --- the operator CLI ------------------------------------------------------------------------


def test_recipients_cli_sets_and_lists_channels_without_ever_printing_a_secret(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url.get_secret_value())
    get_settings.cache_clear()
    runner = CliRunner()
    old, new = generate_secret(), generate_secret()
    try:
        result = runner.invoke(
            recipients_app,
            [
                "set",
                "politie.meldkamer",
                "--webhook-url",
                "https://meldkamer.example/hook",
                "--secret",
                new,
                "--secret",
                old,
                "--format",
                "json",
            ],
        )
        assert result.exit_code == 0, result.output
        bad = runner.invoke(
            recipients_app,
            ["set", "horeca.khn", "--webhook-url", "https://x.example", "--secret", "nope"],
        )
        assert bad.exit_code == 1 and "whsec_" in bad.output
        cap = runner.invoke(
            recipients_app, ["set", "horeca.khn", "--email", "khn@example.org", "--format", "cap"]
        )
        assert cap.exit_code == 1 and "full-profile" in cap.output
        everyone = runner.invoke(
            recipients_app,
            ["set-all", "--webhook-url", "http://127.0.0.1:9999/hook", "--secret", old],
        )
        assert everyone.exit_code == 0, everyone.output
        listed = runner.invoke(recipients_app, ["list", "--json"])
        table = runner.invoke(recipients_app, ["list"])
    finally:
        get_settings.cache_clear()
    rows = {row["code"]: row for row in json.loads(listed.stdout)}
    assert len(rows) == 15
    assert rows["politie.meldkamer"]["secrets"] == 1  # set-all replaced the two
    assert rows["brandweer"]["format"] == "cap"  # the registry's default for the fire brigade
    assert rows["horeca.khn"]["format"] == "json"
    assert rows["politie.wijkagent.{wijk}"]["escalation"] == ["politie.meldkamer", "politie.ovd"]
    for output in (result.output, everyone.output, listed.output, table.output):
        for secret in (old, new, old.removeprefix("whsec_"), new.removeprefix("whsec_")):
            assert secret not in output


async def test_a_changed_channel_is_seen_at_once_by_the_cache(settings: Settings) -> None:
    """Channels are cached with their secrets opened; `veilig recipients set` (any change to
    the table) empties the cache of every notify process through the trigger's NOTIFY."""
    async with (
        running(make_spec(notify_config(free_port())), settings) as (app, _client),
        database(settings) as conn,
    ):
        cache = app.state.service["runtime"].extras["notify"].channels
        await eventually(lambda: cache.live, within=10, every=0.05)  # its listener is connected
        first, second = generate_secret(), generate_secret()
        signalled = cache.generation
        await set_channel(conn, "handhaving", webhook_url="http://127.0.0.1:1/a", secrets=[first])
        # The trigger's signal arrives on its own time; one that came after the lookup below
        # would rightly empty the cache again.
        await eventually(lambda: cache.generation > signalled, within=5, every=0.02)
        channel = await cache.get(conn, "handhaving")
        assert channel is not None and channel.secrets == (first,)
        # A change behind the trigger's back is not seen: the channel is served from memory.
        async with conn.transaction():
            await conn.execute("ALTER TABLE channels DISABLE TRIGGER channels_changed")
            await conn.execute("UPDATE channels SET webhook_url = 'http://127.0.0.1:1/x'")
            await conn.execute("ALTER TABLE channels ENABLE TRIGGER channels_changed")
        assert (await cache.get(conn, "handhaving")).webhook_url.endswith("/a")  # type: ignore[union-attr]
        await set_channel(conn, "handhaving", webhook_url="http://127.0.0.1:1/b", secrets=[second])

        async def fresh() -> bool:
            found = await cache.get(conn, "handhaving")
            return found is not None and found.webhook_url == "http://127.0.0.1:1/b"

        await eventually(fresh, within=5, every=0.05)
        assert (await cache.get(conn, "handhaving")).secrets == (second,)  # type: ignore[union-attr]
