"""Notify's state in PostgreSQL: incidents, who was told, deliveries and escalation timers.

Every function works inside the caller's transaction. Whoever changes an incident's audience
or timers locks the incident row first (:func:`load_incident`), so the consumer, the
escalation task and acknowledgements never wait on each other in opposite orders.

A message is rendered once, when it is created, and stored sealed with the platform's key (a
full-profile message holds the reporter's contact details): every attempt sends the same bytes
under the same ``webhook-id`` (the message id), and dropping the key purges stored messages too.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4, uuid5

import asyncpg

from schemas.events import (
    EscalationStop,
    IncidentReported,
    IncidentTriaged,
    NotificationEscalationScheduled,
    NotificationEvent,
)
from schemas.taxonomy import Priority, Profile, taxonomy
from schemas.timeutil import add_window
from services.common.observability import current_traceparent
from services.common.outbox import OutgoingMessage, enqueue, event_message
from services.common.pii import seal
from services.common.settings import Settings
from services.notify.cap import CAP_MEDIA_TYPE, SENDER, MsgType, build_cap
from services.notify.messages import JSON_MEDIA_TYPE, Kind, build_payload, encode_payload
from services.notify.registry import ChannelCache, Registry
from services.notify.settings import NotifySettings

# Message ids are derived from what caused them, so a replayed cause makes the same message.
_MESSAGES = UUID("8f1d6c52-0b7e-4f43-9d6a-2a9e5b3c7d10")
WAKE_CHANNEL = "notify_deliveries"
URGENT_WAKE_CHANNEL = "notify_deliveries_urgent"  # P1/P2 deliveries queued (migration 0013)
# A delivery's states (the CHECK on deliveries.status): quarantined is set aside after a
# deterministic error, for ops to look at (services/notify/delivery.py).
DeliveryStatus = Literal["pending", "in_flight", "delivered", "failed", "quarantined"]
Source = Literal["decision", "escalation", "signal"]
_LATER_CAP: dict[Kind, MsgType] = {"alert": "Update", "update": "Update", "cancel": "Cancel"}
N = TypeVar("N", bound=NotificationEvent)


@dataclass(frozen=True, slots=True)
class Notify:
    """What the consumer, the worker, the escalation task and the API share."""

    settings: Settings
    config: NotifySettings
    registry: Registry
    channels: ChannelCache = field(default_factory=ChannelCache)

    @property
    def base_url(self) -> str:
        return self.config.base_url(self.settings)

    def outgoing(self, event: NotificationEvent) -> OutgoingMessage:
        return event_message(self.settings, event, traceparent=current_traceparent())

    def window(self, priority: Priority, start: datetime) -> datetime:
        """When a recipient paged at ``start`` must have acknowledged (scaled for tests)."""
        allowed = add_window(start, taxonomy().priority(priority).acknowledge_within) - start
        return start + allowed * self.config.escalation_time_scale


def message_id(*cause: object) -> UUID:
    return uuid5(_MESSAGES, "/".join(str(part) for part in cause))


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def notification(cls: type[N], *, now: datetime, **fields: Any) -> N:
    """A notification event of notify, happening now."""
    return cls(event_id=uuid4(), occurred_at=now, recorded_at=now, producer="notify", **fields)


@dataclass(frozen=True, slots=True)
class Incident:
    incident_id: UUID
    reported: IncidentReported | None
    triaged: IncidentTriaged | None
    closed: bool

    @property
    def ready(self) -> bool:
        """Known well enough to message about, and still open."""
        return self.reported is not None and self.triaged is not None and not self.closed

    def values(self) -> dict[str, str | None]:
        """What fills the placeholders of recipient codes ({wijk}, {buurt}, {partner})."""
        return {
            "wijk": self.triaged.wijk_code if self.triaged else None,
            "buurt": self.triaged.buurt_code if self.triaged else None,
            "partner": self.reported.partner if self.reported else None,
        }

    def acknowledge_deadline(self, notify: Notify) -> datetime:
        """The decision's acknowledge_by, its window scaled from when the report came in."""
        assert self.reported is not None and self.triaged is not None
        start = self.reported.recorded_at
        return start + (self.triaged.acknowledge_by - start) * notify.config.escalation_time_scale


