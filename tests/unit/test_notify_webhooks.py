"""Standard Webhooks delivery against a real HTTP receiver on 127.0.0.1.

The receiver (Starlette under uvicorn, in this process) verifies every request with the
``standardwebhooks`` library, as a partner would, and can be told how to answer the next
requests: failures, throttling with Retry-After, gone, slow."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from schemas.taxonomy import Profile
from services.notify.retry import DeliveryResult
from services.notify.targets import TargetPolicy, WebhookClient
from services.notify.webhooks import (
    classify_response,
    generate_secret,
    parse_retry_after,
    send_webhook,
    sign,
)
from tests.support import serving
from tools.ports import free_port

BODY = '{"kind":"alert","category":{"label":"woninginbraak"},"note":"vóór 23:45"}'.encode()
MESSAGE_ID = "c3e1f5a7-9b2d-4c6e-8f0a-1b2c3d4e5f60"
NOW = datetime(2025, 3, 28, 22, 41, 5, tzinfo=UTC)


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """A partner's webhook endpoint that knows ``secret`` and answers ``script`` first."""

    url: str = ""
    secret: str = ""
    script: list[Answer] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        self.received.append(Received(headers, body, verified))
        answer = self.script.pop(0) if self.script else Answer(204 if verified else 401)
        await asyncio.sleep(answer.delay)
        return Response(status_code=answer.status, headers=answer.headers)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver.hook, methods=["POST"])])
    async with serving(app) as port:
        receiver.url = f"http://127.0.0.1:{port}/hook"
        yield receiver


@pytest.fixture
async def receiver(server: Receiver) -> AsyncIterator[Receiver]:
    server.secret = generate_secret()
    server.script.clear()
    server.received.clear()
    yield server


@pytest.fixture
async def client() -> AsyncIterator[WebhookClient]:
    async with WebhookClient(TargetPolicy(local_development=True), max_response_bytes=4096) as c:
        yield c


async def post(
    client: WebhookClient,
    url: str,
    secrets: list[str],
    *,
    limit: float = 5.0,
    traceparent: str | None = None,
) -> DeliveryResult:
    return await send_webhook(
        client,
        url,
        BODY,
        message_id=MESSAGE_ID,
        secrets=secrets,
        content_type="application/json",
        profile=Profile.FULL,
        traceparent=traceparent,
        timeout=limit,
    )


async def test_a_signed_webhook_verifies_with_the_library(
    receiver: Receiver, client: WebhookClient
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    result = await post(client, receiver.url, [receiver.secret], traceparent=traceparent)
    assert result.outcome == "delivered" and result.status_code == 204
    [got] = receiver.received
    assert got.verified
    assert got.body == BODY
    assert got.headers["webhook-id"] == MESSAGE_ID
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 10
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["traceparent"] == traceparent


async def test_no_traceparent_unless_given(receiver: Receiver, client: WebhookClient) -> None:
    await post(client, receiver.url, [receiver.secret])
    assert "traceparent" not in receiver.received[0].headers


async def test_rotation_signs_with_every_active_secret(
    receiver: Receiver, client: WebhookClient
) -> None:
    old, new = generate_secret(), receiver.secret
    result = await post(client, receiver.url, [old, new])
    assert result.outcome == "delivered"
    [got] = receiver.received
    assert got.verified  # the receiver knows only the new secret
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    # ... and a receiver still on the old secret verifies the same message too.
    Webhook(old).verify(got.body, got.headers)


async def test_a_receiver_with_another_secret_rejects(
    receiver: Receiver, client: WebhookClient
) -> None:
    result = await post(client, receiver.url, [generate_secret()])
    assert not receiver.received[0].verified
    assert result.outcome == "failed" and result.status_code == 401


async def test_retries_send_the_same_webhook_id_and_body(
    receiver: Receiver, client: WebhookClient
) -> None:
    receiver.script = [Answer(500), Answer(503)]
    outcomes = [(await post(client, receiver.url, [receiver.secret])).outcome for _ in range(3)]
    assert outcomes == ["retry", "retry", "delivered"]
    assert all(r.verified for r in receiver.received)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1


async def test_throttled_with_retry_after_seconds(
    receiver: Receiver, client: WebhookClient
) -> None:
    receiver.script = [Answer(429, {"Retry-After": "7"})]
    result = await post(client, receiver.url, [receiver.secret])
    assert (result.outcome, result.status_code, result.retry_after) == ("retry", 429, 7.0)
    assert result.error == "HTTP 429 Too Many Requests"


async def test_unavailable_with_retry_after_date(receiver: Receiver, client: WebhookClient) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    receiver.script = [Answer(503, {"Retry-After": format_datetime(later, usegmt=True)})]
    result = await post(client, receiver.url, [receiver.secret])
    assert result.outcome == "retry" and result.status_code == 503
    assert result.retry_after is not None and 110 <= result.retry_after <= 121


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(410, "gone"), (400, "failed"), (404, "failed"), (408, "retry"), (502, "retry")],
)
async def test_status_classification_against_the_receiver(
    receiver: Receiver, client: WebhookClient, status: int, outcome: str
) -> None:
    receiver.script = [Answer(status)]
    result = await post(client, receiver.url, [receiver.secret])
    assert (result.outcome, result.status_code) == (outcome, status)
    assert result.retry_after is None


