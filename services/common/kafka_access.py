"""Who may do what on Kafka: the principals, their ACLs and quotas, declared once.

Each service signs in as its own principal (``veilig-<service>``) and may read exactly the
topics it consumes (with its own consumer groups), write the topics it publishes and the
dead-letter topics of what it consumes, and describe the platform's topics. A partner that
submits over Kafka is the principal ``veilig-partner-<code>``: it may write only its own topic,
``incident-submissions.<code>`` (and read nothing), under a produce quota. ``veilig-ops`` reads
every topic and writes none (``.run/kafka/ops-client.properties`` for kcat).

The same declarations make the Strimzi ``KafkaUser``s (deploy/k8s/generate_topics.py) and, on
the local broker, the principals and ACLs `make up` creates (``apply_principals``) and the
partner access ``veilig partners add CODE --kafka`` grants (``enable_partner``). aiokafka's admin
client has no calls for SCRAM credentials and client quotas: the three requests below are
Kafka's own wire format (KIP-554 AlterUserScramCredentials v0, KIP-546 AlterClientQuotas v0),
sent on the admin client's connection.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Array,
    Boolean,
    CompactArray,
    CompactBytes,
    CompactString,
    Float64,
    Int8,
    Int16,
    Int32,
    Schema,
    String,
    TaggedFields,
)

from schemas.topics import CLUSTER_TOPICS, DLQ_SUFFIX, INCIDENT_SUBMISSIONS, MAIN_TOPICS, Topic
from services.common.kafka_security import signed_in_as
from services.common.settings import SERVICES, ServiceName, Settings
from services.common.topics import connect_admin, topic_configs

ResourceType = Literal["topic", "group", "cluster"]
PatternType = Literal["literal", "prefix"]

# Every consumer in the code: service -> (group purpose, topic). Group ids are
# <group prefix>.<service>.<purpose> (Settings.group_id). tests/unit/test_deploy_k8s.py checks
# it against every batch_consumer(...) call.
CONSUMERS: dict[str, tuple[tuple[str, str], ...]] = {
    "intake": (("main", INCIDENT_SUBMISSIONS.name), ("public-history", "incident-events")),
    "triage": (
        ("main", "incident-events"),
        ("urgent", "incident-events-urgent"),
        ("acknowledgements", "notification-events"),
        ("prevention", "incident-events"),
    ),
    "notify": (("main", "incident-events"), ("urgent", "incident-events-urgent")),
    "analytics": (
        ("incident-events", "incident-events"),
        ("notification-events", "notification-events"),
        ("safety-plans", "safety-plans"),
    ),
}

OPS_PRINCIPAL = "veilig-ops"
# A partner's Kafka produce quota follows its HTTP limit (reports a minute), at this many bytes
# a report: a report with a long description and contact details is under 4 KiB.
BYTES_PER_REPORT = 4096
# Every declared topic, the per-partner family standing for all of its topics.
ALL_NAMED = (INCIDENT_SUBMISSIONS, *CLUSTER_TOPICS)


@dataclass(frozen=True, slots=True)
class Acl:
    """Allow (or deny) ``operations`` on a resource, for every host."""

    resource: ResourceType
    name: str
    operations: tuple[str, ...]
    pattern: PatternType = "literal"
    # A deny overrides any allow: intake reads every partner's topic by prefix, but not the
    # family's dead letters, which share the prefix.
    permission: Literal["allow", "deny"] = "allow"


def service_principal(service: ServiceName) -> str:
    return f"veilig-{service}"


def partner_principal(code: str) -> str:
    return f"veilig-partner-{code}"


def produce_quota(rate_per_minute: int) -> float:
    """The partner's producer_byte_rate: its HTTP rate of reports, in bytes a second."""
    return rate_per_minute / 60 * BYTES_PER_REPORT


def partner_topic(settings: Settings, code: str) -> str:
    return settings.topic(INCIDENT_SUBMISSIONS.of_partner(code))


def partner_topic_pattern(settings: Settings, topic: Topic) -> str:
    """The topics of a per-partner family (``<name>.<partner code>``), not its dead letters."""
    return re.escape(settings.topic(topic.name) + ".") + rf"(?!{DLQ_SUFFIX}$)[a-z0-9][a-z0-9-]*$"


