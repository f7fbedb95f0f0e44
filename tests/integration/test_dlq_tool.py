"""`veilig dlq` against the real broker and database, told as the story an ops engineer lives:
a partner that is not registered yet reports over Kafka, intake dead-letters the report, the
engineer finds it, registers the partner, replays, and the report is accepted — once, however
often it is replayed — with every replay in the audit."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from schemas.envelope import decode, encode
from schemas.events import IncidentReported, IncidentTriaged, Recipient
from schemas.topics import INCIDENT_EVENTS, INCIDENT_SUBMISSIONS, MAIN_TOPICS
from services.cli import executable
from services.common.settings import Settings
from services.common.topics import apply_topics
from services.intake import partners
from services.intake.service import SPEC
from tests.support import (
    committed_offsets,
    eventually,
    header,
    partner_topics,
    produce,
    read_topic,
    running,
)

pytestmark = pytest.mark.integration

VEILIG = executable()
OS_USER = "ops-os-user"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


@dataclass(frozen=True)
class Cli:
    """`veilig …` in a process of its own, configured like an operator's shell."""

    env: dict[str, str]

    async def __call__(self, *args: str) -> Ran:
        # Asynchronously: intake keeps consuming in this process while the command runs.
        proc = await asyncio.create_subprocess_exec(
            VEILIG,
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode is not None
        return Ran(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def cli(settings: Settings) -> Cli:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "TOPIC_PREFIX": settings.topic_prefix,
        "LOGNAME": OS_USER,  # what getpass.getuser() reads first
        "USER": OS_USER,
        "COLUMNS": "250",  # the table's reason column is not squeezed
    }
    return Cli(env)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        yield conn
    finally:
        await conn.close()


DESCRIPTION = "Groep jongeren gooit vuurwerk naar voorbijgangers bij het station"
CONTACT = {"name": "Wim Waakzaam", "phone": "06-55507777", "email": "wim@example.org"}


def submission(external_id: str) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "occurred_at": "2026-11-27T23:30:00+01:00",
        "description": DESCRIPTION,
        "category_hint": "jeugdoverlast",
        "location": {"lat": 52.3873, "lon": 4.6385},
        "reporter": CONTACT,
    }


async def _committed_at_least(settings: Settings, topic: str, purpose: str, wanted: int) -> bool:
    """Has intake's consumer group ``purpose`` committed ``wanted`` records of ``topic``?"""
    offsets = await committed_offsets(settings, settings.group_id("intake", purpose))
    done = sum(offset for tp, offset in offsets.items() if tp.topic == topic and offset > 0)
    return done >= wanted


