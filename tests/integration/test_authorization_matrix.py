"""Who may call what: every HTTP route of every service, for every kind of caller, with the
status each gets, against the real service on a socket (real database, real broker).

The routes come from the apps' own route tables, so a route added without a row here fails the
test, and a row for a route that no longer exists fails it too. Callers:

- ``anonymous``: no credentials at all;
- ``partner_a`` / ``partner_b``: two partners' API keys (intake); partner A has a report, and
  partner B asks for it too (it must not learn that it exists: 404);
- ``triage``, ``ops``, ``admin``: staff tokens of each role;
- ``disabled``: an account that no longer works: a disabled staff member's token, and at
  intake a revoked partner key.

Requests carry no body beyond what reaches the authorisation check, so an authorised caller
often gets 404 (a made-up id) or 422 (the empty body refused): the point is that it got past
the check, and that everyone else was stopped by it (401 without valid credentials, 403 with
the wrong role; Open311 answers 403 for both, as GeoReport v2 specifies).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from services.common import tokens
from services.common.service import create_app
from services.common.settings import ServiceName, Settings
from services.common.staff import ROLES, Role, add_staff, disable_staff
from services.intake.partners import KEY_PREFIX, add_partner, revoke_key
from services.openapi import service_spec
from tests.support import served as serving_app
from tools.ports import free_port

pytestmark = pytest.mark.integration

IDENTITIES = ("anonymous", "partner_a", "partner_b", "triage", "ops", "admin", "disabled")
PARTNERS = ("partner_a", "partner_b")
Row = dict[str, int]


def everyone(status: int) -> Row:
    """A public route: the same answer whoever asks."""
    return dict.fromkeys(IDENTITIES, status)


def partner_api(ok: int, other_partner: int | None = None) -> Row:
    """The partner API: a partner's key (``other_partner``: what partner B gets for partner A's
    report); staff tokens and a revoked key are no partner key."""
    row = dict.fromkeys(IDENTITIES, 401)
    row.update(partner_a=ok, partner_b=ok if other_partner is None else other_partner)
    return row


def open311(ok: int, other_partner: int | None = None) -> Row:
    """GeoReport v2: the partner's ``api_key``; a missing or invalid one is a 403."""
    row = dict.fromkeys(IDENTITIES, 403)
    row.update(partner_a=ok, partner_b=ok if other_partner is None else other_partner)
    return row


def staff(ok: int, *roles: Role) -> Row:
    """A staff API: ``roles`` (all roles when none are named) get ``ok``, the other roles 403,
    callers without a valid staff token 401."""
    row = dict.fromkeys(IDENTITIES, 401)
    row.update({role: ok if role in (roles or ROLES) else 403 for role in ROLES})
    return row


