"""`veilig dlq` without infrastructure: header filtering, topic names, and the one-line errors
for what is missing or unreachable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from schemas.topics import INCIDENT_EVENTS, INCIDENT_SUBMISSIONS
from services.cli import app
from services.common.dlq import DlqError, DlqRecord, replay_headers, resolve_topic
from services.common.settings import Settings, get_settings

ORIGIN = "p.incident-events.dlq/2/17"


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
