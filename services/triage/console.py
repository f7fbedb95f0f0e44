"""The triage console: the web page on-call staff work the night from, served at ``/console/``.

Everything comes from this service: one HTML shell, a plain ES module and a stylesheet
(``console_static/``); no CDN, no build step. The page calls the staff API mounted under
``/console/api`` (the same routes as ``/v1``, authenticated by the console's server-side
session, services/common/sessions.py) and follows the queue live over server-sent events.

Sign-in takes a staff token in a form (POST, never in a URL) or a one-time sign-in link
(``veilig staff link USER``; ``make run`` prints one); both make a session whose cookie is
HttpOnly, SameSite=Strict, Path=/console, Secure unless served on loopback.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, get_args
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.responses import StreamingResponse as Streaming
from pydantic import BaseModel, Field

from schemas import geo
from schemas.taxonomy import Priority, taxonomy
from services.common import sessions
from services.common.haarlem_map import incident_map_svg
from services.common.problems import Problem
from services.common.runtime import Runtime, runtime
from services.common.staff import Staff, active_staff, authenticate_staff
from services.triage import api
from services.triage.actions import Outcome
from services.triage.queue import Filters, View, count_views, fetch_queue
from services.triage.signals import recent_signals
from services.triage.workflow import ACTOR_ROLES, OPEN_STATUSES

STATIC = Path(__file__).parent / "console_static"
PATH = sessions.CONSOLE_PATH
STREAM_SECONDS = 1.0  # how often the live queue looks for changes
QUEUE_LIMIT = 200
SIGNALS_LIMIT = 20  # zorgsignalen shown beside the queue, newest first
SIGNALS_DAYS = 30

router = APIRouter(prefix=PATH, include_in_schema=False)
# The staff API's routes for the page, under the session cookie's path.
staff_api = APIRouter(prefix=f"{PATH}/api")
staff_api.include_router(api.router, include_in_schema=False)
Rt = Annotated[Runtime, Depends(runtime)]
signed_in = api.readers


class TokenSignIn(BaseModel):
    token: str = Field(max_length=200)


class LinkSignIn(BaseModel):
    code: str = Field(max_length=200)


def _now() -> datetime:
    return datetime.now(UTC)


async def _begin(request: Request, rt: Runtime, username: str | None) -> Response:
    session_id = None
    if username is not None:
        async with rt.pool.acquire() as conn:
            session_id = await sessions.open_session(conn, username, _now())
    if session_id is None:
        raise Problem(401, "unauthenticated", "Sign-in failed", "unknown, used or expired")
    response = Response(status_code=204)
    response.set_cookie(
        sessions.SESSION_COOKIE,
        session_id,
        max_age=int(sessions.SessionPolicy.of(rt.settings).lifetime.total_seconds()),
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=not sessions.is_loopback(request.url.hostname or ""),
    )
    return response


@router.post("/api/signin")
async def sign_in(request: Request, rt: Rt, body: TokenSignIn) -> Response:
    """Sign in with a staff token (in the body, never in a URL)."""
    sessions.refuse_cross_site(request)
    staff = await authenticate_staff(rt.pool, body.token)
    return await _begin(request, rt, staff.username if staff else None)


@router.post("/api/signin/link")
async def sign_in_by_link(request: Request, rt: Rt, body: LinkSignIn) -> Response:
    """Sign in with a one-time link's code: works once, within minutes of being made."""
    sessions.refuse_cross_site(request)
    async with rt.pool.acquire() as conn:
        username = await sessions.redeem_link(conn, body.code, _now())
    return await _begin(request, rt, username)


@router.post("/api/signout")
async def sign_out(request: Request, rt: Rt) -> Response:
    sessions.refuse_cross_site(request)
    session_id = request.cookies.get(sessions.SESSION_COOKIE)
    if session_id:
        await sessions.end_session(rt.pool, session_id)
    response = Response(status_code=204)
    response.delete_cookie(sessions.SESSION_COOKIE, path=PATH, httponly=True, samesite="strict")
    return response


@router.get("/api/me")
async def me(staff: Annotated[Staff, Depends(signed_in)]) -> dict[str, object]:
    """Who is signed in, and what the role may do (the page offers nothing else)."""
    return {"username": staff.username, "role": staff.role, "may_act": staff.role != "ops"}


@router.get("/api/reference")
async def reference(_staff: Annotated[Staff, Depends(signed_in)]) -> dict[str, object]:
    """What the page's filters and forms choose from: categories (Dutch and English),
    buurten with their wijk, priorities, open statuses and resolve outcomes."""
    return {
        "categories": [
            {"code": c.code, "nl": c.label_nl, "en": c.label_en} for c in taxonomy().categories
        ],
        "buurten": [
            {"code": b.code, "name": b.name, "wijk": b.wijk_code, "wijk_name": b.wijk_name}
            for b in geo.buurten()
        ],
        "priorities": list(get_args(Priority)),
        "statuses": list(OPEN_STATUSES),
        "outcomes": list(get_args(Outcome)),
    }