def partner_of(settings: Settings, topic: Topic, record: ConsumerRecord[bytes, bytes]) -> str:
    """Who sent ``record``: the tail of the topic it was written to (only that partner's
    principal may write there), never anything in the record."""
    return record.topic.removeprefix(settings.topic(topic.name) + ".")


def consumed(principal: str) -> list[str]:
    """Topics ``principal`` reads: declared subscribers and the consumers in the code."""
    names = {t.name for t in CLUSTER_TOPICS if principal in t.subscribers}
    names |= {topic for _, topic in CONSUMERS.get(principal, ())}
    return sorted(names)


def produced(principal: str) -> list[str]:
    """Topics ``principal`` writes: declared publishers (dead-letter topics included: their
    publishers are their source's subscribers) and the DLQs of what it consumes."""
    by_name = {t.name: t for t in CLUSTER_TOPICS}
    names = {t.name for t in CLUSTER_TOPICS if principal in t.publishers}
    names |= {f"{t}.dlq" for t in consumed(principal) if f"{t}.dlq" in by_name}
    return sorted(names)


def _topic_acl(settings: Settings, name: str, operations: tuple[str, ...]) -> Acl:
    """A per-partner family is every topic under ``<name>.``; any other topic is itself."""
    if name == INCIDENT_SUBMISSIONS.name:
        return Acl("topic", settings.topic(f"{name}."), operations, "prefix")
    return Acl("topic", settings.topic(name), operations)


def _groups(settings: Settings, tail: str = "") -> str:
    return f"{settings.consumer_group_prefix}.{settings.topic_prefix}{tail}"


def service_acls(settings: Settings, service: str) -> list[Acl]:
    acls = [_topic_acl(settings, t.name, ("Describe", "DescribeConfigs")) for t in CLUSTER_TOPICS]
    reads = consumed(service)
    acls += [_topic_acl(settings, name, ("Read",)) for name in reads]
    if INCIDENT_SUBMISSIONS.name in reads:  # finding the partners' topics by pattern
        acls.append(_topic_acl(settings, INCIDENT_SUBMISSIONS.name, ("Describe",)))
        dlq = settings.topic(INCIDENT_SUBMISSIONS.dlq)
        acls.append(Acl("topic", dlq, ("Read",), permission="deny"))
    acls += [_topic_acl(settings, name, ("Write",)) for name in produced(service)]
    if CONSUMERS.get(service):
        acls.append(Acl("group", _groups(settings, f"{service}."), ("Read",), "prefix"))
    if service == "analytics":
        # The Kafka monitor lists every platform group and its committed offsets (the ops
        # dashboard's lag per group).
        acls.append(Acl("group", _groups(settings), ("Describe",), "prefix"))
    return acls


def operator_acls(settings: Settings) -> list[Acl]:
    """The operators' CLI: `veilig dlq list/show/replay` (reads a DLQ without a group, writes
    the records back to their source topic) and `veilig analytics rebuild` (reads the event
    topics from offset 0 without a group)."""
    return _read_every_topic(settings) + [
        _topic_acl(settings, t.name, ("Write",)) for t in MAIN_TOPICS
    ]


def _read_every_topic(settings: Settings) -> list[Acl]:
    return [
        _topic_acl(settings, t.name, ("Describe", "DescribeConfigs", "Read")) for t in ALL_NAMED
    ]


def ops_acls(settings: Settings) -> list[Acl]:
    """Read-only: every topic, and consumer groups of its own (``ops.*``) for kcat -G."""
    own_groups = Acl("group", f"ops.{settings.topic_prefix}", ("Read", "Describe"), "prefix")
    return [*_read_every_topic(settings), own_groups]


def partner_acls(settings: Settings, code: str) -> list[Acl]:
    """Its own submission topic, to write; nothing to read."""
    return [Acl("topic", partner_topic(settings, code), ("Describe", "Write"))]


def keda_acls(settings: Settings) -> list[Acl]:
    """KEDA's Kafka scaler: the consumer groups' committed offsets and the topics' end offsets."""
    acls = [_topic_acl(settings, t.name, ("Describe",)) for t in ALL_NAMED]
    acls.append(Acl("group", _groups(settings), ("Describe",), "prefix"))
    return acls


# --- the wire: AlterUserScramCredentials, AlterClientQuotas, CreateAcls --------------------

