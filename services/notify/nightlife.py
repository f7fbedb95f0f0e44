"""The nightly summary of nightlife nuisance in the centre, for the hospitality association.

``horeca.khn`` (coarse) gets, the morning after each nightlife night (taxonomy
``nightlife``: its hours and nights), how many nightlife-nuisance incidents happened in the
centre wijk per street and local hour: counts only, no text, no exact place, no reporter. A
street is the words before the house number of an address as reported; a report with a point
or an unusable address counts under its buurt's name. Signed and sent as a Standard Webhooks
message over the recipient's channel (``veilig recipients set horeca.khn ...``), retried
every :data:`CHECK_SECONDS` until delivered; one message per night (``nightly_summaries``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from schemas import geo
from schemas.taxonomy import Profile, taxonomy
from schemas.timeutil import AMSTERDAM, is_nightlife
from services.common.runtime import Runtime, pause
from services.common.supervision import Loop
from services.notify.retry import DeliveryResult
from services.notify.store import Notify, message_id
from services.notify.targets import WebhookClient, webhook_client
from services.notify.webhooks import send_webhook

RECIPIENT = "horeca.khn"
CATEGORY = "uitgaansoverlast"
CHECK_SECONDS = 60.0
SETTLE = timedelta(hours=1)
"""How long after a night is over its summary waits for late reports."""
_STREET = re.compile(r"^\s*([A-Za-zÀ-ÿ' .-]{2,60}?)[\s,]*\d")


def street_of(address: str | None, buurt_code: str | None) -> str:
    """The street of an address (the words before its house number), else the buurt."""
    found = _STREET.match(address or "")
    if found:
        return " ".join(found[1].split()).title()
    if buurt_code:
        return f"buurt {geo.buurt(buurt_code).name}"
    return "onbekend"


def night_bounds(evening: date) -> tuple[datetime, datetime]:
    """The nightlife hours of the night that starts on ``evening``, in UTC."""
    rule = taxonomy().nightlife
    start = datetime.combine(evening, rule.starts, tzinfo=AMSTERDAM)
    end = datetime.combine(evening + timedelta(days=1), rule.ends, tzinfo=AMSTERDAM)
    return start.astimezone(UTC), end.astimezone(UTC)


def last_night(now: datetime) -> date | None:
    """The evening of the latest nightlife night over (and settled) at ``now``, within a
    week."""
    today = now.astimezone(AMSTERDAM).date()
    for back in range(1, 8):
        evening = today - timedelta(days=back)
        start, end = night_bounds(evening)
        if end + SETTLE <= now and is_nightlife(start):
            return evening
    return None


def summary(evening: date, incidents: Iterable[tuple[datetime, str]]) -> dict[str, object]:
    """The message: counts per street and local hour of the night, nothing else."""
    counts = Counter(
        (street, at.astimezone(AMSTERDAM).strftime("%H:00")) for at, street in incidents
    )
    hours = [time(h).strftime("%H:00") for h in (*range(22, 24), *range(0, 5))]
    return {
        "type": "nightlife.summary",
        "night": evening.isoformat(),
        "area": {"wijk_code": taxonomy().nightlife.centre_wijk, "category": CATEGORY},
        "total": sum(counts.values()),
        "counts": [
            {"street": street, "hour": hour, "count": n}
            for (street, hour), n in sorted(
                counts.items(), key=lambda item: (item[0][0], hours.index(item[0][1]))
            )
        ],
    }


async def _incidents(conn: asyncpg.Connection, evening: date) -> list[tuple[datetime, str]]:
    start, end = night_bounds(evening)
    rows = await conn.fetch(
        "SELECT (reported->>'occurred_at')::timestamptz AS at, "
        "reported->'location'->>'address' AS address, triaged->>'buurt_code' AS buurt "
        "FROM incidents WHERE triaged->>'category' = $1 AND triaged->>'wijk_code' = $2 "
        "AND (reported->>'occurred_at')::timestamptz >= $3 "
        "AND (reported->>'occurred_at')::timestamptz < $4",
        CATEGORY,
        taxonomy().nightlife.centre_wijk,
        start,
        end,
    )
    return [(r["at"], street_of(r["address"], r["buurt"])) for r in rows]


async def send_summary(
    conn: asyncpg.Connection, notify: Notify, client: WebhookClient, evening: date
) -> DeliveryResult | None:
    """Send the summary of the night of ``evening`` unless it was delivered; None when it
    was, or when the recipient has no usable webhook (it stays due). The night's row is locked
    while it is sent: two senders (replicas of notify) never both send it."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO nightly_summaries (night, attempts) VALUES ($1, 0) "
            "ON CONFLICT (night) DO NOTHING",
            evening,
        )
        if await conn.fetchval(
            "SELECT delivered_at IS NOT NULL FROM nightly_summaries WHERE night = $1 FOR UPDATE",
            evening,
        ):
            return None
        channel = await notify.channels.get(conn, RECIPIENT)
        if channel is None or channel.webhook_url is None or not channel.usable("webhook"):
            return None
        body = json.dumps(
            summary(evening, await _incidents(conn, evening)), separators=(",", ":")
        ).encode()
        result = await send_webhook(
            client,
            channel.webhook_url,
            body,
            message_id=str(message_id("nightlife", evening)),
            secrets=channel.secrets,
            content_type="application/json",
            profile=Profile.COARSE,
            timeout=notify.config.http_timeout_seconds,
        )
        await conn.execute(
            "UPDATE nightly_summaries SET attempts = attempts + 1, last_error = $2, "
            "delivered_at = $3 WHERE night = $1",
            evening,
            result.error,
            datetime.now(UTC) if result.outcome == "delivered" else None,
        )
    return result


async def nightly(rt: Runtime, loop: Loop, notify: Notify) -> None:
    """The background loop: the last nightlife night's summary, until it is delivered."""
    async with webhook_client(rt.settings, notify.config) as client:
        while not rt.stopping.is_set():
            loop.beat()
            evening = last_night(datetime.now(UTC))
            if evening is not None:
                async with rt.pool.acquire() as conn:
                    await send_summary(conn, notify, client, evening)
            await pause(rt.stopping, None, CHECK_SECONDS)