@router.get("/api/colleagues")
async def colleagues(rt: Rt, _staff: Annotated[Staff, Depends(api.actors)]) -> list[dict[str, str]]:
    """Whom an incident can be given to (the assign form's choice): active triage and admin
    accounts."""
    async with rt.pool.acquire() as conn:
        return [
            {"username": s.username, "role": s.role} for s in await active_staff(conn, ACTOR_ROLES)
        ]


@router.get("/api/incidents/{incident_id}/map")
async def incident_map(
    incident_id: UUID, rt: Rt, _staff: Annotated[Staff, Depends(signed_in)]
) -> Response:
    """The offline map of Haarlem with the incident on it: a pin on its point, its buurt
    highlighted. For whoever may read the incident, whose page shows the same location in
    words; the location never travels in a URL."""
    row = await rt.pool.fetchrow(
        "SELECT lat, lon, buurt_code FROM incidents WHERE incident_id = $1", incident_id
    )
    if row is None:
        raise Problem(404, "not-found", "Not found", f"no incident {incident_id}")
    svg = incident_map_svg(row["lat"], row["lon"], row["buurt_code"])
    if svg is None:
        raise Problem(404, "not-on-the-map", "Not on the map", "no location in Haarlem known")
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


async def _snapshot(rt: Runtime, view: View, filters: Filters) -> str:
    rows = await fetch_queue(rt.pool, view, filters, QUEUE_LIMIT)
    counts = await count_views(rt.pool, filters)
    # The prevention signals of the last weeks (of the wijk filtered on), beside the queue.
    signals = await recent_signals(
        rt.pool, filters.wijk, SIGNALS_LIMIT, _now() - timedelta(days=SIGNALS_DAYS)
    )
    # Plain rows to JSON: the stream sends this every time the queue changes.
    items = [dict(r) for r in rows]
    return json.dumps(
        {
            "view": view,
            "counts": counts,
            "items": items,
            "signals": [s.model_dump(mode="json") for s in signals],
        },
        default=_plain,
    )


def _plain(value: object) -> str:
    """JSON for what asyncpg returns beyond JSON's types (timestamps, UUIDs)."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


@router.get("/api/queue")
async def queue(
    rt: Rt,
    _staff: Annotated[Staff, Depends(signed_in)],
    filters: Annotated[Filters, Query()],
    view: View = "open",
) -> Response:
    """One view of the queue with the count of every view, as the stream sends it."""
    return Response(await _snapshot(rt, view, filters), media_type="application/json")


@router.get("/api/stream")
async def stream(
    request: Request,
    rt: Rt,
    _staff: Annotated[Staff, Depends(signed_in)],
    filters: Annotated[Filters, Query()],
    view: View = "open",
) -> Streaming:
    """The queue as server-sent events: a snapshot whenever it changes. The session is
    checked on every look, so a sign-out, a disabled account or a rotated token ends the
    stream at once."""
    session_id = request.cookies.get(sessions.SESSION_COOKIE, "")
    policy = sessions.SessionPolicy.of(rt.settings)

    async def events() -> AsyncIterator[str]:
        last = None
        while not rt.stopping.is_set() and not await request.is_disconnected():
            if await sessions.session_user(rt.pool, session_id, policy, _now()) is None:
                yield "event: signed-out\ndata: {}\n\n"
                return
            snapshot = await _snapshot(rt, view, filters)
            if snapshot != last:
                yield f"event: queue\ndata: {snapshot}\n\n"
                last = snapshot
            else:
                yield ": still here\n\n"
            await asyncio.sleep(STREAM_SECONDS)

    return Streaming(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- pages ------------------------------------------------------------------------------------


def _page(title: str, body: str, script: str) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html>
<html lang="nl"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{PATH}/static/console.css">
</head><body>{body}
<script type="module" src="{PATH}/static/{script}"></script></body></html>""",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer",
        },
    )


async def _signed_in(request: Request, rt: Runtime) -> bool:
    session_id = request.cookies.get(sessions.SESSION_COOKIE)
    if not session_id:
        return False
    policy = sessions.SessionPolicy.of(rt.settings)
    return await sessions.session_user(rt.pool, session_id, policy, _now()) is not None


@router.get("/signin")
async def signin_page() -> HTMLResponse:
    return _page("Aanmelden — Veilig Haarlem", (STATIC / "signin.html").read_text(), "signin.js")


@router.get("/")
@router.get("/incidents/{incident_id}")
async def console_page(request: Request, rt: Rt) -> Response:
    if not await _signed_in(request, rt):
        return RedirectResponse(f"{PATH}/signin", status_code=303)
    shell = (STATIC / "console.html").read_text()
    return _page("Triageconsole — Veilig Haarlem", shell, "console.js")


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    path = STATIC / name
    if path.parent != STATIC or not path.is_file():
        raise Problem(404, "not-found", "Not found")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})