async def load_incidents(
    conn: asyncpg.Connection, incident_ids: Iterable[UUID]
) -> dict[UUID, Incident]:
    """The incidents, their rows locked in id order (created empty where notify has not seen
    one yet): one statement, since the upsert's update takes the row lock."""
    rows = await conn.fetch(
        "INSERT INTO incidents (incident_id) SELECT unnest($1::uuid[]) "
        "ON CONFLICT (incident_id) DO UPDATE SET incident_id = excluded.incident_id "
        "RETURNING incident_id, reported, triaged, closed_at",
        sorted(set(incident_ids)),
    )
    return {
        row["incident_id"]: Incident(
            incident_id=row["incident_id"],
            reported=IncidentReported.model_validate_json(row["reported"])
            if row["reported"]
            else None,
            triaged=IncidentTriaged.model_validate_json(row["triaged"]) if row["triaged"] else None,
            closed=row["closed_at"] is not None,
        )
        for row in rows
    }


async def load_incident(conn: asyncpg.Connection, incident_id: UUID) -> Incident:
    return (await load_incidents(conn, [incident_id]))[incident_id]


async def save_reported(conn: asyncpg.Connection, events: Sequence[IncidentReported]) -> None:
    """Keep reports to render messages from: a run of them in one statement (the last of an
    incident's wins, as one at a time would have it)."""
    latest = {event.incident_id: event for event in events}
    await conn.execute(
        "INSERT INTO incidents (incident_id, reported) "
        "SELECT * FROM unnest($1::uuid[], $2::jsonb[]) "
        "ON CONFLICT (incident_id) DO UPDATE SET reported = excluded.reported, updated_at = now()",
        list(latest),
        [event.model_dump_json() for event in latest.values()],
    )


async def save_decisions(
    conn: asyncpg.Connection, decisions: Sequence[tuple[Incident, IncidentTriaged]]
) -> list[Incident]:
    """Each incident with its current decision, kept in one statement."""
    await conn.execute(
        "UPDATE incidents i SET triaged = d.triaged::jsonb, updated_at = now() "
        "FROM unnest($1::uuid[], $2::text[]) AS d (incident_id, triaged) "
        "WHERE i.incident_id = d.incident_id",
        [incident.incident_id for incident, _ in decisions],
        [triaged.model_dump_json() for _, triaged in decisions],
    )
    return [Incident(i.incident_id, i.reported, t, i.closed) for i, t in decisions]


async def save_triaged(
    conn: asyncpg.Connection, incident: Incident, triaged: IncidentTriaged
) -> Incident:
    return (await save_decisions(conn, [(incident, triaged)]))[0]


async def set_closed(conn: asyncpg.Connection, incident_id: UUID, closed: bool) -> None:
    await conn.execute(
        "UPDATE incidents SET closed_at = CASE WHEN $2 THEN coalesce(closed_at, now()) END, "
        "updated_at = now() WHERE incident_id = $1",
        incident_id,
        closed,
    )


@dataclass(frozen=True, slots=True)
class Member:
    """A recipient that was told about an incident."""

    recipient: str
    profile: Profile
    source: Source
    active: bool
    first_message_id: UUID
    cap_reference: tuple[str, str, datetime] | None
    acknowledged_at: datetime | None


async def audiences(
    conn: asyncpg.Connection, incident_ids: Sequence[UUID]
) -> dict[UUID, dict[str, Member]]:
    """Who was told about each of the incidents (an incident nobody was told of is left out)."""
    rows = await conn.fetch(
        "SELECT * FROM audience WHERE incident_id = ANY($1::uuid[]) "
        "ORDER BY incident_id, recipient",
        incident_ids,
    )
    told: dict[UUID, dict[str, Member]] = {}
    for row in rows:
        told.setdefault(row["incident_id"], {})[row["recipient"]] = Member(
            recipient=row["recipient"],
            profile=Profile(row["profile"]),
            source=row["source"],
            active=row["active"],
            first_message_id=row["first_message_id"],
            cap_reference=(SENDER, row["cap_identifier"], row["cap_sent"])
            if row["cap_identifier"]
            else None,
            acknowledged_at=row["acknowledged_at"],
        )
    return told


