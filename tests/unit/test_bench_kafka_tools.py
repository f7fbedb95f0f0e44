"""Parsing what Kafka's own performance tools print (output of kafka-tools 4.0.2)."""

from __future__ import annotations

import pytest

from tools.bench.kafka_tools import (
    ConsumerPerf,
    ProducerPerf,
    ToolOutputError,
    parse_consumer,
    parse_producer,
)

PRODUCER_OUTPUT = """\
109201 records sent, 21809.7 records/sec (16.64 MB/sec), 1242.1 ms avg latency, 1667.0 ms max latency.
200000 records sent, 25654.2 records/sec (19.57 MB/sec), 1322.29 ms avg latency, 1736.00 ms max latency, 1346 ms 50th, 1640 ms 95th, 1676 ms 99th, 1704 ms 99.9th.
"""  # noqa: E501 (the tool's own lines)

CONSUMER_OUTPUT = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-11-28 06:11:41:813, 2026-11-28 06:11:44:281, 152.5879, 61.8265, 200000, 81037.2771, 1064, 1404, 108.6808, 142450.1425
"""  # noqa: E501


def test_producer_summary_is_the_last_line_not_the_progress_lines() -> None:
    assert parse_producer(PRODUCER_OUTPUT) == ProducerPerf(
        records=200000,
        per_second=25654.2,
        mb_per_second=19.57,
        avg_ms=1322.29,
        max_ms=1736.0,
        p50_ms=1346,
        p95_ms=1640,
        p99_ms=1676,
        p999_ms=1704,
    )


def test_consumer_summary_is_read_by_its_header() -> None:
    # Log lines before the header (a warning from the client) do not matter.
    output = "WARN something the client said\n" + CONSUMER_OUTPUT
    assert parse_consumer(output) == ConsumerPerf(
        messages=200000,
        per_second=81037.2771,
        mb_per_second=61.8265,
        fetch_per_second=142450.1425,
    )


@pytest.mark.parametrize("output", ["", "Exception in thread main\n", PRODUCER_OUTPUT[:90]])
def test_output_without_a_summary_is_an_error_that_shows_it(output: str) -> None:
    with pytest.raises(ToolOutputError, match="no ProducerPerformance summary"):
        parse_producer(output)
    with pytest.raises(ToolOutputError, match="no ConsumerPerformance summary"):
        parse_consumer(output)
