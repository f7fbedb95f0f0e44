"""Notify's HTTP API: acknowledgements (recipients) and deliveries (operators).

- ``POST /v1/acknowledgements/{token}``: a recipient's system acknowledges (JSON).
- ``GET /ack/{token}``: the link in a message opens a confirmation page; its button POSTs to
  ``/ack/{token}``. Opening the link alone acknowledges nothing, because mail scanners and
  chat previews fetch links by themselves and must not stop the paging of a P1.
- ``GET /v1/deliveries``, ``GET /v1/deliveries/{message_id}``: delivery health for staff
  (roles triage, ops, admin): what is pending, delivered or failed, and every attempt.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Form, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from schemas.timeutil import AMSTERDAM
from services.common.problems import PROBLEM, Problem
from services.common.runtime import Runtime, runtime
from services.common.staff import Staff, require_role
from services.notify import acks
from services.notify.acks import Acknowledgement
from services.notify.store import DeliveryStatus, Notify

Token = Annotated[str, Field(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]

router = APIRouter(tags=["acknowledgements"])
operators = APIRouter(
    prefix="/v1",
    tags=["deliveries"],
    responses={
        401: {"description": "Missing or invalid staff token", **PROBLEM},
        403: {"description": "The role does not allow it", **PROBLEM},
    },
)
readers = require_role("triage", "ops", "admin")


async def _notify(rt: Annotated[Runtime, Depends(runtime)]) -> Notify:
    """A coroutine, so FastAPI resolves it in the event loop (a plain function takes a
    worker thread on every request)."""
    notify: Notify = rt.extras["notify"]
    return notify


class AcknowledgeRequest(BaseModel):
    acknowledged_by: str | None = Field(
        None, max_length=100, description="Who at the recipient takes it on, if you say."
    )


class AcknowledgeResult(BaseModel):
    status: Literal["acknowledged"] = "acknowledged"
    incident_id: UUID
    recipient: str
    message_id: UUID
    acknowledged_at: datetime


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(AMSTERDAM):%d-%m-%Y %H:%M:%S}"


def _unknown() -> Problem:
    return Problem(
        404, "unknown-acknowledgement", "Unknown acknowledgement link", "no message has this link"
    )


@router.post(
    "/v1/acknowledgements/{token}",
    response_model=AcknowledgeResult,
    summary="Acknowledge a notification with its one-time token",
    responses={
        404: {"description": "No message carries this token", **PROBLEM},
        409: {"description": "Already acknowledged (the detail says when)", **PROBLEM},
    },
)
async def post_acknowledgement(
    token: Token,
    rt: Annotated[Runtime, Depends(runtime)],
    notify: Annotated[Notify, Depends(_notify)],
    body: Annotated[AcknowledgeRequest | None, Body()] = None,
) -> AcknowledgeResult:
    """Stops the escalation of the incident for this recipient (and for the recipient it was
    paged for). The token is single-use."""
    by = body.acknowledged_by if body else None
    ack = await acks.acknowledge(rt.pool, notify, token, by)
    if ack is None:
        raise _unknown()
    assert ack.acknowledged_at is not None
    if not ack.now:
        raise Problem(
            409,
            "already-acknowledged",
            "Already acknowledged",
            f"{ack.recipient} acknowledged incident {ack.incident_id} at "
            f"{_local(ack.acknowledged_at)} (Europe/Amsterdam)",
        )
    return AcknowledgeResult(
        incident_id=ack.incident_id,
        recipient=ack.recipient,
        message_id=ack.message_id,
        acknowledged_at=ack.acknowledged_at,
    )


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f'<!DOCTYPE html><html lang="nl"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{body}"
        "<p><small>Veilig Haarlem. Bij acuut gevaar: bel 112.</small></p></body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _done_page(ack: Acknowledgement | None) -> HTMLResponse:
    if ack is None:
        return _page("Onbekende link", "<p>Deze bevestigingslink bestaat niet.</p>", 404)
    assert ack.acknowledged_at is not None
    when = html.escape(_local(ack.acknowledged_at))
    if ack.now:
        return _page("Ontvangst bevestigd", f"<p>Bevestigd om {when}. Dank u.</p>")
    return _page("Al bevestigd", f"<p>Deze melding is al bevestigd om {when}.</p>", 409)


PAGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No message has this link", "content": {"text/html": {}}},
    409: {"description": "Acknowledged before (the page says when)", "content": {"text/html": {}}},
}


@router.get(
    "/ack/{token}",
    response_class=HTMLResponse,
    summary="The link in a message",
    responses=PAGE_ANSWERS,
)
async def ack_page(token: Token, rt: Annotated[Runtime, Depends(runtime)]) -> HTMLResponse:
    """A confirmation page; nothing is acknowledged until its button is pressed."""
    ack = await acks.peek(rt.pool, token)
    if ack is None or ack.acknowledged_at is not None:
        return _done_page(ack)
    action = html.escape(f"/ack/{token}")
    return _page(
        "Ontvangst bevestigen",
        f'<form method="post" action="{action}"><p><label>Uw naam (optioneel) '
        '<input name="naam" maxlength="100"></label></p>'
        '<p><button type="submit">Ik neem deze melding aan</button></p></form>',
    )


@router.post(
    "/ack/{token}", response_class=HTMLResponse, summary="The page's button", responses=PAGE_ANSWERS
)
async def ack_form(
    token: Token,
    rt: Annotated[Runtime, Depends(runtime)],
    notify: Annotated[Notify, Depends(_notify)],
    naam: Annotated[str | None, Form(max_length=100)] = None,
) -> HTMLResponse:
    return _done_page(await acks.acknowledge(rt.pool, notify, token, naam or None))


class Attempt(BaseModel):
    attempt: int
    at: datetime
    outcome: str
    status_code: int | None
    error: str | None


class Delivery(BaseModel):
    message_id: UUID
    incident_id: UUID
    recipient: str
    kind: str
    channel: str
    profile: str
    priority: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    last_status_code: int | None
    escalation_root: str | None
    acknowledged_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None


class DeliveryDetail(Delivery):
    history: list[Attempt]


_COLUMNS = ", ".join(f for f in Delivery.model_fields if f != "next_attempt_at")


def _delivery(row: Any) -> dict[str, Any]:
    out = dict(row)
    # Only a pending delivery has a next attempt.
    out["next_attempt_at"] = row["next_attempt_at"] if row["status"] == "pending" else None
    return out


@operators.get("/deliveries", response_model=list[Delivery], summary="Deliveries, newest first")
async def list_deliveries(
    rt: Annotated[Runtime, Depends(runtime)],
    _staff: Annotated[Staff, Depends(readers)],
    status: Annotated[DeliveryStatus | None, Query()] = None,
    incident_id: UUID | None = None,
    recipient: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    rows = await rt.pool.fetch(
        f"SELECT {_COLUMNS}, next_attempt_at FROM deliveries "  # noqa: S608 - fixed columns
        "WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR incident_id = $2) "
        "AND ($3::text IS NULL OR recipient = $3) ORDER BY seq DESC LIMIT $4",
        status,
        incident_id,
        recipient,
        limit,
    )
    return [_delivery(row) for row in rows]


@operators.get(
    "/deliveries/{message_id}",
    response_model=DeliveryDetail,
    summary="One delivery and its attempts",
    responses={404: {"description": "No such delivery", **PROBLEM}},
)
async def get_delivery(
    message_id: UUID,
    rt: Annotated[Runtime, Depends(runtime)],
    _staff: Annotated[Staff, Depends(readers)],
) -> dict[str, Any]:
    row = await rt.pool.fetchrow(
        f"SELECT {_COLUMNS}, next_attempt_at FROM deliveries WHERE message_id = $1",  # noqa: S608
        message_id,
    )
    if row is None:
        raise Problem(404, "not-found", "Not found", f"no delivery {message_id}")
    history = await rt.pool.fetch(
        "SELECT attempt, at, outcome, status_code, error FROM delivery_attempts "
        "WHERE message_id = $1 ORDER BY attempt",
        message_id,
    )
    return {**_delivery(row), "history": [dict(h) for h in history]}


class QuarantinedTimer(BaseModel):
    incident_id: UUID
    recipient: str
    level: int
    escalate_at: datetime
    quarantined_at: datetime
    quarantine_error: str | None


@operators.get(
    "/escalations/quarantined",
    response_model=list[QuarantinedTimer],
    summary="Escalation timers set aside after an error (deliveries: ?status=quarantined)",
)
async def quarantined_timers(
    rt: Annotated[Runtime, Depends(runtime)],
    _staff: Annotated[Staff, Depends(readers)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    rows = await rt.pool.fetch(
        "SELECT incident_id, recipient, level, escalate_at, quarantined_at, quarantine_error "
        "FROM escalations WHERE quarantined_at IS NOT NULL ORDER BY quarantined_at DESC "
        "LIMIT $1",
        limit,
    )
    return [dict(row) for row in rows]
