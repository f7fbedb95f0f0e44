"""RFC 9457 problem details for every HTTP API of the platform.

Every error a client sees is ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail`` and, for invalid input, ``errors``: one ``{"field", "reason"}`` per
problem, the field written as a dotted path into the request (``location.lat``,
``reports.3.description``), so a partner sees which field is wrong and why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.common.faults import describe, is_transient

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# What a client is told to wait before retrying while PostgreSQL or Kafka is away.
RETRY_AFTER_SECONDS = 5
TYPE_BASE = "https://veilig.haarlem.nl/problems/"


class FieldError(BaseModel):
    field: str
    reason: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


PROBLEM: dict[str, object] = {"model": ProblemDetails, "content": {PROBLEM_JSON: {}}}
"""An OpenAPI ``responses`` entry's body for problem details: ``{"description": …, **PROBLEM}``."""


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})


def field_path(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form")]
    return ".".join(parts) or "body"


def field_errors(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[FieldError]:
    result = []
    for error in errors:
        path = field_path(error.get("loc", ()))
        reason = str(error.get("msg", "invalid"))
        # pydantic prefixes validator messages with "Value error, ": noise for a partner.
        reason = reason.removeprefix("Value error, ")
        result.append(FieldError(field=f"{prefix}{path}" if prefix else path, reason=reason))
    return result


def validation_problem(exc: ValidationError | RequestValidationError, prefix: str = "") -> Problem:
    errors = field_errors(exc.errors(), prefix)
    return Problem(
        422,
        "invalid-request",
        "The request is not valid",
        "; ".join(f"{e.field}: {e.reason}" for e in errors),
        errors=errors,
    )


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body = ProblemDetails(
        type=TYPE_BASE + problem.slug,
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=instance,
        errors=problem.errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Missing or invalid credentials"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("rate-limited", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path. Starlette answers a 405 from
    the first route whose path matched, naming only its methods, while GET and POST on one
    path are two routes."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def _problem_entry(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/ProblemDetails"}
    return {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Make an OpenAPI document say what :func:`install` answers: an invalid request is a 422
    with problem details (not FastAPI's ``HTTPValidationError`` as JSON), a body that cannot
    be parsed a 400, and any operation may answer 503 while PostgreSQL or Kafka is away."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation["responses"]
            if "422" in responses:
                responses["422"] = _problem_entry("Invalid input: which field and why")
            if "requestBody" in operation:
                responses.setdefault("400", _problem_entry("The body cannot be parsed"))
            responses.setdefault(
                "503",
                _problem_entry("A backing service is unavailable: retry after Retry-After"),
            )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    details = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(details.pop("$defs", {}))
    schemas["ProblemDetails"] = details
    for unused in ("HTTPValidationError", "ValidationError"):  # the first refers to the second
        if f'"#/components/schemas/{unused}"' not in json.dumps(document):
            schemas.pop(unused, None)
    return document


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details, and document it so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_problem(exc), request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug, title = _SLUGS.get(exc.status_code, ("error", "Error"))
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        problem = Problem(exc.status_code, slug, title, detail, headers=headers)
        return problem_response(problem, request.url.path)

    async def on_infrastructure(request: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL or Kafka away: nothing was accepted, and the same request (same
        # external_id) is safe to send again.
        if is_transient(exc):
            log.warning(
                "answered 503: infrastructure unavailable",
                extra={"path": request.url.path, "error": describe(exc)},
            )
            problem = Problem(
                503,
                "unavailable",
                "Service temporarily unavailable",
                "A backing service is unavailable; nothing was stored. Retry after the "
                "Retry-After seconds with the same request.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            return problem_response(problem, request.url.path)
        log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        return problem_response(Problem(500, "internal-error", "Internal error"), request.url.path)

    app.add_exception_handler(Problem, on_problem)
    for infrastructure in (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.InternalClientError,
        OSError,
        TimeoutError,
        KafkaError,
    ):
        app.add_exception_handler(infrastructure, on_infrastructure)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
