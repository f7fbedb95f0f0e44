"""Per-partner rate limits: a token bucket per partner and process.

Each replica of intake limits on its own (no shared state on the hot path); with N replicas
a partner's effective limit is up to N times its rate, which the deployment accounts for.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._now = time.monotonic

    def take(self, partner: str, per_minute: int, cost: int = 1) -> float:
        """Take ``cost`` tokens; returns 0 when allowed, else seconds until it would be."""
        capacity = float(per_minute)
        rate = per_minute / 60.0
        now = self._now()
        bucket = self._buckets.setdefault(partner, _Bucket(capacity, now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if cost > capacity:
            return math.inf  # can never pass: the caller must split the request
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / rate
