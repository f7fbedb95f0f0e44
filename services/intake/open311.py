"""Open311 GeoReport v2 (subset) for civic apps: services, requests, request status.

Field names, form encoding and the error format (a JSON list of ``{"code", "description"}``)
follow the GeoReport v2 specification, so existing civic apps work unchanged. Only ``.json``
is offered. Posting needs the ``api_key`` of a partner with the ``open311`` scope; reading a
request back is limited to the partner that posted it, as in the partner API.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from schemas.submission import IncidentSubmission
from schemas.taxonomy import taxonomy
from services.common.observability import current_traceparent
from services.common.problems import Problem, field_errors
from services.common.runtime import Runtime, runtime
from services.intake.api import read_status, require
from services.intake.intake import GROUP_COMMIT, Single
from services.intake.partners import KEYS, Partner, authenticate

router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])
CLOSED = {"resolved", "closed", "cancelled"}


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
    outcome = await rt.extras[GROUP_COMMIT].submit(
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
    details = await rt.pool.fetchrow(
        "SELECT category, agencies FROM public_details WHERE incident_id = $1", incident_id
    )
    category = details["category"] if details else None
    return [
        ServiceRequest(
            service_request_id=str(incident_id),
            status="closed" if status.status in CLOSED else "open",
            status_notes=latest.note if latest else None,
            service_code=category,
            service_name=taxonomy().category(category).label_nl if category else None,
            agency_responsible=details["agencies"] if details else None,
            requested_datetime=status.received_at,
            updated_datetime=latest.at if latest else status.received_at,
        )
    ]
