"""Acknowledgements: a recipient takes responsibility through its message's one-time link.

Every message that asks for an acknowledgement carries its own random token (256 bits) in
its link; the database keeps only the token's SHA-256, so a database leak yields no usable
link. Using a token, in one transaction: the delivery and the recipient are marked
acknowledged, the recipient's paging stops (and that of the recipient whose escalation the
message was), and NotificationAcknowledged goes out (triage makes IncidentAcknowledged of it).
A second use, or a token of a recipient that already acknowledged, answers when that was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from schemas.events import NotificationAcknowledged
from services.common.outbox import enqueue
from services.notify import store
from services.notify.store import Notify, token_hash


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    incident_id: UUID
    recipient: str
    message_id: UUID
    acknowledged_at: datetime | None
    """When it was acknowledged; None when it has not been (yet)."""
    now: bool = False
    """Acknowledged by this call."""


_FIND = (
    "SELECT d.message_id, d.incident_id, d.recipient, d.channel, d.escalation_root, "
    "coalesce(d.acknowledged_at, a.acknowledged_at) AS acknowledged_at "
    "FROM deliveries d LEFT JOIN audience a USING (incident_id, recipient) "
    "WHERE d.ack_token_hash = $1"
)


def _of(row: asyncpg.Record, at: datetime | None, now: bool = False) -> Acknowledgement:
    return Acknowledgement(row["incident_id"], row["recipient"], row["message_id"], at, now)


async def peek(pool: asyncpg.Pool, token: str) -> Acknowledgement | None:
    """What a token is for and whether it was used, without using it."""
    row = await pool.fetchrow(_FIND, token_hash(token))
    return _of(row, row["acknowledged_at"]) if row else None


async def acknowledge(
    pool: asyncpg.Pool, notify: Notify, token: str, acknowledged_by: str | None
) -> Acknowledgement | None:
    """Use a token; None if no message carries it."""
    digest = token_hash(token)
    async with pool.acquire() as conn, conn.transaction():
        incident_id = await conn.fetchval(
            "SELECT incident_id FROM deliveries WHERE ack_token_hash = $1", digest
        )
        if incident_id is None:
            return None
        await store.load_incident(conn, incident_id)  # serialises with the consumer and timers
        row = await conn.fetchrow(_FIND, digest)
        if row["acknowledged_at"] is not None:
            return _of(row, row["acknowledged_at"])
        now = datetime.now(UTC)
        await conn.execute(
            "UPDATE deliveries SET acknowledged_at = $2 WHERE message_id = $1",
            row["message_id"],
            now,
        )
        await store.mark_acknowledged(
            conn, notify, incident_id, row["recipient"], row["escalation_root"], acknowledged_by
        )
        event = store.notification(
            NotificationAcknowledged,
            now=now,
            incident_id=incident_id,
            message_id=row["message_id"],
            recipient=row["recipient"],
            channel=row["channel"],
            acknowledged_by=acknowledged_by,
        )
        await enqueue(conn, [notify.outgoing(event)])
    return _of(row, now, now=True)
