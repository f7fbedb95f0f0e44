"""The partner HTTP API (``/v1``): report, report in batches, read back one's own reports
(one, or a list of them), withdraw one."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.datastructures import URLPath

from schemas.submission import IncidentSubmission
from services.common.http import Rfc3339
from services.common.observability import current_traceparent
from services.common.offloop import off_loop
from services.common.problems import PROBLEM, FieldError, Problem, field_errors
from services.common.runtime import Runtime, runtime
from services.intake.feedback import (
    CURSOR_PATTERN,
    MAX_CURSOR,
    MAX_PAGE,
    BadCursor,
    PublicStatus,
    clamped_moment,
    decode_cursor,
    encode_cursor,
    list_reports,
    withdraw,
)
from services.intake.intake import REJECTED, SINGLES, Outcome, Single, accept
from services.intake.models import (
    Accepted,
    BatchItemResult,
    BatchResult,
    HistoryEntry,
    IncidentPage,
    IncidentStatus,
    IncidentSummary,
    Withdrawal,
    WithdrawalRequest,
)
from services.intake.partners import KEYS, Partner, authenticate
from services.intake.ratelimit import RateLimiter

MAX_BATCH = 500
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON", **PROBLEM},
    401: {"description": "Missing or invalid API key", **PROBLEM},
    403: {"description": "The key lacks the scope", **PROBLEM},
    413: {"description": "Request too large", **PROBLEM},
    422: {"description": "Invalid input: which field and why", **PROBLEM},
    429: {"description": "Rate limit: retry after Retry-After seconds", **PROBLEM},
}

router = APIRouter(prefix="/v1", tags=["partner API"])
bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
limiter = RateLimiter()


async def authenticated(
    rt: Annotated[Runtime, Depends(runtime)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Partner:
    partner = (
        await authenticate(rt.pool, credentials.credentials, rt.extras.get(KEYS))
        if credentials
        else None
    )
    if partner is None:
        raise Problem(
            401,
            "unauthenticated",
            "Missing or invalid API key",
            "send Authorization: Bearer <API key>; keys are issued with `veilig keys issue`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return partner


def require(partner: Partner, scope: str, cost: int = 1) -> None:
    if scope not in partner.scopes:
        REJECTED.labels(partner.code, "forbidden").inc()
        raise Problem(403, "forbidden", "Not allowed", f"the key lacks the scope {scope}")
    wait = limiter.take(partner.code, partner.rate_per_minute, cost)
    if wait:
        REJECTED.labels(partner.code, "rate-limited").inc(cost)
        if math.isinf(wait):
            raise Problem(
                429,
                "rate-limited",
                "Too many requests",
                f"{cost} reports exceed the limit of {partner.rate_per_minute} a minute; "
                "send smaller batches",
            )
        raise Problem(
            429,
            "rate-limited",
            "Too many requests",
            f"limit: {partner.rate_per_minute} reports a minute",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def status_urls(request: Request) -> Callable[[UUID], str]:
    """The status URL of any incident: the route's path resolved once per app (resolving it
    per report was 6 % of intake's CPU on batches of 500, once per request 3 % on single
    reports), made absolute with this request's base URL (proxy headers included)."""
    state = request.app.state
    path: URLPath | None = getattr(state, "status_path", None)
    if path is None:
        path = state.status_path = request.app.url_path_for("get_incident", incident_id=_MARKER)
    template = str(path.make_absolute_url(base_url=request.base_url))
    return lambda incident_id: template.replace(_MARKER, str(incident_id))


_MARKER = "00000000-0000-0000-0000-000000000000"


def status_url(request: Request, incident_id: UUID) -> str:
    return status_urls(request)(incident_id)


