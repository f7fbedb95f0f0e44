"""Kafka with authentication and least privilege, against the real broker `make test` starts
(SASL/SCRAM-SHA-512, StandardAuthorizer, nothing allowed without an ACL).

What #15 asks to see: an unauthenticated client can neither produce to nor consume from any
topic; a partner's principal cannot write another partner's submissions nor read
``incident-events``; a forged key on a submission changes nothing. Beside it: the read-only ops
principal of ``ops-client.properties``, and `veilig partners add --kafka`. That each service
does its work with its own ACLs is shown by the end-to-end tests (tests/e2e), whose services
sign in as ``veilig-<service>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import confluent_kafka
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)

from schemas.topics import INCIDENT_EVENTS, INCIDENT_URGENT
from services.cli import executable
from services.common import kafka_security
from services.common.kafka_access import (
    OPS_PRINCIPAL,
    apply_principals,
    enable_partner,
    partner_principal,
    produce_quota,
)
from services.common.kafka_security import client_options
from services.common.settings import Settings
from services.common.topics import apply_topics
from services.intake import partners
from services.intake.service import SPEC
from tests.integration.test_intake import report
from tests.support import connected, eventually, partner_topics, read_topic, running

pytestmark = pytest.mark.integration
VEILIG = executable()


def librdkafka_reads_and_cannot_write(properties: dict[str, str], topic: str, group: str) -> None:
    """What `kcat -F ops-client.properties` does, with the same client library: list the
    topic, read it from the start (in one of the ops principal's own groups), and be refused
    a write."""
    consumer = confluent_kafka.Consumer(
        properties | {"group.id": group, "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        assert len(partitions) == 12
        consumer.assign(
            [confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)]
        )
        message = consumer.poll(timeout=30)
        assert message is not None and message.error() is None, message
        assert message.value() == b"as admin"
    finally:
        consumer.close()
    errors: list[confluent_kafka.KafkaError] = []
    producer = confluent_kafka.Producer(properties)
    producer.produce(
        topic, b"by ops", partition=0, on_delivery=lambda err, _msg: errors.append(err)
    )
    producer.flush(30)
    assert [e.code() for e in errors] == [confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED]


def signed_in_as(settings: Settings, username: str | None, password: str | None) -> Settings:
    """The same cluster, another principal (None: no authentication at all)."""
    if username is None:
        return settings.model_copy(update={"kafka_security_protocol": "PLAINTEXT"})
    return kafka_security.signed_in_as(settings, username, password or "")


async def produced(settings: Settings, topic: str, value: bytes, key: bytes = b"k") -> None:
    producer = AIOKafkaProducer(**client_options(settings), request_timeout_ms=10_000)
    try:
        await producer.start()
        await producer.send_and_wait(topic, value, key=key, partition=0)
    finally:
        await producer.stop()


async def fetched(settings: Settings, topic: str) -> list[Any]:
    """Read partition 0 of ``topic`` from the start, without a consumer group. A topic the
    principal may not read yields nothing (aiokafka waits for metadata it is refused) or
    raises TopicAuthorizationFailedError."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    try:
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        await asyncio.wait_for(consumer.seek_to_beginning(), timeout=5)
        batch = await consumer.getmany(timeout_ms=3000)
        return [r for records in batch.values() for r in records]
    except TimeoutError:
        return []
    finally:
        await consumer.stop()


async def refused_in_metadata(settings: Settings, topic: str) -> bool:
    """Does the broker refuse to even describe ``topic`` to this principal?"""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        (meta,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return meta["error_code"] == TopicAuthorizationFailedError.errno


@pytest.fixture
async def topics(settings: Settings) -> Settings:
    await apply_topics(settings)
    return settings


@pytest.mark.parametrize(
    ("who", "password"), [(None, None), ("veilig-admin", "not-the-password")], ids=str
)
async def test_an_unauthenticated_client_can_neither_produce_nor_consume(
    topics: Settings, who: str | None, password: str | None
) -> None:
    (partners_topic,) = await partner_topics(topics, "politie")
    targets = [topics.topic(t.name) for t in (INCIDENT_EVENTS, INCIDENT_URGENT)]
    targets.append(partners_topic)
    await produced(topics, targets[0], b"there is something to read")
    stranger = signed_in_as(topics, who, password)
    for name in targets:
        with pytest.raises(KafkaConnectionError):  # refused before any request is served
            await asyncio.wait_for(produced(stranger, name, b"spoofed"), timeout=30)
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(fetched(stranger, name), timeout=30)
    # Nothing got through (read as the administrator).
    assert [r.value for r in await fetched(topics, targets[0])] == [b"there is something to read"]
    for name in targets[1:]:
        assert await fetched(topics, name) == [], name


async def test_over_tls_a_client_signs_in_trusting_the_ca_and_is_refused_otherwise(
    topics: Settings, tmp_path: Path
) -> None:
    """The broker's SASL_SSL listener (kafka.sh, with the certificate run-tests.sh made): the
    services' own settings (KAFKA_SECURITY_PROTOCOL=SASL_SSL, KAFKA_SSL_CAFILE) reach it."""
    bootstrap = os.environ.get("TEST_KAFKA_TLS_BOOTSTRAP")
    if not bootstrap:
        pytest.skip("the broker was not started by deploy/local/run-tests.sh (no TLS listener)")
    over_tls = topics.model_copy(
        update={
            "kafka_bootstrap_servers": bootstrap,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_ssl_cafile": Path(os.environ["TEST_KAFKA_TLS_CAFILE"]),
        }
    )
    topic = topics.topic(INCIDENT_EVENTS.name)
    await asyncio.wait_for(produced(over_tls, topic, b"over tls"), timeout=30)
    assert b"over tls" in [r.value for r in await fetched(over_tls, topic)]
    # The TLS port without TLS, TLS trusting another CA, and TLS with a wrong password.
    stranger_ca = tmp_path / "other-ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=localhost", "-keyout", str(tmp_path / "other.key"), "-out", str(stranger_ca)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    refused = [
        over_tls.model_copy(update={"kafka_security_protocol": "SASL_PLAINTEXT"}),
        over_tls.model_copy(update={"kafka_ssl_cafile": stranger_ca}),
        kafka_security.signed_in_as(over_tls, "veilig-admin", "not-the-password"),
    ]
    for settings in refused:
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(produced(settings, topic, b"refused"), timeout=30)
    assert [r.value for r in await fetched(topics, topic)].count(b"refused") == 0


async def test_a_partner_writes_its_own_topic_only_and_reads_nothing(topics: Settings) -> None:
    code, other = f"p{uuid.uuid4().hex[:6]}", f"q{uuid.uuid4().hex[:6]}"
    password = await enable_partner(topics, code, produce_quota(600))
    await enable_partner(topics, other, produce_quota(600))
    partner = signed_in_as(topics, partner_principal(code), password)
    own, others = (topics.topic(f"incident-submissions.{c}") for c in (code, other))

    events = topics.topic(INCIDENT_EVENTS.name)
    await produced(topics, events, b"an event")
    await produced(partner, own, b"{}")
    with pytest.raises(TopicAuthorizationFailedError):
        await produced(partner, others, b"{}")
    # It reads nothing: not the event log (not even its metadata), not even its own topic.
    assert await refused_in_metadata(partner, events)
    assert await fetched(topics, events) != []
    try:
        assert await fetched(partner, events) == []
        assert await fetched(partner, own) == []
    except TopicAuthorizationFailedError:
        pass
    assert [r.value for r in await fetched(topics, own)] == [b"{}"]
    # A new password for the partner: the old one no longer signs in.
    await enable_partner(topics, code, produce_quota(600))
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(produced(partner, own, b"{}"), timeout=30)


async def test_the_ops_principal_reads_every_topic_and_writes_none(
    topics: Settings, tmp_path: Path
) -> None:
    made = await apply_principals(topics, tmp_path / "credentials")
    assert OPS_PRINCIPAL in made and "veilig-intake" in made
    properties = dict(
        line.split("=", 1) for line in (tmp_path / "ops-client.properties").read_text().splitlines()
    )
    assert properties["security.protocol"] == "sasl_plaintext"
    assert properties["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert properties["sasl.username"] == OPS_PRINCIPAL
    assert (tmp_path / "ops-client.properties").stat().st_mode & 0o077 == 0
    ops = signed_in_as(topics, OPS_PRINCIPAL, properties["sasl.password"])
    events = topics.topic(INCIDENT_EVENTS.name)
    await produced(topics, events, b"as admin")
    assert [r.value for r in await fetched(ops, events)] == [b"as admin"]
    with pytest.raises(TopicAuthorizationFailedError):
        await produced(ops, events, b"as ops")
    # The file is a librdkafka client's configuration, as kcat reads it with -F (kcat built
    # on librdkafka >= 2.6.1: older ones fail SCRAM against Kafka 4, librdkafka#4895).
    group = f"ops.{topics.topic_prefix}{uuid.uuid4().hex[:6]}"  # its groups are ops.*
    await asyncio.to_thread(librdkafka_reads_and_cannot_write, properties, events, group)
    # A service may not write what it does not publish: analytics publishes nothing here.
    analytics_password = (tmp_path / "credentials" / "veilig-analytics").read_text().strip()
    analytics = signed_in_as(topics, "veilig-analytics", analytics_password)
    with pytest.raises(TopicAuthorizationFailedError):
        await produced(analytics, events, b"as analytics")


@pytest.fixture
async def intake_db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    async with connected(settings, "intake") as conn:
        yield conn


async def test_a_forged_key_or_header_on_a_submission_changes_nothing(
    settings: Settings, intake_db: asyncpg.Connection
) -> None:
    async with running(SPEC, settings):
        for code, kind in (("politie", "police"), ("wijkapp", "citizen")):
            await partners.add_partner(intake_db, code, name=code, kind=kind)
        password = await enable_partner(settings, "wijkapp", produce_quota(600))
        citizen = signed_in_as(settings, partner_principal("wijkapp"), password)
        body = json.dumps(report("F-1", category_hint="hic.geweld")).encode()
        # The neighbourhood app claims to be the police, in the key and in a header.
        producer = AIOKafkaProducer(**client_options(citizen))
        await producer.start()
        try:
            await producer.send_and_wait(
                settings.topic("incident-submissions.wijkapp"),
                body,
                key=b"politie:F-1",
                headers=[("partner", b"politie"), ("ce_source", b"/politie")],
            )
        finally:
            await producer.stop()

        async def receipt() -> asyncpg.Record | None:
            return await intake_db.fetchrow(
                "SELECT partner, channel FROM receipts WHERE external_id = 'F-1'"
            )

        await eventually(receipt, within=30)
        row = await receipt()
        assert row is not None and (row["partner"], row["channel"]) == ("wijkapp", "kafka")
        events = await read_topic(
            settings,
            settings.topic(INCIDENT_EVENTS.name),
            until=lambda records: len(records) >= 1,
        )
        (reported,) = [json.loads(r.value) for r in events]
        assert reported["partner"] == "wijkapp" and reported["partner_kind"] == "citizen"


def test_partners_add_kafka_prints_the_credentials_once(settings: Settings) -> None:
    """`veilig partners add CODE --kafka --json`: the key, and the Kafka principal, password
    and topic; the password signs in and writes that topic."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "TOPIC_PREFIX": settings.topic_prefix,
    }
    ran = subprocess.run(
        [VEILIG, "partners", "add", "buas", "--kafka", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    printed = json.loads(ran.stdout)
    kafka = printed["kafka"]
    assert printed["partner"] == "buas" and printed["key"].startswith("vh_")
    assert kafka["username"] == "veilig-partner-buas"
    assert kafka["topic"] == settings.topic("incident-submissions.buas")
    partner = signed_in_as(settings, kafka["username"], kafka["password"])
    asyncio.run(produced(partner, kafka["topic"], b"{}"))
    refused = subprocess.run(
        [VEILIG, "partners", "add", "dlq", "--kafka"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1
    assert "reserved" in refused.stdout + refused.stderr
