"""Status callbacks: the reporting partner hears what happens to its own reports.

A partner registers a webhook (``veilig partners callback CODE --url … --secret whsec_…``).
When the public status of one of its reports becomes triaged (or needs review), acknowledged,
resolved or merged, a trigger on ``public_state`` (migration 0007) writes a message in the
same transaction, and :func:`deliver` sends it: a Standard Webhooks POST signed with notify's
code (:mod:`services.notify.webhooks`, one home for signing, sending and the target policy),
retried with notify's backoff (:class:`services.notify.retry.RetryPolicy`).

The body holds only what the partner may read of its own report (as ``GET /v1/incidents``
shows it): the incident id, its own external id, the public status and the public note.
Never another partner's data, the category triage chose, or who responds.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime

import asyncpg

from schemas.taxonomy import Profile
from services.common.db import listening
from services.common.pii import open_secret, seal_secret
from services.common.runtime import Runtime, pause
from services.common.settings import Settings
from services.common.supervision import Loop
from services.notify.retry import RetryPolicy
from services.notify.targets import TargetPolicy, TargetRefused, WebhookClient
from services.notify.webhooks import check_secret, send_webhook

CHANNEL = "intake_callbacks"
EVENT_TYPE = "report.status-changed"
PROFILE = Profile.OPERATIONAL  # the target policy's rules for it: https, public addresses
POLICY = RetryPolicy()
TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 65_536
POLL_SECONDS = 5.0
_JITTER = random.Random()


class CallbackError(ValueError):
    """A callback that cannot be registered; the text says why."""


def _policy(settings: Settings) -> TargetPolicy:
    return TargetPolicy(local_development=settings.local_development)


async def set_callback(
    conn: asyncpg.Connection, settings: Settings, partner: str, url: str, secrets: list[str]
) -> None:
    """Register (or replace) ``partner``'s callback; several secrets sign together (rotation)."""
    if not secrets:
        raise CallbackError("give at least one --secret")
    try:
        keys = [check_secret(s) for s in secrets]
        _policy(settings).check_url(url, PROFILE)
    except (ValueError, TargetRefused) as exc:
        raise CallbackError(str(exc)) from None
    done = await conn.execute(
        "INSERT INTO partner_callbacks (partner, url, secrets_sealed, updated_at) "
        "SELECT code, $2, $3, now() FROM partners WHERE code = $1 "
        "ON CONFLICT (partner) DO UPDATE SET url = $2, secrets_sealed = $3, updated_at = now()",
        partner,
        url,
        seal_secret(json.dumps(keys)),
    )
    if done.endswith(" 0"):
        raise CallbackError(f"no partner {partner!r}")


def body_of(row: asyncpg.Record) -> bytes:
    """The message: the partner's own report and its public status, nothing else."""
    at = row["at"].astimezone(UTC).isoformat().replace("+00:00", "Z")
    message = {
        "type": EVENT_TYPE,
        "timestamp": at,
        "data": {
            "incident_id": str(row["incident_id"]),
            "external_id": row["external_id"],
            "status": row["status"],
            "note": row["note"],
            "at": at,
        },
    }
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


async def _send_one(conn: asyncpg.Connection, client: WebhookClient) -> bool:
    """Send the first due message, if any (its row locked meanwhile); False when none is due."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT d.*, c.url, c.secrets_sealed FROM callback_deliveries d "
            "JOIN partner_callbacks c USING (partner) "
            "WHERE d.state = 'pending' AND d.due_at <= now() "
            "ORDER BY d.due_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
        )
        if row is None:
            return False
        result = await send_webhook(
            client,
            row["url"],
            body_of(row),
            message_id=str(row["webhook_id"]),
            secrets=json.loads(open_secret(row["secrets_sealed"])),
            content_type="application/json",
            profile=PROFILE,
            timeout=TIMEOUT_SECONDS,
        )
        attempt = row["attempts"] + 1
        now = datetime.now(UTC)
        due = POLICY.schedule(result, attempt, now, _JITTER)
        state = "delivered" if result.outcome == "delivered" else "failed" if due is None else None
        await conn.execute(
            "UPDATE callback_deliveries SET attempts = $2, state = coalesce($3::text, state), "
            "due_at = coalesce($4::timestamptz, due_at), last_error = $5, "
            "delivered_at = CASE WHEN $3::text = 'delivered' THEN $6::timestamptz END "
            "WHERE id = $1",
            row["id"],
            attempt,
            state,
            due,
            result.error,
            now,
        )
    return True


async def deliver(rt: Runtime, loop: Loop) -> None:
    """The background loop that sends the messages, woken by the trigger's NOTIFY."""
    wake = asyncio.Event()

    def on_notify(*_: object) -> None:
        wake.set()

    client = WebhookClient(_policy(rt.settings), max_response_bytes=MAX_RESPONSE_BYTES)
    try:
        async with listening(rt.pool, CHANNEL, on_notify):
            while not rt.stopping.is_set():
                loop.beat()
                wake.clear()
                async with rt.pool.acquire() as conn:
                    while not rt.stopping.is_set() and await _send_one(conn, client):
                        loop.beat()
                await pause(rt.stopping, wake, POLL_SECONDS)
    finally:
        await client.aclose()
