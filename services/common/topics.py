"""Applies the topic declarations of ``schemas.topics`` to a Kafka cluster, idempotently.

Missing topics are created; a declared partition count above the current one is applied
(Kafka can only add partitions); configuration drift (retention, cleanup policy,
``min.insync.replicas``) is corrected. What cannot be applied — fewer partitions than exist,
another replication factor — is reported as a conflict that names the topic and both values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError, for_code

from schemas.topics import CLUSTER_TOPICS, Topic
from services.common.kafka_security import client_options
from services.common.settings import Settings

log = logging.getLogger(__name__)


class TopicConflictError(RuntimeError):
    """The cluster holds a topic that cannot be brought in line with its declaration."""


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    partitions_added: dict[str, tuple[int, int]] = field(default_factory=dict)
    configs_altered: dict[str, dict[str, str]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def topic_configs(topic: Topic, settings: Settings) -> dict[str, str]:
    return {
        "cleanup.policy": topic.cleanup_policy,
        "retention.ms": str(topic.retention_ms),
        "min.insync.replicas": str(settings.kafka_min_insync_replicas),
        **topic.extra_config,
    }


async def connect_admin(
    settings: Settings, wait_seconds: float = 60.0, every: float = 1.0
) -> AIOKafkaAdminClient:
    """An admin client, waiting (bounded) for a broker that is still starting (or a credential
    it does not know yet), trying ``every`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        admin = AIOKafkaAdminClient(**client_options(settings), client_id="veilig-admin")
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            await admin.close()
            if loop.time() >= deadline:
                raise ConnectionError(
                    f"Kafka at {settings.kafka_bootstrap_servers} did not answer "
                    f"within {wait_seconds:.0f}s: {exc}"
                ) from exc
            log.warning("waiting for Kafka at %s", settings.kafka_bootstrap_servers)
            await asyncio.sleep(every)
        else:
            return admin


async def apply_topics(
    settings: Settings, topics: Iterable[Topic] = CLUSTER_TOPICS, *, raise_on_conflict: bool = True
) -> TopicReport:
    """Bring the cluster in line with ``topics`` (names get ``settings.topic_prefix``)."""
    declared = {settings.topic(t.name): t for t in topics}
    report = TopicReport()
    admin = await connect_admin(settings)
    try:
        existing = {
            meta["topic"]: meta
            for meta in await admin.describe_topics(list(declared))
            if meta["error_code"] == 0
        }
        missing = [name for name in declared if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name,
                        declared[name].partitions,
                        settings.kafka_replication_factor,
                        topic_configs=topic_configs(declared[name], settings),
                    )
                    for name in missing
                ]
            )
            for name, code, *rest in response.topic_errors:
                if code and not issubclass(for_code(code), TopicAlreadyExistsError):
                    message = rest[0] if rest else ""
                    raise for_code(code)(f"creating topic {name} failed: {message}")
                report.created.append(name)
            await _await_partitions(admin, {n: declared[n].partitions for n in missing})

        for name, meta in existing.items():
            topic = declared[name]
            changed = False
            current_partitions = len(meta["partitions"])
            replicas = {len(p["replicas"]) for p in meta["partitions"]}
            if replicas != {settings.kafka_replication_factor}:
                report.conflicts.append(
                    f"{name}: replication factor is {sorted(replicas)}, declared "
                    f"{settings.kafka_replication_factor}; Kafka cannot change it in place "
                    "(reassign partitions with kafka-reassign-partitions)"
                )
            if current_partitions < topic.partitions:
                await admin.create_partitions({name: NewPartitions(topic.partitions)})
                await _await_partitions(admin, {name: topic.partitions})
                report.partitions_added[name] = (current_partitions, topic.partitions)
                changed = True
            elif current_partitions > topic.partitions:
                report.conflicts.append(
                    f"{name}: has {current_partitions} partitions, declared {topic.partitions}; "
                    "Kafka cannot remove partitions (raise the declaration or recreate the topic)"
                )
            if await _align_configs(admin, name, topic_configs(topic, settings), report):
                changed = True
            if not changed:
                report.unchanged.append(name)
    finally:
        await admin.close()
    if report.conflicts and raise_on_conflict:
        raise TopicConflictError("; ".join(report.conflicts))
    return report


async def _await_partitions(
    admin: AIOKafkaAdminClient, wanted: dict[str, int], wait_seconds: float = 15.0
) -> None:
    """Wait until the brokers' metadata shows ``wanted``: the controller answers before the
    change has reached every broker, and the next apply (or producer) must see it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while loop.time() < deadline:
        metas = await admin.describe_topics(list(wanted))
        if all(m["error_code"] == 0 and len(m["partitions"]) == wanted[m["topic"]] for m in metas):
            return
        await asyncio.sleep(0.1)
    raise KafkaError(f"topic metadata did not converge within {wait_seconds:.0f}s: {wanted}")


async def _align_configs(
    admin: AIOKafkaAdminClient, name: str, wanted: dict[str, str], report: TopicReport
) -> bool:
    (response,) = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(wanted))]
    )
    current: dict[str, str] = {}
    for _code, _msg, _type, _name, entries in response.resources:
        for entry in entries:
            current[entry[0]] = entry[1]
    drift = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not drift:
        return False
    # AlterConfigs replaces the topic's whole override set, so send every managed key.
    (altered,) = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, wanted)])
    for code, message, *_ in altered.resources:
        if code:
            raise KafkaError(f"altering the configuration of {name} failed: {message}")
    report.configs_altered[name] = drift
    return True
