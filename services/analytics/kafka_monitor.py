"""Live Kafka numbers for the ops dashboard, read from the broker itself.

Every few seconds: the end offset of every partition of the platform's topics, each partner's
submission topic included (throughput per topic is the growth of their sum between two
samples), and the committed offsets of every consumer group with the platform's prefix (lag per
group and partition = end - committed).
One monitor per service process samples; every dashboard client reads the latest snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from schemas.topics import ALL_TOPICS, CLUSTER_TOPICS
from services.common.kafka_access import partner_topic_pattern
from services.common.kafka_security import client_options
from services.common.settings import Settings
from services.common.topics import connect_admin

log = logging.getLogger(__name__)

MONITOR = "kafka_monitor"  # its key in Runtime.extras
HISTORY = 60  # samples of throughput kept for the sparkline (5 minutes at 5 s)


CONSUMER_LAG = Gauge(
    "veilig_kafka_consumer_lag_messages",
    "Messages a consumer group of the platform has yet to process, per topic (as analytics "
    "samples it every few seconds)",
    ["consumergroup", "topic"],
)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass
class KafkaSnapshot:
    at: float = 0.0
    messages: dict[str, int] = field(default_factory=dict)  # topic -> sum of end offsets
    per_second: dict[str, float] = field(default_factory=dict)
    lag: list[PartitionLag] = field(default_factory=list)
    error: str | None = None


class KafkaMonitor:
    def __init__(
        self, settings: Settings, every: float = 5.0, partitions_every: float = 60.0
    ) -> None:
        self.settings = settings
        self.every = every
        # Which partitions the topics have rarely changes; describing every topic on each
        # sample cost analytics more CPU (decoding the answers) than its whole projection.
        self.partitions_every = partitions_every
        self._partitions: tuple[float, list[TopicPartition]] = (0.0, [])
        self.latest = KafkaSnapshot()
        self.history: deque[tuple[float, dict[str, float]]] = deque(maxlen=HISTORY)
        self._group_prefix = f"{settings.consumer_group_prefix}."
        # Topic name on the cluster -> declared name, so the dashboard shows the short one;
        # the partners' own topics (incident-submissions.<code>) join as they are found.
        self._declared = {settings.topic(t.name): t.name for t in CLUSTER_TOPICS}
        self._topics = dict(self._declared)
        self._per_partner = [
            re.compile(partner_topic_pattern(settings, t)) for t in ALL_TOPICS if t.per_partner
        ]

    async def run(self, stopping: asyncio.Event, beat: Callable[[], None] = lambda: None) -> None:
        """Sample until ``stopping`` is set; a broker outage shows as an error, not a crash.
        ``beat`` tells the supervisor it is alive (services/common/supervision.py)."""
        admin: AIOKafkaAdminClient | None = None
        consumer: AIOKafkaConsumer | None = None
        try:
            while not stopping.is_set():
                beat()
                try:
                    if admin is None or consumer is None:
                        admin = await connect_admin(self.settings)
                        consumer = AIOKafkaConsumer(
                            **client_options(self.settings),
                            client_id="veilig-analytics-monitor",
                            enable_auto_commit=False,
                        )
                        await consumer.start()
                    self._record(await self._sample(admin, consumer))
                except (KafkaError, ConnectionError, OSError) as exc:
                    self.latest.error = f"Kafka unavailable: {exc}"
                    log.warning("kafka monitor: sampling failed", extra={"error": str(exc)})
                    admin, consumer = await _close(admin, consumer)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.every)
        finally:
            await _close(admin, consumer)

    async def _sample(
        self, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer
    ) -> KafkaSnapshot:
        described, partitions = self._partitions
        if time.monotonic() - described > self.partitions_every or not partitions:
            self._topics = self._declared | {
                name: name.removeprefix(self.settings.topic_prefix)
                for name in await admin.list_topics()
                if any(family.match(name) for family in self._per_partner)
            }
            partitions = await topic_partitions(admin, list(self._topics))
            self._partitions = (time.monotonic(), partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        messages = dict.fromkeys(self._topics.values(), 0)
        for tp, end in ends.items():
            messages[self._topics[tp.topic]] += end
        lag: list[PartitionLag] = []
        groups = sorted(
            g[0] for g in await admin.list_consumer_groups() if g[0].startswith(self._group_prefix)
        )
        for group in groups:
            committed = await admin.list_consumer_group_offsets(group)
            lag += [
                PartitionLag(
                    self._group_name(group),
                    self._topics[tp.topic],
                    tp.partition,
                    meta.offset,
                    ends[tp],
                )
                for tp, meta in sorted(committed.items())
                if tp in ends and meta.offset >= 0
            ]
        return KafkaSnapshot(at=time.time(), messages=messages, lag=lag)

    def _group_name(self, group: str) -> str:
        # veilig.<topic prefix><service>.<purpose> -> <service>.<purpose>
        return group.removeprefix(self._group_prefix).removeprefix(self.settings.topic_prefix)

    def _record(self, sample: KafkaSnapshot) -> None:
        totals: dict[tuple[str, str], int] = {}
        for part in sample.lag:
            key = (f"{self._group_prefix}{part.group}", part.topic)
            totals[key] = totals.get(key, 0) + part.lag
        # Groups that are gone must not keep their last value.
        CONSUMER_LAG.clear()
        for (group, topic), lag in totals.items():
            CONSUMER_LAG.labels(group, topic).set(lag)
        before = self.latest
        if before.at and sample.at > before.at:
            elapsed = sample.at - before.at
            sample.per_second = {
                topic: max(0, n - before.messages.get(topic, n)) / elapsed
                for topic, n in sample.messages.items()
            }
            self.history.append((sample.at, sample.per_second))
        self.latest = sample


async def topic_partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
    """Every partition of the topics that exist."""
    described = await admin.describe_topics(topics)
    return sorted(
        TopicPartition(meta["topic"], p["partition"])
        for meta in described
        if meta["error_code"] == 0
        for p in meta["partitions"]
    )


async def _close(
    admin: AIOKafkaAdminClient | None, consumer: AIOKafkaConsumer | None
) -> tuple[None, None]:
    with contextlib.suppress(Exception):
        if consumer is not None:
            await consumer.stop()
    with contextlib.suppress(Exception):
        if admin is not None:
            await admin.close()
    return None, None
