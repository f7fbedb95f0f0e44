"""The webhook target policy, and the client that enforces it against real HTTP servers on
127.0.0.1 (Starlette under uvicorn, in this process)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import ip_network

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from schemas.taxonomy import Profile
from services.common.settings import Settings
from services.notify.settings import NotifySettings
from services.notify.targets import (
    PolicyResolver,
    TargetPolicy,
    TargetRefused,
    WebhookClient,
    check_target,
    webhook_client,
)
from services.notify.webhooks import generate_secret, send_webhook
from tests.support import serving

DEV = TargetPolicy(local_development=True)
PRODUCTION = TargetPolicy()
INTERNAL = TargetPolicy(allowed_networks=(ip_network("10.20.0.0/16"),))
BIG = 1_000_000  # bytes the greedy endpoint answers with


@dataclass
class Server:
    base: str = ""
    port: int = 0
    hits: list[str] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        self.hits.append(request.url.path)
        return Response(status_code=204)

    async def moved(self, request: Request) -> Response:
        self.hits.append(request.url.path)
        return RedirectResponse(f"{self.base}/hook", status_code=307)

    async def greedy(self, request: Request) -> Response:
        self.hits.append(request.url.path)

        async def body() -> AsyncIterator[bytes]:
            for _ in range(BIG // 10_000):
                yield b"x" * 10_000

        return StreamingResponse(body(), status_code=200)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[Server]:
    found = Server()
    app = Starlette(
        routes=[
            Route("/hook", found.hook, methods=["POST"]),
            Route("/moved", found.moved, methods=["POST"]),
            Route("/greedy", found.greedy, methods=["POST"]),
        ]
    )
    async with serving(app) as port:
        found.port, found.base = port, f"http://127.0.0.1:{port}"
        yield found


@pytest.fixture
def receiver(server: Server) -> Server:
    server.hits.clear()
    return server


def client_for(policy: TargetPolicy, **config: int) -> WebhookClient:
    settings = Settings(local_development=policy.local_development)
    notify = NotifySettings(
        webhook_allowed_networks=policy.allowed_networks, smtp_host="127.0.0.1", **config
    )
    return webhook_client(settings, notify)


async def post(
    client: WebhookClient, url: str, profile: Profile = Profile.FULL
) -> tuple[str, int | None, str | None]:
    result = await send_webhook(
        client,
        url,
        b"{}",
        message_id="m-1",
        secrets=[generate_secret()],
        content_type="application/json",
        profile=profile,
        timeout=5.0,
    )
    return result.outcome, result.status_code, result.error


# --- the policy, from the URL --------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "url", "profile", "reason"),
    [
        (PRODUCTION, "http://169.254.169.254/latest/meta-data/", Profile.COARSE, "link-local"),
        (PRODUCTION, "https://169.254.169.254/", Profile.FULL, "link-local"),
        (PRODUCTION, "http://10.0.0.1/", Profile.COARSE, "private"),
        (PRODUCTION, "https://192.168.1.10/hook", Profile.OPERATIONAL, "private"),
        (PRODUCTION, "https://127.0.0.1/hook", Profile.FULL, "loopback"),
        (PRODUCTION, "https://[::1]/hook", Profile.FULL, "loopback"),
        (PRODUCTION, "https://[::ffff:10.0.0.1]/hook", Profile.FULL, "private"),
        (PRODUCTION, "https://[64:ff9b::a9fe:a9fe]/hook", Profile.FULL, "link-local"),
        (PRODUCTION, "https://[fd00:ec2::254]/", Profile.FULL, "private"),
        (PRODUCTION, "https://100.100.100.200/", Profile.FULL, "not a public address"),
        (PRODUCTION, "https://0.0.0.0/", Profile.FULL, "0.0.0.0 is a private address"),
        (PRODUCTION, "https://224.0.0.1/", Profile.FULL, "not a public address"),
        (PRODUCTION, "http://meldkamer.example/hook", Profile.FULL, "https is required"),
        (PRODUCTION, "http://handhaving.example/hook", Profile.OPERATIONAL, "https is required"),
        (PRODUCTION, "http://localhost/hook", Profile.FULL, "https is required"),
        (PRODUCTION, "ftp://meldkamer.example/", Profile.FULL, "http(s) URL"),
        (DEV, "http://10.0.0.1/", Profile.FULL, "https is required"),
        (DEV, "https://169.254.169.254/", Profile.COARSE, "link-local"),
        (INTERNAL, "http://10.20.0.5/hook", Profile.FULL, "https is required"),
        (INTERNAL, "https://10.21.0.5/hook", Profile.FULL, "private"),
    ],
)
def test_the_policy_refuses_with_the_reason(
    policy: TargetPolicy, url: str, profile: Profile, reason: str
) -> None:
    with pytest.raises(TargetRefused, match=re.escape(reason)):
        policy.check_url(url, profile)


@pytest.mark.parametrize(
    ("policy", "url", "profile"),
    [
        (PRODUCTION, "https://meldkamer.example/hook", Profile.FULL),
        (PRODUCTION, "https://203.0.114.7/hook", Profile.FULL),
        (PRODUCTION, "http://buurtpreventie.example/hook", Profile.COARSE),  # nothing personal
        (DEV, "http://127.0.0.1:8090/hooks/x", Profile.FULL),
        (DEV, "http://localhost:8090/hooks/x", Profile.OPERATIONAL),
        (DEV, "http://[::1]:8090/hooks/x", Profile.FULL),
        (INTERNAL, "https://10.20.0.5/hook", Profile.FULL),
    ],
)
def test_the_policy_allows(policy: TargetPolicy, url: str, profile: Profile) -> None:
    policy.check_url(url, profile)


async def test_a_name_is_checked_by_the_addresses_it_resolves_to() -> None:
    with pytest.raises(TargetRefused, match="loopback"):
        await check_target("https://localhost/hook", Profile.FULL, PRODUCTION)
    assert await check_target("https://localhost/hook", Profile.FULL, DEV)
    # A name that does not resolve (yet) passes: every connection checks it again.
    assert await check_target("https://nowhere.invalid/hook", Profile.FULL, PRODUCTION)


# --- the client, against real servers ------------------------------------------------------


async def test_a_redirect_is_not_followed(receiver: Server) -> None:
    async with client_for(DEV) as client:
        outcome, status, error = await post(client, f"{receiver.base}/moved")
    assert (outcome, status) == ("failed", 307)
    assert error == "HTTP 307 Temporary Redirect"
    assert receiver.hits == ["/moved"]  # /hook, where it pointed, was never asked


async def test_local_development_reaches_loopback_and_production_does_not(
    receiver: Server,
) -> None:
    async with client_for(DEV) as client:
        assert await post(client, f"{receiver.base}/hook") == ("delivered", 204, None)
    async with client_for(PRODUCTION) as client:
        outcome, status, error = await post(client, f"{receiver.base}/hook", Profile.COARSE)
    assert (outcome, status) == ("failed", None)
    assert "target refused: 127.0.0.1 is a loopback address" in str(error)
    assert receiver.hits == ["/hook"]  # only the first


async def test_the_address_is_checked_where_the_connection_is_made(receiver: Server) -> None:
    """A name passes the URL check; the connection resolves it and refuses its loopback
    address, so an answer changed after `recipients set` (DNS rebinding) gains nothing."""
    url = f"http://localhost:{receiver.port}/hook"
    PRODUCTION.check_url(url, Profile.COARSE)  # nothing to see in the URL itself
    async with client_for(PRODUCTION) as client:
        outcome, _, error = await post(client, url, Profile.COARSE)
    assert outcome == "failed" and "loopback address" in str(error)
    assert receiver.hits == []
    with pytest.raises(TargetRefused):
        await PolicyResolver(PRODUCTION).resolve("localhost", receiver.port)
    # Allowed, the connection goes to the address the resolver checked.
    allowed = TargetPolicy(allowed_networks=(ip_network("127.0.0.0/8"), ip_network("::1/128")))
    resolved = await PolicyResolver(allowed).resolve("localhost", receiver.port)
    assert {r["host"] for r in resolved} <= {"127.0.0.1", "::1"}
    async with client_for(allowed) as client:
        assert await post(client, url, Profile.COARSE) == ("delivered", 204, None)
    assert receiver.hits == ["/hook"]


async def test_an_answer_is_read_up_to_the_cap(receiver: Server) -> None:
    async with client_for(DEV, webhook_max_response_bytes=4096) as client:
        answer = await client.post(
            f"{receiver.base}/greedy", b"{}", headers={}, profile=Profile.FULL, timeout=5
        )
        assert answer.status == 200
        assert len(answer.body) == 4096  # of the 1 MB it sent
        # The connection, with the rest unread, is not reused: the next request works.
        assert await post(client, f"{receiver.base}/hook") == ("delivered", 204, None)
