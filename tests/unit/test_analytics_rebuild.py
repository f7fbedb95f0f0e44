"""Which partitions a rebuild's loaders claim, in which order (the rebuild itself runs against
the real broker and database in tests/integration/test_analytics.py)."""

from __future__ import annotations

from aiokafka import TopicPartition

from services.analytics.rebuild import parts


def test_a_rebuild_claims_the_partitions_that_hold_records_largest_first() -> None:
    a, b, c = (TopicPartition("incident-events", p) for p in range(3))
    d = TopicPartition("notification-events", 0)
    first = {a: 0, b: 10, c: 5, d: 100}
    ends = {a: 40, b: 10, c: 105, d: 150}
    assert parts(first, ends) == [
        ("incident-events", 2, 5, 105),
        ("notification-events", 0, 100, 150),
        ("incident-events", 0, 0, 40),
    ]