@router.post(
    "/incidents",
    status_code=202,
    response_model=Accepted,
    summary="Report one incident",
    responses={
        200: {"description": "A repeat of an earlier report: the same incident", "model": Accepted},
        409: {"description": "The external_id was used for another report", **PROBLEM},
        **ERRORS,
    },
)
async def post_incident(
    report: IncidentSubmission,
    request: Request,
    response: Response,
    rt: Annotated[Runtime, Depends(runtime)],
    partner: Annotated[Partner, Depends(authenticated)],
) -> Accepted:
    """Accepted (202) means stored durably: retrying with the same `external_id` and body
    returns the same incident (200), never a second one."""
    require(partner, "incidents:write")
    outcome = await rt.extras[SINGLES].submit(
        Single(partner, report, "http", current_traceparent())
    )
    if outcome.result == "conflict":
        raise Problem(
            409,
            "external-id-conflict",
            "external_id already used for another report",
            f"external_id {report.external_id!r} was reported before with another body "
            f"(incident {outcome.incident_id}); use a new external_id for a new report",
        )
    if outcome.result == "duplicate":
        response.status_code = 200
    return Accepted(
        incident_id=outcome.incident_id, status_url=status_url(request, outcome.incident_id)
    )


@router.post(
    "/incidents:batch",
    response_model=BatchResult,
    summary="Report up to 500 incidents",
    responses=ERRORS,
)
async def post_batch(
    request: Request,
    rt: Annotated[Runtime, Depends(runtime)],
    partner: Annotated[Partner, Depends(authenticated)],
    reports: Annotated[
        list[dict[str, Any]],
        Body(embed=True, min_length=1, max_length=MAX_BATCH, description="The reports."),
    ],
) -> BatchResult:
    """Every report is judged on its own: one invalid report does not reject the others."""
    require(partner, "incidents:write", cost=len(reports))
    results: list[BatchItemResult | None] = [None] * len(reports)
    valid: list[tuple[int, IncidentSubmission]] = []

    def validate() -> None:
        for index, item in enumerate(reports):
            try:
                valid.append((index, IncidentSubmission.model_validate(item)))
            except ValidationError as exc:
                REJECTED.labels(partner.code, "invalid").inc()
                errors = field_errors(exc.errors(), prefix=f"reports.{index}.")
                external = item.get("external_id") if isinstance(item, dict) else None
                results[index] = BatchItemResult(
                    index=index,
                    external_id=external if isinstance(external, str) else None,
                    result="invalid",
                    errors=[e.model_dump() for e in errors],
                )

    gate = rt.extras[SINGLES].gate
    await gate.turn()
    await off_loop(len(reports), validate)
    if valid:
        await gate.turn()
        async with rt.pool.acquire() as conn:
            outcomes = await accept(conn, rt.settings, partner, [r for _, r in valid], "http")
        await gate.turn()
        url = status_urls(request)
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            results[index] = _item(url, index, outcome)
    done = [r for r in results if r is not None]
    return BatchResult(
        accepted=sum(r.result == "accepted" for r in done),
        duplicate=sum(r.result == "duplicate" for r in done),
        invalid=sum(r.result == "invalid" for r in done),
        conflict=sum(r.result == "conflict" for r in done),
        results=done,
    )


def _item(url: Callable[[UUID], str], index: int, outcome: Outcome) -> BatchItemResult:
    conflict = outcome.result == "conflict"
    return BatchItemResult(
        index=index,
        external_id=outcome.external_id,
        result=outcome.result,
        incident_id=outcome.incident_id,
        status_url=None if conflict else url(outcome.incident_id),
        errors=[
            FieldError(
                field=f"reports.{index}.external_id",
                reason="used before for another report",
            ).model_dump()
        ]
        if conflict
        else None,
    )


def _invalid(field: str, reason: str) -> Problem:
    return Problem(
        422,
        "invalid-request",
        "The request is not valid",
        f"{field}: {reason}",
        errors=[FieldError(field=field, reason=reason)],
    )


@router.get(
    "/incidents",
    response_model=IncidentPage,
    summary="One's own reports: public status and note, in the order they last changed",
    responses=ERRORS,
)
async def list_incidents(
    request: Request,
    rt: Annotated[Runtime, Depends(runtime)],
    partner: Annotated[Partner, Depends(authenticated)],
    status: Annotated[
        PublicStatus | None, Query(description="Only reports whose public status is this.")
    ] = None,
    since: Annotated[
        Rfc3339 | None,
        Query(
            description="Only reports that changed at or after this moment (RFC 3339 with "
            "offset); one before 2000 means from the beginning, one in the future finds none."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Reports per page.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_CURSOR,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page.",
        ),
    ] = None,
) -> IncidentPage:
    """Only the partner's own reports, and of them only what the partner may read: the public
    status and note (never internal reasons, other partners' data or who responds). Ordered
    by when each report last changed, oldest first, so `since` plus the cursor is a feed:
    poll with the `updated_at` of the last report seen."""
    require(partner, "incidents:read")
    if since is not None:
        since = clamped_moment(since)
    try:
        after = decode_cursor(cursor) if cursor is not None else None
    except BadCursor as exc:
        raise _invalid("cursor", str(exc)) from None
    page, following = await list_reports(
        rt.pool, partner.code, status=status, since=since, after=after, limit=limit
    )
    url = status_urls(request)
    return IncidentPage(
        items=[
            IncidentSummary(
                incident_id=item.incident_id,
                external_id=item.external_id,
                status=item.status,
                note=item.note,
                received_at=item.received_at,
                updated_at=item.changed_at,
                status_url=url(item.incident_id),
            )
            for item in page
        ],
        next_cursor=encode_cursor(following) if following is not None else None,
    )


