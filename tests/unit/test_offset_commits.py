"""OffsetCommits: the offsets of handled batches go to Kafka together, a moment later."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError

from services.common.commits import OffsetCommits

P0, P1, P2 = (TopicPartition("incident-events", p) for p in range(3))


def record(tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=[],
    )


class FakeConsumer:
    """aiokafka's consumer as far as commits go: what it was asked to commit, in order."""

    def __init__(self, *assigned: TopicPartition) -> None:
        self.assigned = set(assigned or (P0, P1, P2))
        self.commits: list[dict[TopicPartition, int]] = []
        self.refuse = 0  # how many commits to refuse as Kafka being away

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse:
            self.refuse -= 1
            raise KafkaConnectionError("broker away")
        self.commits.append(dict(offsets))


async def test_the_batches_of_an_interval_are_committed_once_with_their_last_offsets() -> None:
    kafka, commits = FakeConsumer(), OffsetCommits(interval=0.05)
    await commits.handled(kafka, [record(P0, 0), record(P0, 1)])
    await commits.handled(kafka, [record(P1, 7)])
    await commits.handled(kafka, [record(P0, 2)])
    assert kafka.commits == []  # nothing on the batches' path
    await asyncio.sleep(0.15)
    assert kafka.commits == [{P0: 3, P1: 8}]
    assert commits.pending == {}


async def test_a_batch_after_the_commit_is_committed_in_the_next_interval() -> None:
    kafka, commits = FakeConsumer(), OffsetCommits(interval=0.05)
    await commits.handled(kafka, [record(P0, 0)])
    await asyncio.sleep(0.15)
    await commits.handled(kafka, [record(P0, 1)])
    await asyncio.sleep(0.15)
    assert kafka.commits == [{P0: 1}, {P0: 2}]


async def test_now_commits_before_it_returns() -> None:
    """A batch that dead-lettered a record, or one handled while the service stops."""
    kafka, commits = FakeConsumer(), OffsetCommits(interval=60)
    await commits.handled(kafka, [record(P0, 4)])
    await commits.handled(kafka, [record(P1, 0)], now=True)
    assert kafka.commits == [{P0: 5, P1: 1}]


async def test_without_an_interval_every_batch_is_committed_at_once() -> None:
    kafka, commits = FakeConsumer(), OffsetCommits(interval=0)
    await commits.handled(kafka, [record(P0, 0)])
    await commits.handled(kafka, [record(P0, 1)])
    assert kafka.commits == [{P0: 1}, {P0: 2}]


async def test_partitions_no_longer_assigned_are_left_to_their_next_reader() -> None:
    kafka, commits = FakeConsumer(P0, P1), OffsetCommits(interval=60)
    await commits.handled(kafka, [record(P0, 0), record(P1, 0)])
    kafka.assigned = {P1}  # a rebalance took P0 away
    await commits.close()
    assert kafka.commits == [{P1: 1}]
    assert commits.pending == {}


async def test_what_kafka_refused_is_kept_and_tried_again() -> None:
    kafka, commits = FakeConsumer(), OffsetCommits(interval=0.05)
    kafka.refuse = 1
    await commits.handled(kafka, [record(P0, 0)])
    await asyncio.sleep(0.08)
    assert kafka.commits == []
    assert commits.pending == {P0: 1}
    await commits.handled(kafka, [record(P0, 1)])  # a newer offset while the retry waits
    await asyncio.sleep(0.15)
    assert kafka.commits == [{P0: 2}]


async def test_an_older_offset_never_replaces_a_newer_one() -> None:
    """A batch read again after a rewind hands in offsets below what is pending."""
    kafka, commits = FakeConsumer(), OffsetCommits(interval=60)
    await commits.handled(kafka, [record(P0, 9)])
    await commits.handled(kafka, [record(P0, 3)])
    await commits.close()
    assert kafka.commits == [{P0: 10}]


async def test_close_commits_at_once_and_stops_the_timer() -> None:
    kafka, commits = FakeConsumer(), OffsetCommits(interval=0.05)
    await commits.handled(kafka, [record(P2, 0)])
    await commits.close()
    await asyncio.sleep(0.15)
    assert kafka.commits == [{P2: 1}]


@pytest.mark.parametrize("interval", [0.0, 60.0])
async def test_a_new_consumer_does_not_commit_the_old_ones_offsets(interval: float) -> None:
    old, new, commits = FakeConsumer(), FakeConsumer(), OffsetCommits(interval=interval)
    old.refuse = 1 if interval == 0 else 0
    await commits.handled(old, [record(P0, 5)])
    await commits.handled(new, [record(P1, 0)])
    await commits.close()
    assert new.commits == [{P1: 1}]
