"""E-mail for recipients without a system endpoint: compose from a payload, send over SMTP.

The message is rendered from a :func:`services.notify.messages.build_payload` payload and
nothing else, so it carries exactly what the recipient's profile allows: a coarse payload has no
free text, exact location or reporter, so neither has its e-mail. Plain text and an HTML
alternative are rendered from the same rows; every value is escaped in the HTML.

The ``Message-ID`` is derived from the platform's message id, so a retry is recognisably the
same message to the recipient's mail system and to people searching their mailbox.

Sending uses aiosmtplib: a native asyncio client, so a slow or dead mail server costs no
thread (the machine has two cores and the notify service runs many deliveries concurrently)
and a timeout cancels the connection cleanly.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from uuid import UUID

import aiosmtplib

from schemas.timeutil import AMSTERDAM
from services.notify.messages import headline, place
from services.notify.retry import DeliveryResult

_KIND = {"alert": "Nieuwe melding", "update": "Update", "cancel": "Ingetrokken"}
FOOTER = "Dit bericht is automatisch verzonden door Veilig Haarlem. Bij acuut gevaar: bel 112."


def message_id_header(message_id: UUID | str, sender: str) -> str:
    """``<message-id@sender-domain>``: the same for every attempt of one platform message."""
    _, at, domain = parseaddr(sender)[1].rpartition("@")
    if not (at and domain):
        raise ValueError(f"sender {sender!r} has no domain for a Message-ID")
    return f"<{message_id}@{domain}>"


def _local(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(AMSTERDAM).strftime("%d-%m-%Y %H:%M")


def _rows(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of what the payload holds; absent fields give no row."""
    report = payload["report"]
    location = report["location"]
    rows = [
        ("Soort", _KIND[payload["kind"]]),
        ("Categorie", payload["category"]["label"]),
        ("Prioriteit", payload["priority"]),
    ]
    named = place(payload["area"])
    if named:
        rows.append(("Buurt", named))
    # Coarse times are rounded down to the quarter hour by minimise; say so.
    when = "Tijdstip (per kwartier)" if payload["profile"] == "coarse" else "Tijdstip"
    rows.append((when, _local(report["occurred_at"])))
    if location.get("address"):
        rows.append(("Adres", location["address"]))
    if location.get("lat") is not None:
        rows.append(("Coördinaten", f"{location['lat']}, {location['lon']}"))
    if report.get("description"):
        rows.append(("Omschrijving", report["description"]))
    if payload.get("update_reason"):
        rows.append(("Reden", payload["update_reason"]))
    reporter = report.get("reporter")
    if reporter and any(reporter.values()):
        rows.append(("Melder", ", ".join(v for v in reporter.values() if v)))
    deadlines = payload["deadlines"]
    if "acknowledge_by" in deadlines:
        rows.append(("Bevestigen vóór", _local(deadlines["acknowledge_by"])))
    if "handle_by" in deadlines:
        rows.append(("Afhandelen vóór", _local(deadlines["handle_by"])))
    rows.append(("Kenmerk", payload["incident_id"]))
    return rows


def _text(title: str, rows: list[tuple[str, str]], ack_url: str | None) -> str:
    lines = [title, "", *(f"{label}: {value}" for label, value in rows)]
    if ack_url:
        lines += ["", f"Bevestig ontvangst: {ack_url}"]
    return "\n".join([*lines, "", FOOTER, ""])


def _html(title: str, rows: list[tuple[str, str]], ack_url: str | None) -> str:
    e = html.escape
    # pre-wrap keeps the line breaks of free text.
    cell = '<tr><th align="left">{}</th><td style="white-space:pre-wrap">{}</td></tr>'
    table = "".join(cell.format(e(label), e(value)) for label, value in rows)
    ack = f'<p><a href="{e(ack_url)}">Bevestig ontvangst</a></p>' if ack_url else ""
    return (
        f'<!DOCTYPE html><html lang="nl"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"</head><body><h1>{e(title)}</h1><table>{table}</table>{ack}"
        f"<p><small>{e(FOOTER)}</small></p></body></html>"
    )


def compose_email(
    payload: dict[str, Any],
    *,
    to: str,
    sender: str,
    subject_prefix: str,
    first_message_id: UUID | str | None = None,
) -> EmailMessage:
    """The e-mail of one notification. ``first_message_id``, for an update or cancel, threads
    it under the first alert in the recipient's mailbox."""
    rows = _rows(payload)
    title = headline(
        payload["kind"], payload["priority"], payload["category"]["label"], payload["area"]
    )
    ack_url = payload.get("ack_url")

    message = EmailMessage()
    message["Subject"] = f"{subject_prefix} {title}".strip()
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id_header(payload["message_id"], sender)
    if first_message_id is not None:
        thread = message_id_header(first_message_id, sender)
        message["In-Reply-To"] = thread
        message["References"] = thread
    # RFC 3834: no out-of-office replies to a machine.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(_text(title, rows, ack_url))
    message.add_alternative(_html(title, rows, ack_url), subtype="html")
    return message


def _by_reply(code: int, text: str, *, recipient: bool = False) -> DeliveryResult:
    error = f"SMTP {code} {text}"[:500]
    # 5.1.1 (and 5.1.10, null MX): the mailbox does not exist; disable it like an HTTP 410.
    if recipient and code >= 500 and text.startswith("5.1.1"):
        return DeliveryResult("gone", error=error)
    if 400 <= code < 500:
        return DeliveryResult("retry", error=error)
    return DeliveryResult("failed", error=error)


async def send_email(
    message: EmailMessage,
    host: str,
    port: int,
    *,
    timeout: float,  # noqa: ASYNC109 - per SMTP operation, handed to aiosmtplib
    starttls: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> DeliveryResult:
    """Send ``message`` (one recipient, as :func:`compose_email` makes it) once and classify:
    accepted is delivered, 4xx replies and connection trouble retry, 5xx replies failed, an
    unknown mailbox gone."""
    try:
        await aiosmtplib.send(
            message,
            hostname=host,
            port=port,
            timeout=timeout,
            start_tls=starttls,
            username=username,
            password=password,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0]
        return _by_reply(first.code, first.message, recipient=True)
    except aiosmtplib.SMTPResponseException as exc:
        return _by_reply(exc.code, exc.message)
    except aiosmtplib.SMTPNotSupported as exc:  # e.g. no STARTTLS or AUTH: configuration
        return DeliveryResult("failed", error=f"SMTP: {exc}")
    except (aiosmtplib.SMTPException, OSError) as exc:  # refused, timeout, disconnected
        return DeliveryResult("retry", error=f"{type(exc).__name__}: {exc}"[:500])
    return DeliveryResult("delivered")
