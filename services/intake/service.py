"""The intake service: what it contributes to the common service runner."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request, Response

from services.common.runtime import Runtime
from services.common.service import ServiceParts, ServiceSpec
from services.common.supervision import Background
from services.intake import api, callbacks, open311
from services.intake.handlers import build_consumers
from services.intake.intake import SINGLES, single_reports
from services.intake.partners import KEYS, KeyCache


async def _open311_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, open311.Open311Error)
    return open311.open311_error_response(exc)


def _build(rt: Runtime) -> ServiceParts:
    keys = rt.extras[KEYS] = KeyCache()
    rt.extras[SINGLES] = single_reports(rt.pool, rt.settings)
    if not rt.settings.works_main:
        # The urgent lane's process only relays the P1/P2 copies, which intake's event loop
        # would delay while it validates and seals batches of hundreds (decision 0006).
        return ServiceParts(background=[Background("key-cache", keys.listen)])
    return ServiceParts(
        kafka=build_consumers(rt),
        background=[
            Background("key-cache", keys.listen),
            Background("status-callbacks", callbacks.deliver),
        ],
    )


SPEC = ServiceSpec(
    name="intake",
    title="Veilig Haarlem — intake",
    description=(
        "The partners' front door: reports over HTTP, Open311 and Kafka become "
        "incident reported events. Not an emergency line: in acute danger call 112."
    ),
    migrations=Path(__file__).parent / "migrations",
    http=[api.router, open311.router],
    build=_build,
    outbox=True,
    channel_secrets=True,
    exception_handlers={open311.Open311Error: _open311_error},
)