@router.post(
    "/incidents/{incident_id:uuid}:withdraw",
    status_code=202,
    response_model=Withdrawal,
    summary="Withdraw one's own report, with a reason",
    responses={
        200: {"description": "Withdrawn before: the first withdrawal", "model": Withdrawal},
        404: {"description": "No such report of this partner", **PROBLEM},
        409: {
            "description": "Too late: the report is resolved, or merged into an earlier report",
            **PROBLEM,
        },
        **ERRORS,
    },
)
async def withdraw_incident(
    incident_id: UUID,
    body: WithdrawalRequest,
    request: Request,
    response: Response,
    rt: Annotated[Runtime, Depends(runtime)],
    partner: Annotated[Partner, Depends(authenticated)],
) -> Withdrawal:
    """Accepted (202) means the withdrawal is stored: triage cancels the incident (the status
    at `status_url` becomes `cancelled`) and everyone who was told gets a cancel (CAP `Cancel`).
    A repeat answers 200 with the first withdrawal, whatever its reason. If another partner
    reported the same incident too, it stays open for them."""
    require(partner, "incidents:write")
    async with rt.pool.acquire() as conn:
        outcome = await withdraw(conn, rt.settings, partner, incident_id, body.reason)
    if outcome.result == "not_found":
        raise Problem(404, "not-found", "Not found", f"no report {incident_id} of yours")
    if outcome.result == "closed":
        raise Problem(
            409,
            "not-withdrawable",
            "The report is closed already",
            f"report {incident_id} is {outcome.status}: only an open report can be withdrawn",
        )
    if outcome.result == "repeated":
        response.status_code = 200
    assert outcome.requested_at is not None
    return Withdrawal(
        incident_id=incident_id,
        external_id=outcome.external_id,
        reason=outcome.reason,
        requested_at=outcome.requested_at,
        status_url=status_url(request, incident_id),
    )


@router.get(
    "/incidents/{incident_id:uuid}",
    response_model=IncidentStatus,
    name="get_incident",
    summary="Status and public history of one's own report",
    responses={404: {"description": "No such report of this partner", **PROBLEM}, **ERRORS},
)
async def get_incident(
    incident_id: UUID,
    rt: Annotated[Runtime, Depends(runtime)],
    partner: Annotated[Partner, Depends(authenticated)],
) -> IncidentStatus:
    """Only the partner that sent a report can read it; to anyone else it does not exist
    (404, not 403, so that incident ids reveal nothing)."""
    require(partner, "incidents:read")
    status = await read_status(rt, partner.code, incident_id)
    if status is None:
        raise Problem(404, "not-found", "Not found", f"no report {incident_id} of yours")
    return status


async def read_status(rt: Runtime, partner: str, incident_id: UUID) -> IncidentStatus | None:
    receipt = await rt.pool.fetchrow(
        "SELECT external_id, received_at FROM receipts WHERE incident_id = $1 AND partner = $2",
        incident_id,
        partner,
    )
    if receipt is None:
        return None
    rows = await rt.pool.fetch(
        "SELECT at, status, note FROM public_history WHERE incident_id = $1 ORDER BY at, seq",
        incident_id,
    )
    history = [HistoryEntry(at=r["at"], status=r["status"], note=r["note"]) for r in rows]
    return IncidentStatus(
        incident_id=incident_id,
        external_id=receipt["external_id"],
        status=history[-1].status if history else "received",
        received_at=receipt["received_at"],
        history=history,
    )
