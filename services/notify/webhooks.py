"""Signed webhook delivery (Standard Webhooks, https://www.standardwebhooks.com).

Each POST carries ``webhook-id`` (the platform's message id: the same on every retry, so the
receiver can deduplicate), ``webhook-timestamp`` (unix seconds of this attempt) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` for every active
secret, space-separated, so an endpoint can rotate its secret without a gap. Signing is done by
the ``standardwebhooks`` library, the same code receivers use to verify.

:func:`send_webhook` makes one attempt and classifies it; retrying is the caller's
(:mod:`services.notify.retry`). Redirects are not followed: a signed message must not wander
to another host, and a moved endpoint is a configuration change, not a transient failure.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from secrets import token_bytes

import aiohttp
from standardwebhooks.webhooks import Webhook

from schemas.taxonomy import Profile
from services.notify.retry import DeliveryResult
from services.notify.targets import TargetRefused, WebhookClient

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix, not a secret
_SECRET_BYTES = 32  # the specification asks for 24 to 64 random bytes


def generate_secret() -> str:
    """A new endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(_SECRET_BYTES)).decode()


def check_secret(secret: str) -> str:
    """``secret`` if it is a Standard Webhooks secret (``whsec_`` + base64 of 24 to 64 random
    bytes), else :class:`ValueError`."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        key = b""
    if not secret.startswith(SECRET_PREFIX) or not 24 <= len(key) <= 64:
        raise ValueError("a secret is whsec_ followed by base64 of 24 to 64 random bytes")
    return secret


def sign(body: bytes, *, message_id: str, timestamp: int, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` value: one ``v1,...`` signature per secret."""
    if not secrets:
        raise ValueError("an endpoint needs at least one active secret")
    if not message_id:
        raise ValueError("message_id must not be empty")
    sent = datetime.fromtimestamp(timestamp, UTC)
    # The library signs text; our bodies (JSON, CAP XML) are UTF-8, and a body that is not
    # fails here rather than being signed differently from what is sent.
    text = body.decode("utf-8")
    return " ".join(Webhook(secret).sign(message_id, sent, text) for secret in secrets)


def webhook_headers(
    body: bytes,
    *,
    message_id: str,
    secrets: Sequence[str],
    timestamp: int,
    content_type: str,
    traceparent: str | None = None,
) -> dict[str, str]:
    """The headers of one attempt."""
    headers = {
        "content-type": content_type,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            body, message_id=message_id, timestamp=timestamp, secrets=secrets
        ),
    }
    if traceparent is not None:
        headers["traceparent"] = traceparent
    return headers


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks for (delta-seconds or HTTP-date);
    None when absent or unreadable. A date in the past means "now": 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" in an HTTP-date still means UTC (RFC 9110 IMF-fixdate)
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def classify_response(
    status_code: int, reason: str, retry_after: str | None, now: datetime
) -> DeliveryResult:
    """The outcome of an HTTP answer: 2xx delivered, 410 gone, 408/429/5xx retry, else failed."""
    if 200 <= status_code < 300:
        return DeliveryResult("delivered", status_code=status_code)
    # Only the status line: a receiver may echo our body, which can hold personal data, and
    # the error travels on in a NotificationFailed event.
    error = f"HTTP {status_code} {reason}".strip()
    if status_code == 410:
        return DeliveryResult("gone", status_code=status_code, error=error)
    if status_code in (408, 429) or status_code >= 500:
        return DeliveryResult(
            "retry",
            status_code=status_code,
            retry_after=parse_retry_after(retry_after, now),
            error=error,
        )
    return DeliveryResult("failed", status_code=status_code, error=error)


async def send_webhook(
    client: WebhookClient,
    url: str,
    body: bytes,
    *,
    message_id: str,
    secrets: Sequence[str],
    content_type: str,
    profile: Profile,
    traceparent: str | None = None,
    timeout: float,  # noqa: ASYNC109 - per phase: connect, and each read
) -> DeliveryResult:
    """POST ``body`` to ``url`` once, signed with every secret, and classify the outcome.
    ``profile`` is the recipient's: the client's target policy
    (:func:`services.notify.targets.webhook_client`) decides by it which schemes it may use."""
    headers = webhook_headers(
        body,
        message_id=message_id,
        secrets=secrets,
        timestamp=int(time.time()),
        content_type=content_type,
        traceparent=traceparent,
    )
    try:
        answer = await client.post(url, body, headers=headers, profile=profile, timeout=timeout)
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:  # retrying won't help
        return DeliveryResult("failed", error=f"bad URL: {exc}")
    except TargetRefused as exc:  # neither will it here: the operator must change the URL
        return DeliveryResult("failed", error=f"target refused: {exc}")
    except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
        return DeliveryResult("retry", error=f"timeout: {type(exc).__name__}")
    except (aiohttp.ClientError, OSError) as exc:
        return DeliveryResult("retry", error=f"{type(exc).__name__}: {exc}")
    return classify_response(answer.status, answer.reason, answer.retry_after, datetime.now(UTC))
