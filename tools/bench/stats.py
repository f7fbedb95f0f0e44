"""The arithmetic of the benchmark: pure functions, unit-tested.

Latencies are seconds; a report that never arrived within the observation window has the
latency ``math.inf``, so that it counts in every percentile instead of vanishing from it.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PERCENTILES = (50.0, 95.0, 99.0)
P99_LIMIT = 1.0
"""Seconds: a rate is sustainable only while p99 stays under this."""
MIN_DELIVERED_RATIO = 0.85
"""Delivered throughput below this share of the offered rate means saturated."""
MAX_BACKLOG_GROWTH = 0.10
"""Backlog growing faster than this share of the offered rate (per second) means saturated."""
MAX_GENERATOR_LAG = 1.0
"""Seconds the load generator may fall behind its schedule before its rate is not offered."""


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ascending ``ordered`` (no interpolation: a reported p99 is
    a latency that a report really had)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles of one set of latencies; ``missing`` never arrived (counted as infinite)."""

    count: int
    missing: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Latency:
        ordered = sorted(values)
        p50, p95, p99 = (percentile(ordered, p) for p in PERCENTILES)
        return cls(
            count=len(ordered),
            missing=sum(math.isinf(v) for v in ordered),
            p50=p50,
            p95=p95,
            p99=p99,
            max=ordered[-1] if ordered else math.nan,
        )

    def as_ms(self) -> dict[str, float | int | None]:
        """For JSON: milliseconds, and None where a percentile fell on a missing report."""

        def ms(value: float) -> float | None:
            return None if not math.isfinite(value) else round(value * 1000.0, 1)

        return {
            "count": self.count,
            "missing": self.missing,
            "p50": ms(self.p50),
            "p95": ms(self.p95),
            "p99": ms(self.p99),
            "max": ms(self.max),
        }


def open_loop_schedule(
    rate: float, seconds: float, max_requests_per_second: float
) -> list[tuple[float, int]]:
    """When to send how many reports to offer ``rate`` reports/s for ``seconds``: a list of
    (offset in seconds, count). Requests go out at fixed ticks, at most
    ``max_requests_per_second`` of them, each carrying the reports whose turn has come
    (cumulative rounding, so the total is exactly ``floor(rate * seconds)``)."""
    if rate <= 0 or seconds <= 0:
        return []
    tick = 1.0 / min(rate, max_requests_per_second)
    ticks = math.ceil(seconds / tick - 1e-9)
    total = math.floor(rate * seconds + 1e-9)
    schedule: list[tuple[float, int]] = []
    done = 0
    for k in range(ticks):
        due = min(total, math.floor(rate * (k + 1) * tick + 1e-9))
        if due > done:
            schedule.append((k * tick, due - done))
            done = due
    return schedule


def count_between(ordered: Sequence[float], start: float, end: float) -> int:
    """How many of the ascending times ``ordered`` fall in (start, end]."""
    return bisect.bisect_right(ordered, end) - bisect.bisect_right(ordered, start)


def backlog(
    sent: Sequence[float], arrived: Sequence[float], start: float, end: float, every: float
) -> list[tuple[float, int]]:
    """Samples of (time, reports sent but not yet arrived), from ascending sent and arrival
    times: the backlog, computed afterwards from the timestamps."""
    samples: list[tuple[float, int]] = []
    t = start
    while t <= end + 1e-9:
        samples.append((t, bisect.bisect_right(sent, t) - bisect.bisect_right(arrived, t)))
        t += every
    return samples


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points; 0 for fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def per_second(times: Iterable[float], start: float, end: float) -> list[int]:
    """Counts per whole second from ``start`` (the last bin may be partial)."""
    bins = [0] * max(1, math.ceil(end - start))
    for t in times:
        if start <= t < end:
            bins[int(t - start)] += 1
    return bins


@dataclass(frozen=True, slots=True)
class StepMeasure:
    """What one open-loop step at a fixed offered rate showed, for one path (delivered or
    counted)."""

    offered: float
    throughput: float  # arrivals per second over the second half of the step
    backlog_growth: float  # reports per second, least squares over the second half
    p99: float


@dataclass(frozen=True, slots=True)
class Verdict:
    saturated: bool
    sustainable: bool
    reasons: list[str] = field(default_factory=list)


def judge(paths: dict[str, StepMeasure], generator_lag: float) -> Verdict:
    """The saturation rule. A step is saturated when, on any path, the throughput falls
    clearly below the offered rate or the backlog keeps growing, or when the load generator
    could not keep to its schedule (then the rate was not really offered). It is sustainable
    when it is not saturated and p99 stays under ``P99_LIMIT`` on every path."""
    reasons: list[str] = []
    for name, m in paths.items():
        if m.throughput < MIN_DELIVERED_RATIO * m.offered:
            reasons.append(f"{name}: {m.throughput:.0f}/s for {m.offered:.0f}/s offered")
        if m.backlog_growth > MAX_BACKLOG_GROWTH * m.offered:
            reasons.append(f"{name}: backlog grows by {m.backlog_growth:.0f}/s")
    if generator_lag > MAX_GENERATOR_LAG:
        reasons.append(f"load generator fell {generator_lag:.1f}s behind its schedule")
    saturated = bool(reasons)
    slow = [name for name, m in paths.items() if not m.p99 < P99_LIMIT]
    if not saturated and slow:
        reasons += [f"{name}: p99 {paths[name].p99:.2f}s >= {P99_LIMIT:.0f}s" for name in slow]
    return Verdict(saturated=saturated, sustainable=not saturated and not slow, reasons=reasons)
