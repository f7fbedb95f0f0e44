"""The consequences of a delivery attempt (``services.notify.delivery.plan``), a pure function:
the delivery's next state, when it is tried again and which notification events it emits. The
set-based recording of them runs against the real database in tests/integration."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from schemas.events import NotificationDelivered, NotificationDispatched, NotificationFailed
from services.common.settings import Settings
from services.notify.delivery import Attempted, plan
from services.notify.registry import Channel, load_registry
from services.notify.retry import DeliveryResult
from services.notify.settings import NotifySettings
from services.notify.store import Notify

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
CONFIG = NotifySettings(retry_max_attempts=3, smtp_host="127.0.0.1")
NOTIFY = Notify(Settings(), CONFIG, load_registry(CONFIG.registry_file))
WEBHOOK_AND_MAIL = Channel(
    code="handhaving",
    webhook_url="https://handhaving.example/hook",
    webhook_format="json",
    secrets=("whsec_x",),
    email="meldingen@handhaving.example",
    webhook_disabled_at=None,
    email_disabled_at=None,
    updated_at=NOW,
)


def row(attempts: int = 1, channel: str = "webhook") -> dict[str, Any]:
    incident = uuid4()
    return {
        "incident_id": incident,
        "message_id": uuid4(),
        "recipient": "handhaving",
        "attempts": attempts,
        "channel": channel,
        "profile": "operational",
        "priority": "P3",
        "cap_identifier": None,
        "cap_msg_type": None,
        "acknowledge_by": None,
    }


def outcome_of(result: DeliveryResult, *, attempts: int = 1, sent: bool = True) -> Any:
    attempted = Attempted(row(attempts), "webhook", WEBHOOK_AND_MAIL, result, sent, None)  # type: ignore[arg-type]
    return plan(NOTIFY, attempted, random.Random(7), NOW)


def test_a_delivered_attempt_emits_dispatched_and_delivered() -> None:
    outcome = outcome_of(DeliveryResult("delivered", status_code=204))
    assert outcome.status == "delivered" and outcome.next_at is None
    assert [type(e) for e in outcome.events] == [NotificationDispatched, NotificationDelivered]
    assert outcome.events[1].status_code == 204


def test_a_retryable_failure_is_pending_with_its_next_attempt() -> None:
    outcome = outcome_of(DeliveryResult("retry", status_code=503, error="HTTP 503"))
    assert outcome.status == "pending" and outcome.next_at is not None and outcome.next_at > NOW
    failed = outcome.events[-1]
    assert isinstance(failed, NotificationFailed) and not failed.final
    assert failed.next_attempt_at == outcome.next_at


def test_the_last_attempt_fails_for_good() -> None:
    outcome = outcome_of(DeliveryResult("retry", error="timeout"), attempts=3)
    assert outcome.status == "failed" and outcome.next_at is None
    assert isinstance(outcome.events[-1], NotificationFailed) and outcome.events[-1].final


def test_a_gone_webhook_with_mail_is_tried_again_at_once() -> None:
    outcome = outcome_of(DeliveryResult("gone", status_code=410, error="HTTP 410 Gone"))
    assert (outcome.status, outcome.next_at) == ("pending", NOW)


def test_nothing_sent_emits_no_dispatch() -> None:
    outcome = outcome_of(DeliveryResult("retry", error="no usable channel"), sent=False)
    assert [type(e) for e in outcome.events] == [NotificationFailed]