async def test_a_slow_receiver_times_out_and_is_retried(
    receiver: Receiver, client: WebhookClient
) -> None:
    receiver.script = [Answer(204, delay=1.5)]
    result = await post(client, receiver.url, [receiver.secret], limit=0.3)
    assert result.outcome == "retry"
    assert result.status_code is None
    assert str(result.error).startswith("timeout")


async def test_connection_refused_is_retried(client: WebhookClient) -> None:
    port = free_port()  # free a moment ago: nobody listens
    result = await post(client, f"http://127.0.0.1:{port}/hook", [generate_secret()])
    assert result.outcome == "retry"
    assert "ClientConnectorError" in str(result.error)


async def test_a_bad_url_fails_for_good(client: WebhookClient) -> None:
    result = await post(client, "ftp://127.0.0.1/hook", [generate_secret()])
    assert result.outcome == "failed"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (301, "failed"),  # redirects are not followed
        (401, "failed"),
        (408, "retry"),
        (410, "gone"),
        (422, "failed"),
        (429, "retry"),
        (500, "retry"),
        (504, "retry"),
    ],
)
def test_classify_response(status: int, outcome: str) -> None:
    assert classify_response(status, "", "30", NOW).outcome == outcome


def test_retry_after_only_for_retries() -> None:
    assert classify_response(429, "Too Many Requests", "30", NOW).retry_after == 30.0
    assert classify_response(410, "Gone", "30", NOW).retry_after is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Fri, 28 Mar 2025 22:43:05 GMT", 120.0),
        ("Fri, 28 Mar 2025 22:00:00 GMT", 0.0),  # in the past: now
        ("Friday, 28-Mar-25 22:42:05 GMT", 60.0),  # RFC 850, obsolete but allowed
        ("-5", None),
        ("soon", None),
        ("1.5", None),
        ("²", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_generate_secret() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert generate_secret() != secret


def test_signature_is_the_hmac_of_id_timestamp_and_body() -> None:
    secret = generate_secret()
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, b"msg_1.1743201665." + BODY, hashlib.sha256).digest()
    header = sign(BODY, message_id="msg_1", timestamp=1743201665, secrets=[secret])
    assert header == "v1," + base64.b64encode(expected).decode()


def test_sign_needs_a_secret_and_an_id() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign(BODY, message_id="msg_1", timestamp=1, secrets=[])
    with pytest.raises(ValueError, match="message_id"):
        sign(BODY, message_id="", timestamp=1, secrets=[generate_secret()])
