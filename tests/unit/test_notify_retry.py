"""The retry schedule: exponential backoff with equal jitter, Retry-After as a floor."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from services.notify.retry import (
    DeliveryResult,
    Outcome,
    RetryPolicy,
    backoff_seconds,
    next_attempt_at,
)

NOW = datetime(2025, 3, 28, 22, 41, 5, tzinfo=UTC)


def test_the_schedule_is_reproducible_with_a_seeded_random() -> None:
    def schedule(seed: int) -> list[datetime]:
        rng = random.Random(seed)
        return [
            next_attempt_at(n, NOW, base_seconds=5, max_seconds=600, jitter=rng)
            for n in range(1, 8)
        ]

    assert schedule(42) == schedule(42)
    assert schedule(42) != schedule(43)


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 5), (2, 10), (3, 20), (4, 40), (7, 320), (8, 600), (50, 600)]
)
def test_delay_is_between_half_and_all_of_the_capped_exponential(
    attempt: int, ceiling: float
) -> None:
    rng = random.Random(attempt)
    delays = [
        backoff_seconds(attempt, base_seconds=5, max_seconds=600, jitter=rng) for _ in range(200)
    ]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    # Jitter spreads the retries of many deliveries that failed together.
    assert max(delays) - min(delays) > ceiling / 4


def test_a_huge_attempt_number_does_not_overflow() -> None:
    delay = backoff_seconds(5000, base_seconds=1, max_seconds=60, jitter=random.Random(0))
    assert 30 <= delay <= 60


def test_retry_after_is_a_floor() -> None:
    rng = random.Random(1)
    at = next_attempt_at(1, NOW, base_seconds=5, max_seconds=600, jitter=rng, retry_after=120)
    assert at == NOW + timedelta(seconds=120)
    # A Retry-After shorter than the backoff does not make us come back sooner.
    at = next_attempt_at(
        6, NOW, base_seconds=5, max_seconds=600, jitter=random.Random(1), retry_after=1
    )
    assert at - NOW >= timedelta(seconds=80)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_seconds(0, base_seconds=5, max_seconds=60, jitter=random.Random(0))
    with pytest.raises(ValueError, match="base_seconds"):
        backoff_seconds(1, base_seconds=120, max_seconds=60, jitter=random.Random(0))


@pytest.mark.parametrize(
    ("outcome", "attempt", "final"),
    [
        ("delivered", 1, True),
        ("failed", 1, True),
        ("gone", 1, True),
        ("retry", 1, False),
        ("retry", 4, False),
        ("retry", 5, True),
    ],
)
def test_policy_decides_what_is_final(outcome: Outcome, attempt: int, final: bool) -> None:
    policy = RetryPolicy(base_seconds=2, max_seconds=60, max_attempts=5)
    result = DeliveryResult(outcome)
    assert policy.is_final(result, attempt) is final
    due = policy.schedule(result, attempt, NOW, random.Random(0))
    assert (due is None) is final


def test_policy_schedule_honours_retry_after() -> None:
    policy = RetryPolicy(base_seconds=2, max_seconds=60, max_attempts=5)
    result = DeliveryResult("retry", status_code=429, retry_after=45, error="HTTP 429")
    assert policy.schedule(result, 1, NOW, random.Random(0)) == NOW + timedelta(seconds=45)


@pytest.mark.parametrize("asked", [300.0, 10.0**12])
def test_retry_after_is_capped_at_the_longest_wait(asked: float) -> None:
    """An endpoint cannot park a message beyond the longest wait between attempts."""
    policy = RetryPolicy(base_seconds=2, max_seconds=60, max_attempts=5)
    result = DeliveryResult("retry", status_code=503, retry_after=asked, error="HTTP 503")
    assert policy.schedule(result, 1, NOW, random.Random(0)) == NOW + timedelta(seconds=60)
