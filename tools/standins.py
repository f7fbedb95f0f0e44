"""Local stand-ins for the outside world, so that `make run` points at no real police system.

- A webhook receiver (``/hooks/{recipient}``) that verifies every Standard Webhooks signature
  with the ``standardwebhooks`` library, keeps what it received, and shows it on a page.
- An SMTP server (aiosmtpd) that keeps the e-mails it is sent.

Both write what they receive as JSON lines under ``$RUN_DIR/standins/`` too, for the demo,
the end-to-end test and the benchmark. Run with ``python -m tools.standins``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import os
import re
import time
from collections import deque
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

_INCIDENT_IN_CAP = re.compile(rb"<incidents>([0-9a-f-]{36})</incidents>")


class StandinSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STANDIN_", extra="ignore")

    host: str = "127.0.0.1"
    webhook_port: int = Field(8090, description="Port of the webhook receiver.")
    smtp_port: int = Field(8025, description="Port of the SMTP server.")
    secret: str = Field(description="The whsec_ secret the platform signs with.")
    dir: Path = Field(Path(os.environ.get("RUN_DIR", ".run")) / "standins")
    fail_first: int = Field(0, description="Answer 503 to this many deliveries (to show retries).")


class Inbox:
    """What arrived, newest last; also appended to a JSON-lines file."""

    def __init__(self, path: Path, keep: int = 2000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.items: deque[dict[str, Any]] = deque(maxlen=keep)
        self.count = 0

    def add(self, item: dict[str, Any]) -> None:
        self.items.append(item)
        self.count += 1
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")


def incident_of(body: bytes, content_type: str) -> str | None:
    if "json" in content_type:
        with contextlib.suppress(ValueError, AttributeError):
            return str(json.loads(body).get("incident_id"))
    found = _INCIDENT_IN_CAP.search(body)
    return found[1].decode() if found else None


def webhook_app(settings: StandinSettings, inbox: Inbox) -> Starlette:
    verifier = Webhook(settings.secret)
    failures_left = settings.fail_first

    async def receive(request: Request) -> Response:
        nonlocal failures_left
        body = await request.body()
        headers = dict(request.headers)
        try:
            verifier.verify(body, headers, json_parse=False)  # CAP bodies are XML
            verified = True
        except WebhookVerificationError:
            verified = False
        if failures_left > 0:
            failures_left -= 1
            return Response(status_code=503, headers={"Retry-After": "1"})
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
            }
        )
        # A receiver must reject what it cannot verify: the platform then retries and alerts.
        return Response(status_code=204 if verified else 401)

    async def alertmanager(request: Request) -> Response:
        """Prometheus Alertmanager's webhook (the benchmark's peer): unsigned, one notification
        per alert group; each alert's ``incident_id`` label counts as a delivery."""
        received = time.time()
        try:
            alerts = json.loads(await request.body()).get("alerts", [])
        except (ValueError, AttributeError):
            return Response(status_code=400)
        for alert in alerts:
            inbox.add(
                {
                    "received_at": received,
                    "recipient": "alertmanager",
                    "webhook_id": None,
                    "verified": False,
                    "content_type": "application/json",
                    "traceparent": None,
                    "incident_id": (alert.get("labels") or {}).get("incident_id"),
                    "body": "",
                }
            )
        return Response(status_code=200)

    async def deliveries(request: Request) -> JSONResponse:
        since = float(request.query_params.get("since", "0"))
        return JSONResponse(
            {"count": inbox.count, "items": [i for i in inbox.items if i["received_at"] > since]}
        )

    async def page(request: Request) -> HTMLResponse:
        rows = "".join(
            f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(i['received_at']))}</td>"
            f"<td>{html.escape(i['recipient'])}</td><td>{'✔' if i['verified'] else '✘'}</td>"
            f"<td>{html.escape(i['content_type'])}</td>"
            f"<td><pre>{html.escape(i['body'][:600])}</pre></td></tr>"
            for i in reversed(inbox.items)
        )
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3>"
            "<title>Stand-in receiver</title><style>body{font-family:sans-serif}"
            "td{vertical-align:top;border-bottom:1px solid #ddd}pre{white-space:pre-wrap;"
            "max-width:60em;margin:0}</style>"
            f"<h1>Stand-in webhook receiver</h1><p>{inbox.count} received (signatures "
            "verified with the standardwebhooks library)</p><table><tr><th>time</th>"
            f"<th>recipient</th><th>signature</th><th>type</th><th>body</th></tr>{rows}</table>"
        )

    return Starlette(
        routes=[
            Route("/hooks/{recipient}", receive, methods=["POST"]),
            Route("/alertmanager", alertmanager, methods=["POST"]),
            Route("/deliveries", deliveries),
            Route("/", page),
        ]
    )


class MailKeeper:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        message = message_from_bytes(
            raw if isinstance(raw, bytes) else raw.encode(), policy=default_policy
        )
        self.inbox.add(
            {
                "received_at": time.time(),
                "to": list(envelope.rcpt_tos),
                "subject": str(message.get("Subject", "")),
                "message_id": str(message.get("Message-ID", "")),
                "parts": [p.get_content_type() for p in message.walk() if not p.is_multipart()],
            }
        )
        return "250 OK"


async def serve(settings: StandinSettings) -> None:
    hooks = Inbox(settings.dir / "webhooks.jsonl")
    mails = Inbox(settings.dir / "mail.jsonl")
    smtp = Controller(MailKeeper(mails), hostname=settings.host, port=settings.smtp_port)
    smtp.start()
    try:
        server = uvicorn.Server(
            uvicorn.Config(
                webhook_app(settings, hooks),
                host=settings.host,
                port=settings.webhook_port,
                log_level="warning",
            )
        )
        await server.serve()
    finally:
        smtp.stop()


def main() -> None:
    asyncio.run(serve(StandinSettings()))  # type: ignore[call-arg]


if __name__ == "__main__":
    main()
