"""A consumer's offsets, committed a moment after their batch instead of after every batch.

By the time a batch's offsets reach :class:`OffsetCommits`, its effects are committed in
PostgreSQL behind the consumer's inbox (or the batch was dead-lettered). A commit that comes
later, or never (SIGKILL, a rebalance, Kafka away), only means that the partition's next
reader reads those records again and its inbox claims none of them: nothing is lost and
nothing doubles. So the offsets of every batch handled within ``interval`` seconds go to Kafka
in one commit, off the batch's path.

Committing after every batch cost more than it bought: at 10 reports/s, where most batches
hold a single record, the broker spent about half its CPU on the commits of the platform's
twenty consumers (one `OffsetCommit` each time any of them handled anything), and each
consumer waited for that round trip before it polled again (decision 0006, "Session 14").

Where a batch sent a record to a dead-letter topic the commit is made at once (``now``): the
dead letter is an effect no inbox guards, and reading the record again would send it twice.
The same holds once the service is stopping, so that a graceful stop leaves nothing behind
to read again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from services.common.faults import describe

log = logging.getLogger(__name__)


class Committer(Protocol):
    """What of aiokafka's consumer the commits use."""

    def assignment(self) -> set[TopicPartition]: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


class OffsetCommits:
    """The next offset to read of every partition a consumer has handled and not committed;
    committed ``interval`` seconds after the first of them was handled (0: at once)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._consumer: Committer | None = None
        self._pending: dict[TopicPartition, int] = {}
        self._timer: asyncio.Task[None] | None = None
        self._committing = asyncio.Lock()

    @property
    def pending(self) -> dict[TopicPartition, int]:
        return dict(self._pending)

    async def handled(
        self,
        consumer: Committer,
        records: Iterable[ConsumerRecord[bytes, bytes]],
        *,
        now: bool = False,
    ) -> None:
        """``records`` are handled: their offsets are due. With ``now`` (or no interval) the
        commit is made before this returns; else within ``interval`` seconds."""
        if consumer is not self._consumer:  # a consumer started anew: the old one's are moot
            self._consumer, self._pending = consumer, {}
        self._merge({TopicPartition(r.topic, r.partition): r.offset + 1 for r in records})
        if now or self.interval <= 0:
            await self.flush()
        else:
            self._schedule()

    async def flush(self) -> None:
        """Commit what is pending now (the partitions still assigned: the others' next
        reader reads from their last commit). What Kafka refused stays pending and is tried
        again after ``interval``."""
        async with self._committing:
            consumer = self._consumer
            if consumer is None or not self._pending:
                return
            due, self._pending = self._pending, {}
            assigned = consumer.assignment()
            due = {tp: offset for tp, offset in due.items() if tp in assigned}
            if not due:
                return
            try:
                await consumer.commit(due)
            except KafkaError as exc:
                self._merge(due)
                log.warning(
                    "offset commit failed; kept for the next try (a reader after a restart "
                    "reads these records again, and its inbox skips them)",
                    extra={"error": describe(exc), "partitions": len(due)},
                )
                if self.interval > 0:
                    self._schedule()

    async def close(self) -> None:
        """Before the consumer stops: commit what is pending now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()

    def _merge(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if offset > self._pending.get(tp, -1):
                self._pending[tp] = offset

    def _schedule(self) -> None:
        """A commit in ``interval`` seconds, unless one is due already."""
        if self._timer is None:
            self._timer = asyncio.create_task(self._later(), name="offset-commits")

    async def _later(self) -> None:
        await asyncio.sleep(self.interval)
        self._timer = None
        await self.flush()
