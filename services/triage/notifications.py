"""What notify did about an incident, as triage staff see it: one line per message with its
delivery state, attempts, acknowledgement and escalations, folded from the notification events
triage keeps (``notification_log``). Pure: the log rows in, the summary out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from schemas.events import (
    NotificationAcknowledged,
    NotificationDelivered,
    NotificationDispatched,
    NotificationEscalated,
    NotificationEscalationScheduled,
    NotificationEvent,
    NotificationFailed,
)

KINDS: Mapping[type[NotificationEvent], str] = {
    NotificationDispatched: "dispatched",
    NotificationDelivered: "delivered",
    NotificationFailed: "failed",
    NotificationEscalated: "escalated",
    NotificationAcknowledged: "acknowledged",
    NotificationEscalationScheduled: "escalation-scheduled",
}
"""event class -> the kind it is logged as."""
_COMMON = frozenset(NotificationEvent.model_fields)


def log_detail(event: NotificationEvent) -> dict[str, Any]:
    """What an event says beyond the fields every notification event has."""
    return event.model_dump(mode="json", exclude=set(_COMMON))


@dataclass
class MessageState:
    message_id: UUID
    recipient: str
    state: str = "pending"
    """dispatched (sent, no answer yet), delivered, failed (for good), retrying, acknowledged."""
    channel: str | None = None
    msg_type: str | None = None
    attempts: int = 0
    sent_at: datetime | None = None
    acknowledge_by: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    last_error: str | None = None
    escalated_to: list[str] = field(default_factory=list)


def summarise(rows: Iterable[Mapping[str, Any]]) -> list[MessageState]:
    """Fold the log rows of one incident (in the order they were logged) into one state per
    message, in the order the messages were first sent."""
    messages: dict[UUID, MessageState] = {}
    for row in rows:
        detail = row["detail"]
        message = messages.setdefault(
            row["message_id"], MessageState(row["message_id"], row["recipient"])
        )
        message.attempts = max(message.attempts, int(detail.get("attempt") or 0))
        message.channel = detail.get("channel") or message.channel
        match row["kind"]:
            case "dispatched":
                message.sent_at = message.sent_at or row["at"]
                message.msg_type = detail.get("cap_msg_type") or message.msg_type
                if detail.get("acknowledge_by"):
                    message.acknowledge_by = datetime.fromisoformat(detail["acknowledge_by"])
                if message.state in ("pending", "retrying"):
                    message.state = "dispatched"
            case "delivered" if message.state != "acknowledged":
                message.state = "delivered"
                message.last_error = None
            case "failed" if message.state != "acknowledged":
                message.state = "failed" if detail.get("final") else "retrying"
                message.last_error = detail.get("error")
            case "escalated":
                message.escalated_to += detail.get("escalated_to", [])
            case "acknowledged":
                message.state = "acknowledged"
                message.acknowledged_at = row["at"]
                message.acknowledged_by = detail.get("acknowledged_by")
    return list(messages.values())