SCRAM_MECHANISMS = {"SCRAM-SHA-256": (1, "sha256"), "SCRAM-SHA-512": (2, "sha512")}
SCRAM_ITERATIONS = 8192
SIGN_IN_WAIT_SECONDS = 30.0


class _AlterScramResponse(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterScramStruct(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterScramResponse
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterScram(Request[_AlterScramStruct]):
    API_KEY = 51

    def __init__(self, user: str, password: str, mechanism: str) -> None:
        self.user, self.password, self.mechanism = user, password, mechanism

    def build(self, request_struct_class: type[_AlterScramStruct]) -> _AlterScramStruct:
        code, digest = SCRAM_MECHANISMS[self.mechanism]
        salt = secrets.token_bytes(32)
        salted = hashlib.pbkdf2_hmac(digest, self.password.encode(), salt, SCRAM_ITERATIONS)
        return request_struct_class([], [(self.user, code, SCRAM_ITERATIONS, salt, salted, {})], {})


class _AlterQuotasResponse(Response):
    API_KEY = 49
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "entries",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                (
                    "entity",
                    Array(("entity_type", String("utf-8")), ("entity_name", String("utf-8"))),
                ),
            ),
        ),
    )


class _AlterQuotasStruct(RequestStruct):
    API_KEY = 49
    API_VERSION = 0
    RESPONSE_TYPE = _AlterQuotasResponse
    SCHEMA = Schema(
        (
            "entries",
            Array(
                (
                    "entity",
                    Array(("entity_type", String("utf-8")), ("entity_name", String("utf-8"))),
                ),
                ("ops", Array(("key", String("utf-8")), ("value", Float64), ("remove", Boolean))),
            ),
        ),
        ("validate_only", Boolean),
    )


class _AlterQuotas(Request[_AlterQuotasStruct]):
    API_KEY = 49

    def __init__(self, user: str, quotas: dict[str, float]) -> None:
        self.user, self.quotas = user, quotas

    def build(self, request_struct_class: type[_AlterQuotasStruct]) -> _AlterQuotasStruct:
        ops = [(key, float(value), False) for key, value in self.quotas.items()]
        return request_struct_class([([("user", self.user)], ops)], False)


_RESOURCE = {"topic": 2, "group": 3, "cluster": 4}
_PATTERN = {"literal": 3, "prefix": 4}
_OPERATION = {
    "All": 2,
    "Read": 3,
    "Write": 4,
    "Create": 5,
    "Delete": 6,
    "Alter": 7,
    "Describe": 8,
    "ClusterAction": 9,
    "DescribeConfigs": 10,
    "AlterConfigs": 11,
    "IdempotentWrite": 12,
}
_PERMISSION = {"deny": 2, "allow": 3}


class KafkaAccessError(RuntimeError):
    """The broker refused a change of principals, ACLs or quotas."""


def _check(results: Iterable[tuple[int, str | None]], what: str) -> None:
    for code, message in results:
        if code:
            raise KafkaAccessError(f"{what}: {for_code(code).__name__}: {message or ''}".rstrip())


async def set_password(
    admin: AIOKafkaAdminClient, user: str, password: str, mechanism: str = "SCRAM-SHA-512"
) -> None:
    response = await admin._send_request(_AlterScram(user, password, mechanism))
    _check(((code, message) for _user, code, message, _tags in response.results), user)


async def set_quotas(admin: AIOKafkaAdminClient, user: str, quotas: dict[str, float]) -> None:
    response = await admin._send_request(_AlterQuotas(user, quotas))
    _check(((code, message) for code, message, _entity in response.entries), f"quotas of {user}")


class _CreateAcls(Request[CreateAclsRequest_v1]):
    """aiokafka's CreateAclsRequest carries one ACL; this one all of a principal's."""

    API_KEY = 30

    def __init__(self, principal: str, acls: Sequence[Acl]) -> None:
        self.creations = [
            (
                _RESOURCE[acl.resource],
                acl.name if acl.resource != "cluster" else "kafka-cluster",
                _PATTERN[acl.pattern],
                f"User:{principal}",
                "*",
                _OPERATION[operation],
                _PERMISSION[acl.permission],
            )
            for acl in acls
            for operation in acl.operations
        ]

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self.creations)


