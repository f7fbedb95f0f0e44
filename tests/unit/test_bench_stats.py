"""The benchmark's arithmetic: percentiles, the open-loop schedule, backlog and the
saturation rule."""

from __future__ import annotations

import math
from itertools import accumulate, pairwise

import pytest

from tools.bench.stats import (
    Latency,
    StepMeasure,
    backlog,
    count_between,
    judge,
    open_loop_schedule,
    per_second,
    percentile,
    slope,
)


def test_percentile_is_nearest_rank_so_it_is_a_latency_that_happened() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 .. 100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([0.1, 0.2, 0.3], 50) == 0.2  # no interpolation
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_reports_that_never_arrived_count_as_infinite_latency() -> None:
    # 98 arrived within a second, 2 never: p99 falls on a missing report.
    latency = Latency.of([0.5] * 98 + [math.inf] * 2)
    assert latency.count == 100 and latency.missing == 2
    assert latency.p50 == latency.p95 == 0.5
    assert math.isinf(latency.p99)
    assert latency.as_ms() == {
        "count": 100,
        "missing": 2,
        "p50": 500.0,
        "p95": 500.0,
        "p99": None,
        "max": None,
    }


def test_latency_of_nothing_is_not_a_number_not_zero() -> None:
    assert Latency.of([]).as_ms()["p50"] is None


@pytest.mark.parametrize(
    ("rate", "seconds", "requests", "ticks", "total"),
    [
        (50, 8, 50, 400, 400),  # one report a request, every 20 ms
        (10, 2, 50, 20, 20),  # below the request cap: one a tick, ticks 100 ms apart
        (2000, 25, 50, 1250, 50_000),  # 40 a batch, 50 batches a second
        (333, 3, 50, 150, 999),  # uneven: cumulative rounding keeps the total exact
    ],
)
def test_open_loop_schedule_offers_exactly_the_rate(
    rate: float, seconds: float, requests: float, ticks: int, total: int
) -> None:
    schedule = open_loop_schedule(rate, seconds, requests)
    assert len(schedule) == ticks
    assert sum(count for _, count in schedule) == total
    offsets = [offset for offset, _ in schedule]
    assert offsets == sorted(offsets) and offsets[0] == 0 and offsets[-1] < seconds
    # Fixed ticks: the gaps are all the same.
    gaps = {round(b - a, 9) for a, b in pairwise(offsets)}
    assert gaps == {round(1 / min(rate, requests), 9)}
    # Never more due than the rate allows up to any tick.
    for (offset, _), done in zip(schedule, accumulate(c for _, c in schedule), strict=True):
        assert done <= rate * (offset + 1 / min(rate, requests)) + 1e-6


def test_open_loop_schedule_of_nothing() -> None:
    assert open_loop_schedule(0, 10, 50) == []
    assert open_loop_schedule(100, 0, 50) == []


def test_counts_and_bins() -> None:
    times = [0.5, 1.0, 1.5, 2.5, 9.0]
    assert count_between(times, 1.0, 2.5) == 2  # (1.0, 2.5]
    assert per_second(times, 0.0, 3.0) == [1, 2, 1]
    assert per_second([], 10.0, 10.5) == [0]


def test_backlog_is_sent_minus_arrived_at_each_sample() -> None:
    sent = [0.0, 0.1, 0.2, 1.0]
    arrived = [0.5, 1.5]
    assert backlog(sent, arrived, 0.0, 2.0, every=0.5) == [
        (0.0, 1),
        (0.5, 2),
        (1.0, 3),
        (1.5, 2),
        (2.0, 2),
    ]


def test_slope_is_least_squares() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert slope([(0, 5), (1, 5)]) == 0
    assert slope([(1, 5)]) == 0
    assert slope([(1, 5), (1, 6)]) == 0


def measure(
    offered: float, throughput: float, growth: float = 0.0, p99: float = 0.2
) -> StepMeasure:
    return StepMeasure(offered=offered, throughput=throughput, backlog_growth=growth, p99=p99)


def test_a_step_that_keeps_up_with_low_latency_is_sustainable() -> None:
    verdict = judge({"delivered": measure(200, 196), "counted": measure(200, 201)}, 0.01)
    assert not verdict.saturated and verdict.sustainable and verdict.reasons == []


def test_throughput_clearly_below_the_offered_rate_saturates() -> None:
    verdict = judge({"delivered": measure(500, 300), "counted": measure(500, 500)}, 0.0)
    assert verdict.saturated and not verdict.sustainable
    assert verdict.reasons == ["delivered: 300/s for 500/s offered"]


def test_a_growing_backlog_saturates_even_at_full_throughput() -> None:
    verdict = judge({"delivered": measure(500, 480, growth=80)}, 0.0)
    assert verdict.saturated
    assert verdict.reasons == ["delivered: backlog grows by 80/s"]


def test_a_load_generator_behind_its_schedule_did_not_offer_the_rate() -> None:
    verdict = judge({"delivered": measure(5000, 5000)}, generator_lag=2.5)
    assert verdict.saturated
    assert "load generator fell 2.5s behind its schedule" in verdict.reasons


def test_keeping_up_with_p99_over_a_second_is_neither_saturated_nor_sustainable() -> None:
    verdict = judge({"delivered": measure(50, 50, p99=2.0), "counted": measure(50, 50)}, 0.0)
    assert not verdict.saturated and not verdict.sustainable
    assert verdict.reasons == ["delivered: p99 2.00s >= 1s"]


def test_missing_reports_make_p99_infinite_and_the_step_unsustainable() -> None:
    verdict = judge({"delivered": measure(50, 49, p99=math.inf)}, 0.0)
    assert not verdict.sustainable
