"""E-mail: composed from a payload, sent to a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import ValidationError

from schemas.taxonomy import Profile
from services.notify.mail import compose_email, send_email
from services.notify.messages import build_payload
from services.notify.settings import NotifySettings
from tests.unit.test_notify_messages import (
    ADDRESS,
    DESCRIPTION,
    MESSAGE,
    PHONE,
    SECRETS,
    incident,
    payload,
)
from tools.ports import free_port

SENDER = "Veilig Haarlem <veilig@haarlem.nl>"
TO = "coordinator@buurtpreventie-binnenstad.example"


class Mailbox:
    """An SMTP server's handler: refuses some mailboxes the way real servers do, keeps the
    rest."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("unknown@"):
            return "550 5.1.1 <unknown@example.org>: Recipient address rejected: User unknown"
        if address.startswith("busy@"):
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if address.startswith("blocked@"):
            return "554 5.7.1 Relay access denied"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.messages.append(message_from_bytes(raw, policy=policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
async def smtp() -> AsyncIterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(mailbox, hostname="localhost", loop=loop), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    yield mailbox, port
    server.close()
    await server.wait_closed()


@pytest.fixture
def mailbox(smtp: tuple[Mailbox, int]) -> Mailbox:
    smtp[0].messages.clear()
    return smtp[0]


def compose(profile: Profile, **kwargs: Any) -> EmailMessage:
    return compose_email(
        payload(profile, **kwargs), to=TO, sender=SENDER, subject_prefix="[Veilig Haarlem]"
    )


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


async def test_a_full_message_arrives_with_both_parts_and_the_headers(
    mailbox: Mailbox, smtp: tuple[Mailbox, int]
) -> None:
    message = compose(Profile.FULL, ack_url="https://veilig.haarlem.nl/ack/t0k3n?a=1&b=2")
    result = await send_email(message, "127.0.0.1", smtp[1], timeout=5)
    assert result.outcome == "delivered" and result.error is None
    [got] = mailbox.messages
    assert got.get_content_type() == "multipart/alternative"
    assert got["Subject"] == "[Veilig Haarlem] P1 woninginbraak, Binnenstad (Oude Stad)"
    assert got["From"] == SENDER
    assert got["To"] == TO
    assert got["Message-ID"] == f"<{MESSAGE}@haarlem.nl>"
    assert got["Auto-Submitted"] == "auto-generated"
    assert got["Date"] is not None
    text, html = parts(got)
    assert DESCRIPTION in text and ADDRESS in text and PHONE in text
    assert "Bevestig ontvangst: https://veilig.haarlem.nl/ack/t0k3n?a=1&b=2" in text
    assert "Bevestigen vóór: 28-03-2025 23:43" in text  # local time, Europe/Amsterdam
    assert 'href="https://veilig.haarlem.nl/ack/t0k3n?a=1&amp;b=2"' in html
    assert "bel 112" in text


async def test_a_retry_is_recognisably_the_same_message(
    mailbox: Mailbox, smtp: tuple[Mailbox, int]
) -> None:
    for _ in range(2):
        await send_email(compose(Profile.OPERATIONAL), "127.0.0.1", smtp[1], timeout=5)
    first, second = mailbox.messages
    assert first["Message-ID"] == second["Message-ID"] == f"<{MESSAGE}@haarlem.nl>"


def test_free_text_is_escaped_in_html() -> None:
    reported, triaged = incident(description="<script>alert('x')</script> & <b>Jan</b>")
    message = compose_email(
        build_payload(reported, triaged, Profile.OPERATIONAL, message_id=MESSAGE, kind="alert"),
        to=TO,
        sender=SENDER,
        subject_prefix="[VH]",
    )
    text, html = parts(message)
    assert "<script>" not in html and "<b>Jan</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;Jan&lt;/b&gt;" in html
    assert "<script>alert('x')</script> & <b>Jan</b>" in text


async def test_a_coarse_message_has_no_free_text(
    mailbox: Mailbox, smtp: tuple[Mailbox, int]
) -> None:
    message = compose(Profile.COARSE, kind="update", update_reason="Kees belde opnieuw")
    assert (await send_email(message, "127.0.0.1", smtp[1], timeout=5)).outcome == "delivered"
    [got] = mailbox.messages
    text, html = parts(got)
    everything = text + html + str(got["Subject"])
    for secret in [*SECRETS, "Kees belde opnieuw"]:
        assert secret not in everything, secret
    assert "Binnenstad (Oude Stad)" in text
    assert "Tijdstip (per kwartier): 28-03-2025 23:30" in text
    assert got["Subject"] == "[Veilig Haarlem] Update: P1 woninginbraak, Binnenstad (Oude Stad)"


def test_an_update_threads_under_the_first_alert() -> None:
    first = "11111111-2222-4333-8444-555555555555"
    message = compose_email(
        payload(Profile.FULL, kind="cancel"),
        to=TO,
        sender=SENDER,
        subject_prefix="[VH]",
        first_message_id=first,
    )
    assert message["In-Reply-To"] == message["References"] == f"<{first}@haarlem.nl>"
    assert message["Subject"].startswith("[VH] Ingetrokken: P1 woninginbraak")


@pytest.mark.parametrize(
    ("to", "outcome", "code"),
    [
        ("busy@example.org", "retry", "451 4.3.0"),
        ("unknown@example.org", "gone", "550 5.1.1"),
        ("blocked@example.org", "failed", "554 5.7.1"),
    ],
)
async def test_refusals_are_classified(
    mailbox: Mailbox, smtp: tuple[Mailbox, int], to: str, outcome: str, code: str
) -> None:
    message = compose_email(payload(Profile.COARSE), to=to, sender=SENDER, subject_prefix="[VH]")
    result = await send_email(message, "127.0.0.1", smtp[1], timeout=5)
    assert result.outcome == outcome
    assert str(result.error).startswith(f"SMTP {code}")
    assert result.status_code is None
    assert mailbox.messages == []


async def test_connection_refused_is_retried() -> None:
    port = free_port()  # free a moment ago: nobody listens
    result = await send_email(compose(Profile.COARSE), "127.0.0.1", port, timeout=5)
    assert result.outcome == "retry"
    assert result.error


def test_the_sender_needs_a_domain_for_the_message_id() -> None:
    with pytest.raises(ValueError, match="no domain"):
        compose_email(payload(Profile.COARSE), to=TO, sender="veilig", subject_prefix="[VH]")


async def test_smtp_requires_starttls_unless_switched_off_for_a_local_relay(
    mailbox: Mailbox, smtp: tuple[Mailbox, int]
) -> None:
    with pytest.raises(ValidationError, match="only for a relay on loopback"):
        NotifySettings(smtp_host="smtp.example.org", smtp_starttls=False)
    assert NotifySettings().smtp_starttls
    assert not NotifySettings(smtp_host="127.0.0.1", smtp_starttls=False).smtp_starttls
    # This relay offers no STARTTLS: required, nothing is handed to it.
    result = await send_email(compose(Profile.FULL), "127.0.0.1", smtp[1], timeout=5, starttls=True)
    assert result.outcome == "retry" and "STARTTLS" in str(result.error)
    assert mailbox.messages == []