# A dozen `veilig` processes, each importing the whole CLI: minutes on a busy two-core machine.
@pytest.mark.timeout(600)
async def test_a_dead_lettered_submission_is_found_fixed_replayed_once_and_audited(
    settings: Settings, cli: Cli, db: asyncpg.Connection
) -> None:
    # The partner's own topic is there (`veilig partners add --kafka` made it), but intake
    # has no partner of that code yet.
    (submissions,) = await partner_topics(settings, "wijkapp")
    dead_letters = settings.topic(INCIDENT_SUBMISSIONS.dlq)
    external_id = f"W-{uuid.uuid4().hex[:6]}"
    key = external_id.encode()
    body = json.dumps(submission(external_id)).encode()

    async with running(SPEC, settings):
        # 1. A partner intake does not know reports over Kafka: intake dead-letters it.
        await produce(settings, submissions, [(key, body, [("x-partner-trace", b"trace-7")])])
        (original,) = await read_topic(settings, submissions, until=lambda rs: len(rs) >= 1)
        (dead,) = await read_topic(settings, dead_letters, until=lambda rs: len(rs) >= 1)
        # What lies on the dead-letter topic, read with a plain consumer: sealed, and the
        # headers say why without a word of the report.
        on_the_topic = dead.value + b"".join(k.encode() + v for k, v in dead.headers)
        for personal in (DESCRIPTION, "vuurwerk", external_id, "trace-7", *CONTACT.values()):
            assert personal.encode() not in on_the_topic, personal
        assert (header(dead, "x-dlq-sealed") or "").startswith("period:")

        # 2. The engineer lists the dead-letter topic and sees why.
        (row,) = (await cli("dlq", "list", "incident-submissions", "--json")).json()
        assert row == {
            "partition": dead.partition,
            "offset": dead.offset,
            "timestamp": row["timestamp"],
            "key": key.decode(),
            "kind": "unknown-partner",
            "service": "intake",
            "source_topic": submissions,
            "source_partition": original.partition,
            "source_offset": original.offset,
            "attempts": 1,
            "reason": "unknown partner 'wijkapp'",
        }
        table = await cli("dlq", "list", f"{INCIDENT_SUBMISSIONS.name}.dlq")
        assert table.code == 0, table.stderr
        assert "unknown partner 'wijkapp'" in table.stdout and "unknown-partner" in table.stdout
        assert f"{dead_letters}: 1 record(s)" in table.stdout

        # ... and looks at the record itself: every header and the value.
        shown = await cli(
            "dlq", "show", "incident-submissions", str(dead.offset), "-p", str(dead.partition)
        )
        assert shown.code == 0, shown.stderr
        for text in ("x-dlq-reason", "x-dlq-source-offset", "x-partner-trace", "trace-7"):
            assert text in shown.stdout
        assert external_id in shown.stdout and f"value ({len(body)} bytes)" in shown.stdout
        missing = await cli("dlq", "show", "incident-submissions", "99", "-p", str(dead.partition))
        assert missing.code == 1 and missing.stdout == ""
        assert missing.stderr.strip().splitlines() == [
            f"error: no record at offset 99 in {dead_letters} partition {dead.partition} "
            f"(partition {dead.partition}: offsets {dead.offset}..{dead.offset})"
        ]

        # 3. The cause is fixed: the partner is registered.
        await db.execute("SET search_path TO intake")
        await partners.add_partner(db, "wijkapp", name="Wijkapp Schalkwijk", kind="citizen")

        # 4. A dry run says what would happen and sends nothing.
        dry = await cli("dlq", "replay", "incident-submissions", "--dry-run", "--by", "ops.jan")
        assert dry.code == 0, dry.stderr
        assert f"would replay {dead_letters}/{dead.partition}/{dead.offset}" in dry.stdout
        assert "nothing was sent" in dry.stdout
        after_dry = await read_topic(settings, submissions, until=lambda rs: False, within=3)
        assert len(after_dry) == 1

        # A real replay without a reason is refused, in one line.
        unexplained = await cli("dlq", "replay", "incident-submissions")
        assert unexplained.code == 1 and "Traceback" not in unexplained.stderr
        assert len(unexplained.stderr.strip().splitlines()) == 1
        assert "--reason" in unexplained.stderr

        # 5. The replay: the report reaches intake again, as it was, and is accepted.
        replayed = await cli(
            "dlq",
            "replay",
            "incident-submissions",
            "--reason",
            "partner wijkapp registered (OPS-42)",
            "--by",
            "ops.jan",
        )
        assert replayed.code == 0, replayed.stderr
        assert f"replayed 1 record(s) of {dead_letters} to {submissions}" in replayed.stdout
        copies = await read_topic(settings, submissions, until=lambda rs: len(rs) >= 2)
        copy = copies[1]
        assert (copy.key, copy.value) == (key, body)
        names = [name for name, _ in copy.headers]
        assert not [n for n in names if n.startswith("x-dlq-")]
        assert header(copy, "x-partner-trace") == "trace-7"
        assert header(copy, "x-replayed-from") == f"{dead_letters}/{dead.partition}/{dead.offset}"

        def reported(records: list[Any]) -> list[IncidentReported]:
            events = [decode(r.headers, r.value) for r in records]
            return [
                e
                for e in events
                if isinstance(e, IncidentReported) and e.external_id == external_id
            ]

        events = await read_topic(
            settings, settings.topic(INCIDENT_EVENTS.name), until=lambda rs: bool(reported(rs))
        )
        if not reported(events):  # say why: the dead-letter topic knows
            now_dead = await read_topic(settings, dead_letters, until=lambda rs: False, within=2)
            reasons = [header(r, "x-dlq-reason") for r in now_dead]
            pytest.fail(f"the replayed report was not accepted; dead letters: {reasons}")
        (accepted,) = reported(events)
        assert accepted.partner == "wijkapp" and accepted.channel == "kafka"

        # 6. Replaying again is harmless: intake's receipts drop the second copy.
        again = await cli("dlq", "replay", "incident-submissions", "--reason", "sure is sure")
        assert again.code == 0, again.stderr
        await read_topic(settings, submissions, until=lambda rs: len(rs) >= 3)

        await eventually(lambda: _committed_at_least(settings, submissions, "main", 3), within=30)
        events = await read_topic(
            settings, settings.topic(INCIDENT_EVENTS.name), until=lambda rs: False, within=2
        )
        assert len(reported(events)) == 1
        assert (
            await db.fetchval(
                "SELECT count(*) FROM intake.receipts "
                "WHERE partner = 'wijkapp' AND external_id = $1",
                external_id,
            )
            == 1
        )
        dlq_now = await read_topic(settings, dead_letters, until=lambda rs: False, within=2)
        assert len(dlq_now) == 1  # nothing new was dead-lettered

        # An offset past the end is an error, not an empty replay.
        too_far = await cli("dlq", "replay", "incident-submissions", "--from", "5", "--dry-run")
        assert too_far.code == 1 and "no record at or after offset 5" in too_far.stderr

        # 7. Events too: a consumer's inbox drops the second copy of a replayed event. Here
        # intake's public-history consumer had (say) dead-lettered triage's decision on a
        # database outage; it is replayed twice and shows once.
        now = datetime.now(UTC)
        decision = IncidentTriaged(
            event_id=uuid.uuid4(),
            incident_id=accepted.incident_id,
            occurred_at=now,
            recorded_at=now,
            producer="triage",
            category="jeugdoverlast",
            priority="P3",
            confidence=0.88,
            needs_review=False,
            acknowledge_by=now + timedelta(hours=1),
            handle_by=now + timedelta(days=1),
            recipients=(Recipient(code="jeugd.team", profile="full"),),
            report_count=1,
        )
        triaged = encode(decision)
        events_topic = settings.topic(INCIDENT_EVENTS.name)
        failure = [
            ("x-dlq-reason", b"ConnectionDoesNotExistError: connection was closed"),
            ("x-dlq-kind", b"processing"),
            ("x-dlq-service", b"intake"),
            ("x-dlq-source-topic", events_topic.encode()),
            ("x-dlq-source-partition", b"0"),
            ("x-dlq-source-offset", b"0"),
            ("x-dlq-attempts", b"3"),
        ]
        await produce(
            settings,
            settings.topic(INCIDENT_EVENTS.dlq),
            [(triaged.key, triaged.value, [*triaged.headers, *failure])],
        )
        for reason in ("database back (INC-7)", "once more"):
            done = await cli("dlq", "replay", "incident-events", "--reason", reason)
            assert done.code == 0, done.stderr
        # On incident-events: the reported event and two copies of the triaged one.
        await eventually(
            lambda: _committed_at_least(settings, events_topic, "public-history", 3), within=30
        )
        assert (
            await db.fetchval(
                "SELECT count(*) FROM intake.inbox WHERE event_id = $1", decision.event_id
            )
            == 1
        )
        statuses = await db.fetch(
            "SELECT status FROM intake.public_history WHERE incident_id = $1 ORDER BY seq",
            accepted.incident_id,
        )
        assert [r["status"] for r in statuses] == ["received", "triaged"]

    # 8. The audit holds every invocation, the dry run too.
    rows = await db.fetch(
        "SELECT who, dlq_topic, target_topic, partition, from_offset, ranges, records, sent, "
        "reason, dry_run, outcome, finished_at FROM ops.dlq_replays "
        "WHERE dlq_topic = $1 ORDER BY id",
        dead_letters,
    )
    ranges = [
        {"partition": dead.partition, "first": dead.offset, "last": dead.offset, "records": 1}
    ]
    assert [
        (r["who"], r["dry_run"], r["reason"], r["records"], r["sent"], r["outcome"]) for r in rows
    ] == [
        ("ops.jan", True, None, 1, 0, "dry-run"),
        ("ops.jan", False, "partner wijkapp registered (OPS-42)", 1, 1, "replayed"),
        (OS_USER, False, "sure is sure", 1, 1, "replayed"),
    ]
    for r in rows:
        assert (r["dlq_topic"], r["target_topic"]) == (dead_letters, submissions)
        assert (r["partition"], r["from_offset"]) == (None, None)
        assert json.loads(r["ranges"]) == ranges and r["finished_at"] is not None

    history = (await cli("dlq", "history", "incident-submissions", "--json")).json()
    assert [h["outcome"] for h in history] == ["replayed", "replayed", "dry-run"]
    events_replays = await db.fetch(
        "SELECT reason, sent FROM ops.dlq_replays WHERE dlq_topic = $1 ORDER BY id",
        settings.topic(INCIDENT_EVENTS.dlq),
    )
    assert [(r["reason"], r["sent"]) for r in events_replays] == [
        ("database back (INC-7)", 1),
        ("once more", 1),
    ]


async def test_clear_one_line_errors_for_what_does_not_exist(settings: Settings, cli: Cli) -> None:
    await apply_topics(settings)
    unknown = await cli("dlq", "list", "incident-sumbissions")
    assert unknown.code == 1
    declared = ", ".join(t.name for t in MAIN_TOPICS)
    assert unknown.stderr.strip().splitlines() == [
        f"error: unknown topic 'incident-sumbissions'; the declared topics are {declared} "
        "(or their .dlq)"
    ]
    empty = await cli("dlq", "show", "notification-events", "0")
    assert empty.code == 1 and "no record at offset 0" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1
    nothing = await cli("dlq", "list", "incident-events")
    assert nothing.code == 0 and "is empty" in nothing.stdout

    elsewhere = Cli({**cli.env, "TOPIC_PREFIX": f"t{uuid.uuid4().hex[:10]}."})
    absent = await elsewhere("dlq", "list", "incident-events")
    assert absent.code == 1 and "does not exist" in absent.stderr
    assert "veilig topics apply" in absent.stderr
