"""A webhook receiver that misbehaves on request, for `make chaos` scenario 4.

Like the stand-in (:mod:`tools.standins`) it verifies every Standard Webhooks signature and
keeps what it accepted as JSON lines (``$CHAOS_RECEIVER_DIR/webhooks.jsonl``, the stand-in's
format), but its answer depends on the mode set with ``PUT /mode/{mode}``:

- ``ok``: 204 after verifying;
- ``flaky``: 503 for half of the attempts (at random), else as ``ok``;
- ``timeout``: holds the request past the platform's HTTP timeout, then 504; nothing kept;
- ``slow``: answers as ``ok``, after 5 seconds;
- ``gone``: 410, the endpoint is gone (the platform disables the webhook).

Only an accepted delivery is kept: a 5xx, a timeout or a 410 is a delivery that did not
happen. Run with ``python -m tools.chaos.receiver``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Literal, get_args

import uvicorn
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tools.standins import Inbox, incident_of

Mode = Literal["ok", "flaky", "timeout", "slow", "gone"]
MODES: tuple[Mode, ...] = get_args(Mode)


class ReceiverSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHAOS_RECEIVER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8095, description="Port of the faulty receiver.")
    secret: str = Field(description="The whsec_ secret the platform signs with.")
    dir: Path = Field(Path(os.environ.get("RUN_DIR", ".run")) / "chaos-receiver")
    slow_seconds: float = Field(5.0, description="How long a slow answer takes.")
    hang_seconds: float = Field(
        15.0, description="How long a request is held in timeout mode (past NOTIFY's 10 s)."
    )
    mode: Mode = "ok"


def receiver_app(settings: ReceiverSettings, inbox: Inbox) -> Starlette:
    verifier = Webhook(settings.secret)
    state: dict[str, Mode] = {"mode": settings.mode}
    chance = random.Random()

    async def receive(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        mode = state["mode"]
        if mode == "gone":
            return Response(status_code=410)
        if mode == "timeout":
            await asyncio.sleep(settings.hang_seconds)
            return Response(status_code=504)
        if mode == "flaky" and chance.random() < 0.5:
            return Response(status_code=503)
        if mode == "slow":
            await asyncio.sleep(settings.slow_seconds)
        try:
            verifier.verify(body, headers, json_parse=False)
            verified = True
        except WebhookVerificationError:
            verified = False
        content_type = headers.get("content-type", "")
        inbox.add(
            {
                "received_at": time.time(),
                "recipient": request.path_params["recipient"],
                "webhook_id": headers.get("webhook-id"),
                "verified": verified,
                "content_type": content_type,
                "traceparent": headers.get("traceparent"),
                "incident_id": incident_of(body, content_type),
                "body": body.decode("utf-8", errors="replace")[:4000],
                "mode": mode,
            }
        )
        return Response(status_code=204 if verified else 401)

    async def set_mode(request: Request) -> JSONResponse:
        mode = request.path_params["mode"]
        if mode not in MODES:
            return JSONResponse({"error": f"mode is one of {', '.join(MODES)}"}, status_code=400)
        state["mode"] = mode
        return JSONResponse({"mode": mode, "received": inbox.count})

    async def get_mode(request: Request) -> JSONResponse:
        return JSONResponse({"mode": state["mode"], "received": inbox.count})

    return Starlette(
        routes=[
            Route("/hooks/{recipient}", receive, methods=["POST"]),
            Route("/mode/{mode}", set_mode, methods=["PUT"]),
            Route("/mode", get_mode),
        ]
    )


def main() -> None:
    settings = ReceiverSettings()  # type: ignore[call-arg]
    inbox = Inbox(settings.dir / "webhooks.jsonl")
    uvicorn.run(
        receiver_app(settings, inbox), host=settings.host, port=settings.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