ACTOR: tuple[Role, ...] = ("triage", "admin")  # who acts on incidents; ops watches
# Triage's API (also under /console/api): everyone reads, ops does not act. An authorised
# action on a made-up incident is 404, or 422 when the empty body is refused first.
TRIAGE_API: list[tuple[str, str, int, tuple[Role, ...]]] = [
    ("GET", "queue", 200, ()),
    ("GET", "incidents/{incident_id}", 404, ()),
    *(
        ("POST", f"incidents/{{incident_id}}/{action}", 404, ACTOR)
        for action in ("acknowledge", "claim", "reopen", "start", "unmerge")
    ),
    *(
        ("POST", f"incidents/{{incident_id}}/{action}", 422, ACTOR)
        for action in (
            "assign",
            "cancel",
            "contact",
            "hold",
            "merge",
            "priority",
            "reclassify",
            "resolve",
        )
    ),
]
# Served to everyone by every service: health, and the API documentation (local development
# only, which the tests are; production serves none of it: test_service_runner.py).
COMMON = {
    "GET /health/live": everyone(200),
    "GET /health/ready": everyone(200),
    "GET /docs": everyone(200),
    "GET /docs/oauth2-redirect": everyone(200),
    "GET /redoc": everyone(200),
    "GET /openapi.json": everyone(200),
}
MATRIX: dict[ServiceName, dict[str, Row]] = {
    "intake": {
        **COMMON,
        "POST /v1/incidents": partner_api(422),
        "POST /v1/incidents:batch": partner_api(422),
        "GET /v1/incidents": partner_api(200),
        "GET /v1/incidents/{incident_id}": partner_api(200, other_partner=404),
        "POST /v1/incidents/{incident_id}:withdraw": partner_api(202, other_partner=404),
        "GET /open311/v2/services.json": everyone(200),
        "POST /open311/v2/requests.json": open311(400),
        "GET /open311/v2/requests.json": open311(200),
        "GET /open311/v2/requests/{service_request_id}.json": open311(200, other_partner=404),
    },
    "notify": {
        **COMMON,
        # The one-time token in the link is the credential: an unknown one is 404 for all.
        "GET /ack/{token}": everyone(404),
        "POST /ack/{token}": everyone(404),
        "POST /v1/acknowledgements/{token}": everyone(404),
        "GET /v1/deliveries": staff(200, "triage", "ops", "admin"),
        "GET /v1/deliveries/{message_id}": staff(404, "triage", "ops", "admin"),
        "GET /v1/escalations/quarantined": staff(200, "triage", "ops", "admin"),
    },
    "triage": {
        **COMMON,
        **{
            f"{method} {prefix}/v1/{path}": staff(status, *roles)
            for prefix in ("", "/console/api")  # the API, and the console's copy of it
            for method, path, status, roles in TRIAGE_API
        },
        "GET /v1/safety-plans": staff(200),
        "PUT /v1/safety-plans/{wijk_code}": staff(422, "admin"),
        "POST /v1/safety-plans/{wijk_code}/end": staff(404, "admin"),
        "GET /v1/zorgsignalen": staff(200),
        # The console: its pages need a session (a bearer token is not one), its API a session
        # or a token; signing in takes the token in the body, from this site only.
        "GET /console/": everyone(303),
        "GET /console/incidents/{incident_id}": everyone(303),
        "GET /console/signin": everyone(200),
        "GET /console/static/{name}": everyone(200),
        "POST /console/api/signin": staff(204),
        "POST /console/api/signin/link": everyone(401),
        "POST /console/api/signout": everyone(204),
        **{f"GET /console/api/{p}": staff(200) for p in ("me", "queue", "reference", "stream")},
        "GET /console/api/colleagues": staff(200, *ACTOR),
        "GET /console/api/incidents/{incident_id}/map": staff(404),
    },
    "analytics": {
        **COMMON,
        **{
            f"GET /v1/{path}": staff(200)
            for path in (
                "backlog",
                "deliveries",
                "hic",
                "incidents/areas",
                "incidents/categories",
                "incidents/series",
                "overview",
                "overview/stream",
                "partners",
                "reports/wijk/{wijk}",
                "reports/wijk/{wijk}.csv",
                "response-times",
                "sla",
                "zorgsignalen/areas",
            )
        },
        # The dashboard's pages: the token once in /login's query, a cookie after that.
        "GET /login": staff(303),
        "GET /dashboard": staff(200),
        "GET /reports/wijk": staff(422),  # the form's redirect, without the form's wijk
        "GET /reports/wijk/{wijk}": staff(200),
        "GET /static/analytics/{name}": everyone(200),
    },
}


@dataclass
class Callers:
    """The credentials of every caller, and the ids that exist."""

    tokens: dict[str, str | None] = field(default_factory=dict)
    incident_a: str = ""


def route_table(app: FastAPI) -> list[str]:
    """Every ``METHOD /path`` the app serves (HEAD comes with GET)."""
    return sorted(
        f"{method} {route.path_format}"
        for route in iter_route_contexts(app.routes)
        for method in (route.methods or ())
        if method != "HEAD"
    )


async def callers(settings: Settings, service: ServiceName, base: str) -> Callers:
    found = Callers(tokens={"anonymous": None})
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": service}
    )
    try:
        if service == "intake":
            for name, code in (("partner_a", "politie"), ("partner_b", "buas")):
                found.tokens[name] = await add_partner(conn, code, name=code, kind="police")
            revoked = await add_partner(conn, "vervallen", name="vervallen", kind="school")
            parsed = tokens.parse(KEY_PREFIX, revoked)
            assert parsed is not None
            await revoke_key(conn, parsed[0])
            found.tokens["disabled"] = revoked
        for role in ROLES:
            found.tokens[role] = await add_staff(conn, f"{role}.{service}", role)
        if service != "intake":
            found.tokens["disabled"] = await add_staff(conn, f"gone.{service}", "admin")
            await disable_staff(conn, f"gone.{service}")
            # Partner keys as intake makes them: worth nothing at a staff API.
            found.tokens.update({name: tokens.issue(KEY_PREFIX).token for name in PARTNERS})
    finally:
        await conn.close()
    if service == "intake":
        async with httpx.AsyncClient(base_url=base) as client:
            answer = await client.post(
                "/v1/incidents",
                json=REPORT,
                headers={"Authorization": f"Bearer {found.tokens['partner_a']}"},
            )
            answer.raise_for_status()
            found.incident_a = answer.json()["incident_id"]
    return found


