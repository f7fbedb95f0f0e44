"""`veilig dlq` without infrastructure: sealed dead letters, header filtering, topic names, and
the one-line errors for what is missing or unreachable."""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import date

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from schemas.topics import INCIDENT_EVENTS, INCIDENT_SUBMISSIONS
from services.cli import app
from services.common import pii
from services.common.dlq import (
    DlqError,
    DlqRecord,
    reason_of,
    replay_headers,
    resolve_topic,
    seal_dead_letter,
)
from services.common.period_keys import KEYS, PeriodKey
from services.common.settings import Settings, get_settings

ORIGIN = "p.incident-events.dlq/2/17"
CONTACT = b'{"reporter":{"name":"Anna de Vries","phone":"06-12345678"},"description":"Kees"}'


KEY = PeriodKey(uuid.uuid4(), date(2026, 12, 2), Fernet.generate_key())


@pytest.fixture(autouse=True)
def period_key() -> Iterator[None]:
    """The day's key as :func:`services.common.dlq.load_keys` would have loaded it."""
    KEYS._cache[KEY.key_id] = (KEY.key, time.monotonic())
    yield
    KEYS._cache.pop(KEY.key_id, None)


def _dead_letter(value: bytes, headers: list[tuple[str, bytes]], reason: str) -> DlqRecord:
    sealed, why = seal_dead_letter(
        value,
        headers,
        key=KEY,
        reason=reason,
        kind="invalid-report",
        service="intake",
        source=("p.incident-submissions.politie", 1, 41),
        attempts=1,
    )
    return DlqRecord(
        topic="p.incident-submissions.dlq",
        partition=2,
        offset=17,
        timestamp_ms=1_790_000_000_000,
        key=b"K-1",
        value=sealed,
        headers=tuple((k, v.encode()) for k, v in why.items()),
    )


def test_a_dead_letter_is_sealed_and_its_headers_carry_no_content() -> None:
    original = [("x-partner-trace", b"Anna"), ("raw", b"\xff\x00")]
    reason = "ValidationError: phone: input_value='06-12345678'"
    record = _dead_letter(CONTACT, original, reason)
    visible = record.value + b"".join(k.encode() + v for k, v in record.headers)
    for content in (b"Anna", b"06-12345678", b"Kees", b"input_value", b"x-partner-trace"):
        assert content not in visible
    assert record.header("x-dlq-sealed") == f"period:{KEY.key_id}"
    assert {k for k, _ in record.headers} == {
        "x-dlq-sealed",
        "x-dlq-reason",
        "x-dlq-kind",
        "x-dlq-service",
        "x-dlq-source-topic",
        "x-dlq-source-partition",
        "x-dlq-source-offset",
        "x-dlq-attempts",
    }
    # Opened by whoever has the day's key: the record exactly as it was, the reason as it was.
    opened = record.original()
    assert (opened.value, list(opened.headers)) == (CONTACT, original)
    assert record.reason == reason == reason_of(record.headers)
    assert record.summary()["reason"] == reason and record.summary()["source_offset"] == 41
    headers, value = record.readable()
    assert value == CONTACT
    assert ("x-dlq-reason", reason.encode()) in headers and headers[-2:] == original
    assert replay_headers(opened.headers, record.origin)[:2] == original


def test_a_dead_letter_whose_period_key_was_destroyed_cannot_be_opened() -> None:
    record = _dead_letter(CONTACT, [], "boom")
    KEYS._cache[KEY.key_id] = (None, time.monotonic())  # the purge destroyed the day's key
    with pytest.raises(DlqError, match=f"period key {KEY.key_id} is destroyed"):
        record.original()
    assert record.reason == "(sealed with a key that is gone or not configured here)"


def test_a_dead_letter_sealed_with_the_pii_key_still_opens_until_that_key_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = DlqRecord(
        topic="p.incident-events.dlq",
        partition=0,
        offset=4,
        timestamp_ms=1_790_000_000_000,
        key=None,
        value=pii.seal_bytes(zlib.compress(b'{"headers": []}\n' + CONTACT)),
        headers=(("x-dlq-sealed", b"pii"), ("x-dlq-reason", pii.seal("boom").encode())),
    )
    assert (record.original().value, record.reason) == (CONTACT, "boom")
    monkeypatch.setenv("PII_KEYS", Fernet.generate_key().decode())  # the old key dropped
    pii._forget_keys()
    try:
        with pytest.raises(DlqError, match="cannot be opened"):
            record.original()
        assert record.reason == "(sealed with a key that is gone or not configured here)"
    finally:
        monkeypatch.undo()
        pii._forget_keys()


