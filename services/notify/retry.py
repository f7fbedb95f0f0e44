"""Delivery outcomes and the retry schedule, as pure functions.

Every channel (webhook, CAP over HTTP, e-mail) reports one :class:`DeliveryResult`; the caller
stores it and asks :func:`next_attempt_at` when to try again. Nothing here sleeps or reads the
clock: ``now`` and the random source come in, so a schedule is reproducible in tests and after a
restart (the lead's delivery records keep the due time, not a timer).

Backoff is exponential with *equal jitter*: half the exponential delay is fixed and half is
random. Full jitter spreads load slightly better but can pick a delay near zero, which for an
endpoint that just answered 503 is a wasted attempt; equal jitter always waits at least half.
A ``Retry-After`` from the endpoint is a floor: we never come back earlier than it asked, up
to ``max_seconds`` (an endpoint cannot park a message for a year).
Deadlines are not this module's business: an unacknowledged or undeliverable P1 escalates on
its own timer, however long the endpoint asked us to wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Outcome = Literal["delivered", "retry", "failed", "gone"]
"""delivered: accepted. retry: a transient failure, try again later. failed: permanent, do not
retry this message. gone: the endpoint says it no longer exists (HTTP 410, unknown mailbox):
disable it and alert ops."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one delivery attempt on any channel."""

    outcome: Outcome
    status_code: int | None = None
    """HTTP status of the endpoint's answer; None for e-mail and when there was no answer."""
    retry_after: float | None = None
    """Seconds the endpoint asked us to wait (``Retry-After``), for ``retry`` only."""
    error: str | None = None
    """What went wrong, short and free of message content; None when delivered."""


def backoff_seconds(
    attempt: int, *, base_seconds: float, max_seconds: float, jitter: random.Random
) -> float:
    """Delay after failed attempt ``attempt`` (1-based): equal jitter over base * 2^(attempt-1),
    capped at ``max_seconds``."""
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    if not 0 < base_seconds <= max_seconds:
        raise ValueError("need 0 < base_seconds <= max_seconds")
    # min() before the power would overflow: 2.0**1100 is inf, and inf/2 + random is still inf.
    ceiling = min(max_seconds, base_seconds * 2.0 ** min(attempt - 1, 64))
    return ceiling / 2 + jitter.uniform(0, ceiling / 2)


def next_attempt_at(
    attempt: int,
    now: datetime,
    *,
    base_seconds: float,
    max_seconds: float,
    jitter: random.Random,
    retry_after: float | None = None,
) -> datetime:
    """When to make attempt ``attempt + 1`` after attempt ``attempt`` failed at ``now``."""
    delay = backoff_seconds(
        attempt, base_seconds=base_seconds, max_seconds=max_seconds, jitter=jitter
    )
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_seconds))
    return now + timedelta(seconds=delay)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how fast one endpoint is retried."""

    base_seconds: float = 5.0
    max_seconds: float = 600.0
    max_attempts: int = 10

    def is_final(self, result: DeliveryResult, attempt: int) -> bool:
        """No attempt follows ``attempt``: it succeeded, failed for good, or was the last."""
        return result.outcome != "retry" or attempt >= self.max_attempts

    def schedule(
        self, result: DeliveryResult, attempt: int, now: datetime, jitter: random.Random
    ) -> datetime | None:
        """When the next attempt is due, or None when ``attempt`` was final."""
        if self.is_final(result, attempt):
            return None
        return next_attempt_at(
            attempt,
            now,
            base_seconds=self.base_seconds,
            max_seconds=self.max_seconds,
            jitter=jitter,
            retry_after=result.retry_after,
        )
