"""What the console shows of notify's work: one line per message, folded from its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from services.triage.notifications import summarise

T0 = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
ALERT, PAGE = uuid4(), uuid4()


def logged(
    message: Any, recipient: str, kind: str, seconds: float, **detail: Any
) -> dict[str, Any]:
    return {
        "message_id": message,
        "recipient": recipient,
        "kind": kind,
        "at": T0 + timedelta(seconds=seconds),
        "detail": detail,
    }


def test_a_retried_message_is_one_line_with_its_attempts_and_last_state() -> None:
    deadline = (T0 + timedelta(minutes=2)).isoformat()
    (line,) = summarise(
        [
            logged(ALERT, "brandweer", "dispatched", 0, channel="cap", attempt=1,
                   cap_msg_type="Alert", acknowledge_by=deadline),
            logged(ALERT, "brandweer", "failed", 1, channel="cap", attempt=1,
                   error="503", final=False),
            logged(ALERT, "brandweer", "dispatched", 6, channel="cap", attempt=2,
                   cap_msg_type="Alert", acknowledge_by=deadline),
            logged(ALERT, "brandweer", "delivered", 7, channel="cap", attempt=2, status_code=200),
        ]
    )  # fmt: skip
    assert (line.state, line.attempts, line.msg_type, line.last_error) == (
        "delivered",
        2,
        "Alert",
        None,
    )
    assert line.sent_at == T0
    assert line.acknowledge_by == T0 + timedelta(minutes=2)


def test_failed_for_good_escalated_and_acknowledged() -> None:
    lines = summarise(
        [
            logged(ALERT, "brandweer", "dispatched", 0, attempt=1),
            logged(ALERT, "brandweer", "failed", 1, attempt=1, error="refused", final=True),
            logged(ALERT, "brandweer", "escalated", 2, escalated_to=["politie.meldkamer"]),
            logged(PAGE, "politie.meldkamer", "dispatched", 2, attempt=1),
            logged(PAGE, "politie.meldkamer", "delivered", 3, attempt=1),
            logged(PAGE, "politie.meldkamer", "acknowledged", 9, acknowledged_by="centralist 7"),
            logged(PAGE, "politie.meldkamer", "delivered", 10, attempt=1),  # late, out of order
        ]
    )
    failed, paged = lines
    assert (failed.state, failed.last_error, failed.escalated_to) == (
        "failed",
        "refused",
        ["politie.meldkamer"],
    )
    assert (paged.state, paged.acknowledged_by) == ("acknowledged", "centralist 7")
    assert paged.acknowledged_at == T0 + timedelta(seconds=9)