def test_a_dead_letter_from_before_sealing_is_read_as_it_is() -> None:
    record = DlqRecord(
        topic="p.incident-events.dlq",
        partition=0,
        offset=3,
        timestamp_ms=1_790_000_000_000,
        key=None,
        value=b"{}",
        headers=(("ce_id", b"0b7e"), ("x-dlq-reason", b"boom"), ("x-dlq-kind", b"processing")),
    )
    assert record.reason == "boom"
    assert record.original().value == b"{}"
    assert record.original().headers == (("ce_id", b"0b7e"),)
    assert record.readable() == (
        [("x-dlq-reason", b"boom"), ("x-dlq-kind", b"processing"), ("ce_id", b"0b7e")],
        b"{}",
    )


def test_replayed_headers_drop_every_dlq_header_and_say_where_they_came_from() -> None:
    headers = [
        ("ce_id", b"0b7e"),
        ("x-dlq-reason", b"boom"),
        ("content-type", b"application/json"),
        ("X-DLQ-Kind", b"processing"),  # whatever the case
        ("x-dlq-source-topic", b"p.incident-events"),
        ("x-replayed-from", b"p.incident-events.dlq/0/3"),  # an earlier replay's
        ("traceparent", b"00-abc-def-01"),
        ("x-dlqueue-note", b"\xff\x00"),  # not an x-dlq-* header: kept, bytes untouched
        ("ce_id", b"second"),  # repeated headers stay, in order
    ]
    assert replay_headers(headers, ORIGIN) == [
        ("ce_id", b"0b7e"),
        ("content-type", b"application/json"),
        ("traceparent", b"00-abc-def-01"),
        ("x-dlqueue-note", b"\xff\x00"),
        ("ce_id", b"second"),
        ("x-replayed-from", ORIGIN.encode()),
    ]
    assert replay_headers([], ORIGIN) == [("x-replayed-from", ORIGIN.encode())]


def test_a_record_summary_reads_the_dlq_headers() -> None:
    record = DlqRecord(
        topic="p.incident-events.dlq",
        partition=2,
        offset=17,
        timestamp_ms=1_790_000_000_000,
        key=b"8f0c",
        value=b"{}",
        headers=(
            ("x-dlq-reason", b"ValueError: no"),
            ("x-dlq-kind", b"processing"),
            ("x-dlq-service", b"triage"),
            ("x-dlq-source-topic", b"p.incident-events"),
            ("x-dlq-source-partition", b"5"),
            ("x-dlq-source-offset", b"12345"),
            ("x-dlq-attempts", b"3"),
        ),
    )
    assert record.origin == ORIGIN
    assert record.summary() == {
        "partition": 2,
        "offset": 17,
        "timestamp": "2026-09-21T14:13:20+00:00",
        "key": "8f0c",
        "kind": "processing",
        "service": "triage",
        "source_topic": "p.incident-events",
        "source_partition": 5,
        "source_offset": 12345,
        "attempts": 3,
        "reason": "ValueError: no",
    }


def test_topics_are_named_as_declared_as_dlq_or_with_the_prefix() -> None:
    settings = Settings(topic_prefix="p.")
    for name in ("incident-events", "incident-events.dlq", "p.incident-events.dlq"):
        assert resolve_topic(name, settings) is INCIDENT_EVENTS
    assert resolve_topic("incident-submissions", Settings(topic_prefix="")) is INCIDENT_SUBMISSIONS
    with pytest.raises(DlqError, match="declared topics are incident-submissions, incident-ev"):
        resolve_topic("incidents", settings)


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """Nothing listens on port 1: Kafka and PostgreSQL are both unreachable."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://veilig@127.0.0.1:1/veilig")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "incidents"], "unknown topic 'incidents'; the declared topics are"),
        (["list", "incident-events"], "Kafka at 127.0.0.1:1 is not reachable"),
        (["show", "incident-events", "3"], "Kafka at 127.0.0.1:1 is not reachable"),
        (["replay", "incident-events", "--dry-run"], "PostgreSQL is not reachable"),
        (["replay", "incident-events", "--reason", "fixed"], "PostgreSQL is not reachable"),
        (["replay", "incident-events"], "a replay needs a reason"),
        (["replay", "incident-events", "--reason", "  "], "a replay needs a reason"),
        (["history"], "PostgreSQL is not reachable"),
    ],
)
def test_errors_are_one_line_and_exit_1(
    unreachable: CliRunner, args: list[str], message: str
) -> None:
    result = unreachable.invoke(app, ["dlq", *args])
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert "Traceback" not in result.output