REPORT = {
    "external_id": "MK-2026-000123",
    "category_hint": "vandalisme",
    "description": "Graffiti op de muur van het station",
    "location": {"buurt_code": "BU03920102"},
}
BODIES = {
    # Valid, so that the answer is about whose report it is: partner B's is 404.
    "POST /v1/incidents/{incident_id}:withdraw": {"reason": "Per ongeluk dubbel gemeld"},
    "POST /console/api/signin/link": {"code": "not-a-link-anyone-made"},
}
STATIC = {"intake": "", "triage": "console.css", "notify": "", "analytics": "dashboard.css"}


def request_for(
    service: ServiceName, method: str, path: str, token: str | None, found: Callers
) -> tuple[str, dict[str, Any]]:
    """The URL and request options of one cell: path parameters filled in, the credential
    where the route reads it."""
    values = {
        "incident_id": found.incident_a or str(uuid.uuid4()),
        "service_request_id": found.incident_a,
        "message_id": str(uuid.uuid4()),
        "token": "t" * 32,
        "wijk": "WK039201",
        "wijk_code": "WK039201",
        "name": STATIC[service],
    }
    url = re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path)
    options: dict[str, Any] = {}
    if path.startswith("/open311/"):
        key = {"api_key": token} if token else {}
        if method == "POST":
            options["data"] = key
        else:
            options["params"] = key
    elif path == "/login":
        options["params"] = {"token": token or ""}
    elif path == "/console/api/signin":
        options["json"] = {"token": token or ""}
    elif token:
        options["headers"] = {"Authorization": f"Bearer {token}"}
    if method in ("POST", "PUT") and "json" not in options and "data" not in options:
        options["json"] = BODIES.get(f"{method} {path}", {})
    return url, options


@pytest.fixture
async def served(
    settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[FastAPI, str]]:
    service: ServiceName = request.param
    app = create_app(service_spec(service), settings)
    async with serving_app(app, free_port()) as base:
        yield app, base


async def observe(
    service: ServiceName, app: FastAPI, base: str, settings: Settings
) -> dict[str, Row]:
    """The status every caller gets from every route (only the status line is read)."""
    found = await callers(settings, service, base)
    seen: dict[str, Row] = {}
    # As the service's own pages call it (the console refuses other origins' cookies).
    same_site = {"Origin": base}
    async with httpx.AsyncClient(
        base_url=base, headers=same_site, follow_redirects=False, timeout=30
    ) as client:
        for entry in route_table(app):
            method, path = entry.split(" ", 1)
            seen[entry] = {}
            for identity in IDENTITIES:
                url, options = request_for(service, method, path, found.tokens[identity], found)
                async with client.stream(method, url, **options) as answer:
                    seen[entry][identity] = answer.status_code
                client.cookies.clear()  # a cookie one caller was given is not the next's
    return seen


@pytest.mark.parametrize("served", list(MATRIX), indirect=True)
async def test_every_route_answers_every_caller_as_the_matrix_says(
    served: tuple[FastAPI, str], settings: Settings, request: pytest.FixtureRequest
) -> None:
    app, base = served
    service: ServiceName = request.node.callspec.params["served"]
    expected = MATRIX[service]
    routes = route_table(app)
    assert sorted(expected) == routes, "every route needs a row, and every row a route"
    seen = await observe(service, app, base, settings)
    wrong = {
        route: {who: (row[who], seen[route][who]) for who in row if row[who] != seen[route][who]}
        for route, row in expected.items()
        if row != seen[route]
    }
    assert wrong == {}, "route: {caller: (expected, got)}"