async def grant(admin: AIOKafkaAdminClient, principal: str, acls: Sequence[Acl]) -> None:
    """Create the ACLs (creating one that exists changes nothing)."""
    response = await admin._send_request(_CreateAcls(principal, acls))
    _check(
        ((code, message) for code, message in response.creation_responses),
        f"the ACLs of {principal}",
    )


async def _await_sign_in(settings: Settings, username: str, password: str) -> None:
    """Return once ``username`` can sign in: the controller has stored a new credential a
    moment before the broker's metadata publisher hands it to the authenticator."""
    signed_in = signed_in_as(settings, username, password)
    admin = await connect_admin(signed_in, wait_seconds=SIGN_IN_WAIT_SECONDS, every=0.2)
    await admin.close()


def _password_file(directory: Path, principal: str) -> str:
    """The principal's password from ``directory``, made (random, owner-only) the first time."""
    path = directory / principal
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(24))
    return path.read_text(encoding="utf-8").strip()


def ops_client_properties(settings: Settings, username: str, password: str) -> str:
    """A librdkafka client configuration (kcat -F FILE) for ``username``."""
    lines = [
        f"bootstrap.servers={settings.kafka_bootstrap_servers}",
        f"security.protocol={settings.kafka_security_protocol.lower()}",
        f"sasl.mechanisms={settings.kafka_sasl_mechanism}",
        f"sasl.username={username}",
        f"sasl.password={password}",
    ]
    if settings.kafka_ssl_cafile:
        lines.append(f"ssl.ca.location={settings.kafka_ssl_cafile}")
    return "\n".join(lines) + "\n"


async def apply_principals(settings: Settings, credentials: Path) -> list[str]:
    """The services' and ops' principals, each with its password from ``credentials`` (made
    there the first time) and its ACLs for ``settings.topic_prefix``; writes
    ``<credentials>/../ops-client.properties``. Run as an administrator, repeatably."""
    wanted = {service_principal(s): service_acls(settings, s) for s in SERVICES}
    wanted[OPS_PRINCIPAL] = ops_acls(settings)
    passwords = {principal: _password_file(credentials, principal) for principal in wanted}
    admin = await connect_admin(settings)
    try:
        for principal, acls in wanted.items():
            await set_password(
                admin, principal, passwords[principal], settings.kafka_sasl_mechanism
            )
            await grant(admin, principal, acls)
    finally:
        await admin.close()
    for principal, password in passwords.items():
        await _await_sign_in(settings, principal, password)
    properties = credentials.parent / "ops-client.properties"
    properties.write_text(
        ops_client_properties(settings, OPS_PRINCIPAL, passwords[OPS_PRINCIPAL]), encoding="utf-8"
    )
    properties.chmod(0o600)
    return sorted(wanted)


async def create_partner_topic(admin: AIOKafkaAdminClient, settings: Settings, code: str) -> str:
    """The partner's submission topic, configured as its family is declared (if missing)."""
    topic = partner_topic(settings, code)
    response = await admin.create_topics(
        [
            NewTopic(
                topic,
                INCIDENT_SUBMISSIONS.partitions,
                settings.kafka_replication_factor,
                topic_configs=topic_configs(INCIDENT_SUBMISSIONS, settings),
            )
        ]
    )
    for _name, error, *rest in response.topic_errors:
        if error and not issubclass(for_code(error), TopicAlreadyExistsError):
            raise KafkaAccessError(f"creating {topic}: {rest[0] if rest else error}")
    return topic


async def enable_partner(settings: Settings, code: str, bytes_per_second: float) -> str:
    """Give partner ``code`` its Kafka principal (a new password, returned once), its own
    submission topic with write access to it alone, and a produce quota. Again for the same
    partner: a new password (the old one stops working), the rest unchanged."""
    principal = partner_principal(code)
    password = secrets.token_urlsafe(24)
    admin = await connect_admin(settings)
    try:
        await create_partner_topic(admin, settings, code)
        await set_password(admin, principal, password, settings.kafka_sasl_mechanism)
        await grant(admin, principal, partner_acls(settings, code))
        await set_quotas(admin, principal, {"producer_byte_rate": bytes_per_second})
    finally:
        await admin.close()
    await _await_sign_in(settings, principal, password)
    return password