async def audience(conn: asyncpg.Connection, incident_id: UUID) -> dict[str, Member]:
    return (await audiences(conn, [incident_id])).get(incident_id, {})


async def active_audience(conn: asyncpg.Connection, incident_id: UUID) -> dict[str, Member]:
    return {code: m for code, m in (await audience(conn, incident_id)).items() if m.active}


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one recipient about one incident."""

    message_id: UUID
    recipient: str
    profile: Profile
    kind: Kind
    reason: str | None = None
    # The recipient whose missing acknowledgement this message pages for, if it is a page.
    escalation_root: str | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """A rendered message as its delivery row, with the audience row that goes with it: what
    :func:`queue` writes, a column a field."""

    incident_id: UUID
    recipient: str
    profile: str
    source: Source
    active: bool
    first_message_id: UUID
    audience_cap_identifier: str | None  # set on the audience row by a first CAP alert only
    audience_cap_sent: datetime | None
    message_id: UUID
    kind: Kind
    channel: str
    priority: str
    content_type: str
    body_sealed: str
    cap_identifier: str | None
    cap_msg_type: str | None
    acknowledge_by: datetime | None
    escalation_root: str | None
    ack_token_hash: bytes | None
    traceparent: str | None

    @property
    def asks(self) -> bool:
        """Whether the recipient is asked to acknowledge (only then it gets a token)."""
        return self.ack_token_hash is not None


# The columns of :func:`queue`'s arrays: the draft's fields, text unless named here.
_QUEUE_COLUMNS = tuple(f.name for f in fields(Draft))
_QUEUE_TYPES = {
    "incident_id": "uuid",
    "active": "boolean",
    "first_message_id": "uuid",
    "audience_cap_sent": "timestamptz",
    "message_id": "uuid",
    "acknowledge_by": "timestamptz",
    "ack_token_hash": "bytea",
}
# The audience rows and the deliveries in one round trip (a data-modifying CTE) for any
# number of drafts; one (incident, recipient) at most once a statement.
_QUEUE = (
    "WITH d AS (SELECT * FROM unnest("  # noqa: S608 (fixed names)
    + ", ".join(
        f"${n}::{_QUEUE_TYPES.get(name, 'text')}[]" for n, name in enumerate(_QUEUE_COLUMNS, 1)
    )
    + ") WITH ORDINALITY AS d ("
    + ", ".join(_QUEUE_COLUMNS)
    + ", ordinality)), "
    "told AS (INSERT INTO audience (incident_id, recipient, profile, source, active, "
    "first_message_id, cap_identifier, cap_sent) SELECT incident_id, recipient, profile, source, "
    "active, first_message_id, audience_cap_identifier, audience_cap_sent FROM d "
    "ON CONFLICT (incident_id, recipient) DO UPDATE SET profile = excluded.profile, "
    "active = excluded.active, "
    "source = CASE WHEN excluded.source = 'decision' THEN excluded.source "
    "ELSE audience.source END, "
    "cap_identifier = coalesce(audience.cap_identifier, excluded.cap_identifier), "
    "cap_sent = coalesce(audience.cap_sent, excluded.cap_sent)) "
    "INSERT INTO deliveries (message_id, incident_id, recipient, kind, channel, profile, "
    "priority, content_type, body_sealed, first_message_id, cap_identifier, cap_msg_type, "
    "acknowledge_by, escalation_root, ack_token_hash, traceparent) "
    "SELECT message_id, incident_id, recipient, kind, channel, profile, priority, content_type, "
    "body_sealed, first_message_id, cap_identifier, cap_msg_type, acknowledge_by, "
    "escalation_root, ack_token_hash, traceparent FROM d ORDER BY ordinality "
    "ON CONFLICT (message_id) DO NOTHING"
)


async def draft(
    conn: asyncpg.Connection,
    notify: Notify,
    incident: Incident,
    message: Message,
    *,
    source: Source,
    acknowledge_by: datetime | None,
    ask: bool = True,
    members: dict[str, Member] | None = None,
) -> Draft:
    """Render ``message`` for the recipient's channel, to be queued (:func:`queue`); the
    recipient is asked to acknowledge it unless not ``ask`` (a signal, not the incident, for
    which an acknowledgement would count). ``members``: the incident's audience as far as the
    caller has it at hand, the recipient included (else it is read)."""
    assert incident.reported is not None and incident.triaged is not None
    now = datetime.now(UTC)
    if members is None:
        members = await audience(conn, incident.incident_id)
    member = members.get(message.recipient)
    channel = await notify.channels.get(conn, message.recipient)
    # Without a usable channel the message is still queued: its attempts fail visibly until an
    # operator configures one (or the attempts run out), instead of vanishing here.
    route = (channel.route(message.profile) if channel else None) or "webhook"
    asks = (
        ask
        and message.kind != "cancel"
        and notify.registry.entry(message.recipient).acknowledges
        and (member is None or member.acknowledged_at is None)
    )
    token = secrets.token_urlsafe(32) if asks else None
    ack_url = f"{notify.base_url}/ack/{token}" if token else None
    cap_identifier: str | None = None
    cap_msg_type: MsgType | None = None
    if route == "cap":
        cap_identifier = f"nl.haarlem.veilig.{message.message_id}"
        reference = member.cap_reference if member else None
        cap_msg_type = "Alert" if reference is None else _LATER_CAP[message.kind]
        body = build_cap(
            incident.reported,
            incident.triaged,
            msg_type=cap_msg_type,
            identifier=cap_identifier,
            sent=now,
            references=[reference] if reference else None,
            ack_url=ack_url,
            note=message.reason,
        )
        content_type = CAP_MEDIA_TYPE
    else:
        # E-mail is rendered from the same payload when it is sent (compose_email).
        payload = build_payload(
            incident.reported,
            incident.triaged,
            message.profile,
            message_id=message.message_id,
            kind=message.kind,
            update_reason=message.reason,
            ack_url=ack_url,
        )
        body = encode_payload(payload)
        content_type = JSON_MEDIA_TYPE
    new_alert = cap_msg_type == "Alert"
    return Draft(
        incident_id=incident.incident_id,
        recipient=message.recipient,
        profile=message.profile.value,
        source=source,
        active=message.kind != "cancel",
        first_message_id=member.first_message_id if member else message.message_id,
        audience_cap_identifier=cap_identifier if new_alert else None,
        audience_cap_sent=now if new_alert else None,
        message_id=message.message_id,
        kind=message.kind,
        channel=route,
        priority=incident.triaged.priority,
        content_type=content_type,
        body_sealed=seal(body.decode()),
        cap_identifier=cap_identifier,
        cap_msg_type=cap_msg_type,
        acknowledge_by=acknowledge_by if asks else None,
        escalation_root=message.escalation_root,
        ack_token_hash=token_hash(token) if token else None,
        traceparent=current_traceparent(),
    )


async def queue(conn: asyncpg.Connection, drafts: Sequence[Draft]) -> None:
    """Queue the drafts' deliveries (and note their recipients as told) in one statement;
    inserting deliveries wakes the worker (a trigger: migration 0009)."""
    if drafts:
        await conn.execute(_QUEUE, *([getattr(d, name) for d in drafts] for name in _QUEUE_COLUMNS))


async def tell(
    conn: asyncpg.Connection,
    notify: Notify,
    incident: Incident,
    kind: Kind,
    reason: str,
    cause: UUID,
    members: dict[str, Member] | None = None,
) -> None:
    """Send ``kind`` to every recipient still told about the incident (or to ``members``)."""
    members = members if members is not None else await active_audience(conn, incident.incident_id)
    deadline = incident.acknowledge_deadline(notify)
    drafts = [
        await draft(
            conn,
            notify,
            incident,
            Message(
                message_id(cause, incident.incident_id, member.recipient),
                member.recipient,
                member.profile,
                kind,
                reason,
            ),
            source=member.source,
            acknowledge_by=deadline,
            members=members,
        )
        for member in members.values()
    ]
    await queue(conn, drafts)


async def watch(
    conn: asyncpg.Connection, notify: Notify, incident: Incident, *, first_decision: bool = False
) -> None:
    """(Re)start the acknowledgement timers for the incident's current decision: one per
    recipient that acknowledges and has not, while the priority escalates (P1, P2). Before a
    ``first_decision`` no timer can run, so none needs stopping."""
    assert incident.triaged is not None
    if not taxonomy().priority(incident.triaged.priority).escalate_unacknowledged:
        if not first_decision:
            await stop_escalations(conn, notify, incident.incident_id, None, "priority")
        return
    deadline = incident.acknowledge_deadline(notify)
    for member in (await active_audience(conn, incident.incident_id)).values():
        if (
            member.source == "decision"
            and member.acknowledged_at is None
            and notify.registry.entry(member.recipient).acknowledges
        ):
            # A timer that already escalated keeps its own rhythm; a waiting one gets the
            # new deadline. An acknowledged one stays stopped.
            changed = await conn.fetch(
                "INSERT INTO escalations (incident_id, recipient, message_id, escalate_at, "  # noqa: S608 (fixed names)
                "deadline) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (incident_id, recipient) "
                "DO UPDATE SET escalate_at = $4, deadline = $4, stopped_at = NULL, "
                "stop_reason = NULL WHERE escalations.level = 0 "
                "AND escalations.stop_reason IS DISTINCT FROM 'acknowledged' "
                "AND (escalations.escalate_at <> $4 OR escalations.stopped_at IS NOT NULL) "
                f"RETURNING {TIMER}",
                incident.incident_id,
                member.recipient,
                member.first_message_id,
                deadline,
            )
            await announce_timers(conn, notify, changed)


TIMER = "incident_id, recipient, message_id, level, escalate_at, stopped_at, stop_reason"
"""An escalation timer as :func:`announce_timers` tells of it (``RETURNING`` it)."""


async def announce_timers(
    conn: asyncpg.Connection, notify: Notify, timers: Sequence[asyncpg.Record]
) -> None:
    """Tell what became of escalation timers (set, moved, stopped) in the same transaction:
    the triage console counts down to the next page from these events."""
    now = datetime.now(UTC)
    events = [
        notification(
            NotificationEscalationScheduled,
            now=now,
            incident_id=t["incident_id"],
            message_id=t["message_id"],
            recipient=t["recipient"],
            level=t["level"],
            escalate_at=None if t["stopped_at"] else t["escalate_at"],
            stopped=t["stop_reason"],
        )
        for t in timers
    ]
    await enqueue(conn, [notify.outgoing(e) for e in events])


async def stop_escalations(
    conn: asyncpg.Connection,
    notify: Notify,
    incident_id: UUID,
    recipients: list[str] | None,
    reason: EscalationStop,
) -> None:
    """Stop the timers of ``recipients`` (None: all) of an incident."""
    stopped = await conn.fetch(
        "UPDATE escalations SET stopped_at = now(), stop_reason = $3 WHERE incident_id = $1 "  # noqa: S608 (fixed names)
        "AND stopped_at IS NULL AND ($2::text[] IS NULL OR recipient = ANY($2::text[])) "
        f"RETURNING {TIMER}",
        incident_id,
        recipients,
        reason,
    )
    await announce_timers(conn, notify, stopped)


async def mark_acknowledged(
    conn: asyncpg.Connection,
    notify: Notify,
    incident_id: UUID,
    recipient: str,
    root: str | None,
    acknowledged_by: str | None,
) -> None:
    """``recipient`` took responsibility: no more paging for it, nor for ``root`` whose page it
    answered."""
    await conn.execute(
        "UPDATE audience SET acknowledged_at = now(), acknowledged_by = $3 "
        "WHERE incident_id = $1 AND recipient = $2 AND acknowledged_at IS NULL",
        incident_id,
        recipient,
        acknowledged_by,
    )
    await stop_escalations(
        conn,
        notify,
        incident_id,
        [recipient] if root is None else [recipient, root],
        "acknowledged",
    )
