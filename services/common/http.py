"""ASGI pieces shared by the HTTP APIs."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.problems import Problem, problem_response

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _written_as(pattern: re.Pattern[str], what: str) -> BeforeValidator:
    # pydantic would also take a number (seconds since 1970) or other spellings; the OpenAPI
    # document says RFC 3339, and a client generated from it must not learn otherwise.
    def check(value: object) -> object:
        if isinstance(value, date | datetime):
            return value
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"must be {what}")
        return value

    return BeforeValidator(check)


Rfc3339 = Annotated[
    AwareDatetime,
    _written_as(_RFC3339, "an RFC 3339 date-time with offset, e.g. 2026-11-24T10:00:00+01:00"),
]
"""A moment as the APIs take it: RFC 3339 text with an offset, nothing else."""
FullDate = Annotated[date, _written_as(_FULL_DATE, "a date as YYYY-MM-DD")]
"""A day as the APIs take it: RFC 3339 full-date text, nothing else."""


class BodySizeLimit:
    """Answer 413 (problem details) for a request body over ``max_bytes``, whether it says
    its length up front or streams it in chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = Problem(
            413,
            "too-large",
            "Request too large",
            f"the request body may be at most {self.max_bytes} bytes",
        )
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await problem_response(too_large, scope.get("path"))(scope, receive, send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await problem_response(too_large, scope.get("path"))(scope, receive, send)


class _TooLarge(Exception):
    pass
