"""Open311 GeoReport v2 (subset) for civic apps: services, requests, request status.

Field names, form encoding and the error format (a JSON list of ``{"code", "description"}``)
follow the GeoReport v2 specification, so existing civic apps work unchanged. Only ``.json``
is offered. Posting needs the ``api_key`` of a partner with the ``open311`` scope; reading
requests back (one, or a list filtered by ``start_date``/``end_date``/``status``) is limited
to the partner that posted them, as in the partner API. A request shows its public status and
note only: ``agency_responsible`` stays empty, because a reporting partner is never told who
the responders are (DOMAIN.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from schemas.submission import IncidentSubmission
from schemas.taxonomy import taxonomy
from services.common.observability import current_traceparent
from services.common.problems import Problem, field_errors
from services.common.runtime import Runtime, runtime
from services.intake.api import read_status, require
from services.intake.feedback import (
    CLOSED,
    OPEN311_MAX_DAYS,
    OPEN311_MAX_RESULTS,
    open311_requests,
    open311_window,
)
from services.intake.intake import SINGLES, Single
from services.intake.partners import KEYS, Partner, authenticate

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])


class Open311Error(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def open311_error_response(exc: Open311Error) -> JSONResponse:
    return JSONResponse([{"code": exc.code, "description": exc.description}], status_code=exc.code)


class Open311ErrorItem(BaseModel):
    code: int
    description: str


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": what, "model": list[Open311ErrorItem]}
    for status, what in (
        (400, "Invalid request: the description says which field and why"),
        (403, "api_key missing, invalid, or without the open311 scope"),
        (404, "Unknown service_code or service request"),
        (409, "attribute[external_id] reused for another request"),
        (429, "Rate limit"),
    )
}


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class ServiceRequestCreated(BaseModel):
    service_request_id: str
    service_notice: str
    account_id: str | None = None


class ServiceRequest(BaseModel):
    service_request_id: str
    status: str
    status_notes: str | None
    service_name: str | None
    service_code: str | None
    agency_responsible: str | None
    requested_datetime: datetime
    updated_datetime: datetime


@router.get("/services.json", response_model=list[Service], summary="The taxonomy as services")
async def services() -> list[Service]:
    return [
        Service(
            service_code=c.code,
            service_name=c.label_nl,
            description=c.label_en,
            metadata=False,
            type="realtime",
            keywords=", ".join({c.label_nl, c.label_en}),
            group="high impact crime" if c.hic else "veiligheid",
        )
        for c in taxonomy().categories
    ]


async def _partner(rt: Runtime, api_key: str | None) -> Partner:
    partner = await authenticate(rt.pool, api_key, rt.extras.get(KEYS)) if api_key else None
    if partner is None:
        raise Open311Error(403, "api_key is missing or invalid")
    try:
        require(partner, "open311")
    except Problem as problem:
        raise Open311Error(problem.status, problem.detail or problem.title) from None
    return partner


@router.post(
    "/requests.json",
    response_model=list[ServiceRequestCreated],
    summary="Create a service request (form-encoded, per GeoReport v2)",
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["api_key", "service_code", "description"],
                        "properties": {
                            "api_key": {"type": "string"},
                            "service_code": {"type": "string"},
                            "lat": {"type": "number"},
                            "long": {"type": "number"},
                            "address_string": {"type": "string"},
                            "description": {"type": "string", "maxLength": 4000},
                            "email": {"type": "string"},
                            "first_name": {"type": "string"},
                            "last_name": {"type": "string"},
                            "phone": {"type": "string"},
                        },
                    }
                }
            },
            "required": True,
        }
    },
)
async def create_request(
    request: Request, rt: Annotated[Runtime, Depends(runtime)]
) -> list[ServiceRequestCreated]:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str) and v != ""}
    partner = await _partner(rt, fields.get("api_key"))
    report = _report(fields)
    outcome = await rt.extras[SINGLES].submit(
        Single(partner, report, "open311", current_traceparent())
    )
    if outcome.result == "conflict":
        raise Open311Error(409, "attribute[external_id] was used before for another request")
    return [
        ServiceRequestCreated(
            service_request_id=str(outcome.incident_id),
            service_notice="Dit is geen alarmnummer: bel bij acuut gevaar 112.",
        )
    ]


def _report(fields: dict[str, str]) -> IncidentSubmission:
    location: dict[str, Any]
    if "lat" in fields or "long" in fields:
        location = {"lat": fields.get("lat"), "lon": fields.get("long")}
    elif "address_string" in fields:
        location = {"address": fields["address_string"]}
    else:
        raise Open311Error(400, "a location is required: lat and long, or address_string")
    name = " ".join(p for p in (fields.get("first_name"), fields.get("last_name")) if p) or None
    contact = {"name": name, "phone": fields.get("phone"), "email": fields.get("email")}
    attributes = {
        key[len("attribute[") : -1]: value
        for key, value in fields.items()
        if key.startswith("attribute[") and key.endswith("]")
    }
    # Open311 has no client-side request id; an app may send attribute[external_id] to make
    # retries idempotent, otherwise every POST is a new report.
    external_id = attributes.pop("external_id", None) or f"open311-{uuid.uuid4()}"
    raw = {
        "external_id": external_id,
        "description": fields.get("description"),
        "category_hint": fields.get("service_code"),
        "location": location,
        "reporter": contact if any(contact.values()) else None,
        "attributes": attributes,
    }
    if fields.get("service_code") not in taxonomy().category_codes:
        raise Open311Error(404, f"service_code {fields.get('service_code')!r} not found")
    try:
        return IncidentSubmission.model_validate(raw)
    except ValidationError as exc:
        names = {
            "location.lon": "long",
            "location.lat": "lat",
            "location.address": "address_string",
        }
        reasons = [
            f"{names.get(e.field, e.field.removeprefix('location.'))}: {e.reason}"
            for e in field_errors(exc.errors())
        ]
        raise Open311Error(400, "; ".join(reasons)) from None


def _service_request(
    incident_id: UUID,
    status: str,
    note: str | None,
    category: str | None,
    requested: datetime,
    updated: datetime,
) -> ServiceRequest:
    """One request as GeoReport v2 shows it, the same in the list and on its own."""
    return ServiceRequest(
        service_request_id=str(incident_id),
        status="closed" if status in CLOSED else "open",
        status_notes=note,
        service_code=category,
        service_name=taxonomy().category(category).label_nl if category else None,
        agency_responsible=None,  # never who responds (DOMAIN.md)
        requested_datetime=requested,
        updated_datetime=updated,
    )


def _moment(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        if len(value) > 40:
            raise ValueError(value)
        return datetime.fromisoformat(value)
    except ValueError:
        raise Open311Error(
            400, f"{name}: not a date and time, e.g. 2026-11-24T00:00:00+01:00"
        ) from None


def _statuses(value: str | None) -> frozenset[Literal["open", "closed"]]:
    if value is None or value == "":
        return frozenset({"open", "closed"})
    chosen = {part.strip() for part in value.split(",", 2)}
    if len(value) > 20 or not chosen <= {"open", "closed"}:
        raise Open311Error(400, "status: open, closed, or open,closed")
    return frozenset(chosen)  # type: ignore[arg-type]


@router.get(
    "/requests.json",
    response_model=list[ServiceRequest],
    summary="The partner's own service requests (GeoReport v2 GET Service Requests)",
    description=f"Only the requests of the partner whose `api_key` is given, newest first, at "
    f"most {OPEN311_MAX_RESULTS}; the window is at most {OPEN311_MAX_DAYS} days (narrow it to "
    "see older requests). A withdrawn, resolved or merged request is `closed`.",
    responses=ERRORS,
)
async def list_requests(
    rt: Annotated[Runtime, Depends(runtime)],
    api_key: str | None = None,
    # Checked here, not by FastAPI: GeoReport v2 clients expect its 400 error list.
    start_date: Annotated[
        str | None,
        Query(
            description="Received at or after (ISO 8601 with offset). Default: 90 days before "
            "end_date.",
        ),
    ] = None,
    end_date: Annotated[
        str | None,
        Query(
            description="Received before (ISO 8601 with offset). Default: now, or 90 days "
            "after start_date.",
        ),
    ] = None,
    status: Annotated[
        str | None, Query(description="open, closed, or open,closed (default).")
    ] = None,
) -> list[ServiceRequest]:
    partner = await _partner(rt, api_key)
    statuses = _statuses(status)
    try:
        window = open311_window(
            _moment("start_date", start_date), _moment("end_date", end_date), datetime.now(UTC)
        )
    except ValueError as exc:
        raise Open311Error(400, str(exc)) from None
    rows = await open311_requests(rt.pool, partner.code, window, statuses)
    return [
        _service_request(r.incident_id, r.status, r.note, r.category, r.received_at, r.at)
        for r in rows
    ]


@router.get(
    "/requests/{service_request_id}.json",
    response_model=list[ServiceRequest],
    summary="One service request's status (only for the partner that posted it)",
    responses=ERRORS,
)
async def get_request(
    service_request_id: str,
    rt: Annotated[Runtime, Depends(runtime)],
    api_key: str | None = None,
) -> list[ServiceRequest]:
    partner = await _partner(rt, api_key)
    try:
        incident_id = UUID(service_request_id)
    except ValueError:
        raise Open311Error(404, f"service request {service_request_id} not found") from None
    status = await read_status(rt, partner.code, incident_id)
    if status is None:
        raise Open311Error(404, f"service request {service_request_id} not found")
    latest = status.history[-1] if status.history else None
    category = await rt.pool.fetchval(
        "SELECT category FROM public_details WHERE incident_id = $1", incident_id
    )
    return [
        _service_request(
            incident_id,
            status.status,
            latest.note if latest else None,
            category,
            status.received_at,
            latest.at if latest else status.received_at,
        )
    ]
