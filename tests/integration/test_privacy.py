"""Personal data has an end (issue #15, docs/decisions/0010), against the real broker and
database: two reports with contact details, a description and an exact point; one erased on
request (`veilig privacy erase`), the other by the retention purge with the clock moved a year
on. Afterwards no table of any service holds their contact, text or coordinates (nor a sealed
token that opens to them); no record of any topic or dead-letter topic, read with a real
consumer, holds them in the clear, and the period keys that sealed them there are destroyed
(crypto-shredding); the erasures are audited and on incident-events, analytics still counts
both incidents, and webhooks still deliver (a cancel that carries none of it).

Intake, triage, notify and analytics run in this process, as in test_programme.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from typer.testing import CliRunner

from schemas.envelope import decode
from schemas.events import IncidentPersonalDataErased, IncidentReported, IncidentReportedSealed
from schemas.topics import INCIDENT_EVENTS
from services.analytics.service import SPEC as ANALYTICS
from services.common.dlq import DlqRecord, load_keys
from services.common.kafka_security import client_options
from services.common.period_keys import PeriodKeys, open_report, report_keys
from services.common.pii import SealError, open_sealed
from services.common.settings import Settings, get_settings
from services.common.topics import connect_admin
from services.notify.webhooks import generate_secret
from services.triage import privacy
from services.triage.actions import Actor
from services.triage.privacy_cli import privacy_app
from tests.integration.test_notify import Receiver, verified, webhook
from tests.integration.test_programme import (  # noqa: F401
    GROTE_MARKT,
    SCHALKWIJK,
    programme,
    receiver,
)
from tests.support import eventually, header, produce, read_topic, running

pytestmark = pytest.mark.integration

REPORTED_V1 = IncidentReported.ce_type.encode()  # without the rest of its envelope: poison
OFFICER = Actor("cli:privacy-officer", "operator")

WIJKAGENT = "politie.wijkagent.{wijk}"  # every wijk's wijkagent, one endpoint
CONTACT = {"name": "Petronella Privacytest", "phone": "06-55501234", "email": "pp@example.org"}
TEXT = "Inbraak aan de achterzijde, buurman Kees Kwetsbaar zag twee mannen"
POINTS = [GROTE_MARKT, SCHALKWIJK]  # far apart: two incidents, not one merged
PERSONAL = [*CONTACT.values(), "Kwetsbaar", *(str(p[c]) for p in POINTS for c in ("lat", "lon"))]


def readable(value: str, text: str) -> bool:
    """Is ``value`` in ``text`` as itself: a coordinate such as 4.656 counts as a number, not
    as the middle of a timestamp's seconds (…:44.656484)."""
    return re.search(rf"(?<![\d.]){re.escape(value)}(?!\d)", text) is not None


async def everything_stored(conn: asyncpg.Connection) -> str:
    """Every row of every table of every schema as text, sealed tokens opened where the
    configured keys still open them: what anyone with the database and the keys can read."""
    tables = await conn.fetch(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
    )
    texts = []
    for t in tables:
        name = f'"{t["table_schema"]}"."{t["table_name"]}"'
        texts += await conn.fetchval(f"SELECT array_agg(to_jsonb(r)::text) FROM {name} r") or []
    opened = []
    for text in texts:
        for token in _tokens(text):
            with contextlib.suppress(SealError):
                opened.append(open_sealed(token))
    return "\n".join(texts + opened)


def _tokens(text: str) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if value.startswith("gAAAAA"):  # a Fernet token
                found.append(value)
            elif value.startswith(("{", "[")):
                with contextlib.suppress(ValueError):
                    walk(json.loads(value))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(text))
    return found


async def every_record(settings: Settings) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of every topic of this deployment, dead-letter topics too, read to the end
    with a plain consumer."""
    admin = await connect_admin(settings)
    try:
        names = [
            t
            for t in await admin.list_topics()
            if t.startswith(settings.topic_prefix) and not t.startswith("__")
        ]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    parts = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + 30
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert asyncio.get_running_loop().time() < deadline, "topics not read to the end"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def as_text(record: ConsumerRecord[bytes, bytes]) -> str:
    raw = (record.value or b"") + b" ".join(v for _, v in record.headers or ())
    return raw.decode("utf-8", errors="replace")


def sealed_reports(
    records: list[ConsumerRecord[bytes, bytes]], ids: list[UUID]
) -> list[IncidentReportedSealed]:
    """The incidents' reports as they lie on the topics (each lane has its copy)."""
    return [
        e
        for r in records
        if header(r, "ce_type") == IncidentReportedSealed.ce_type
        and isinstance(e := decode(r.headers, r.value), IncidentReportedSealed)
        and e.incident_id in ids
    ]


def sealing_keys(records: list[ConsumerRecord[bytes, bytes]], ids: list[UUID]) -> set[UUID]:
    """The period keys that sealed the incidents' reports and the dead letters on the topics."""
    keys = {e.personal_sealed.key_id for e in sealed_reports(records, ids)}
    for r in records:
        sealed = header(r, "x-dlq-sealed") or ""
        if sealed.startswith("period:"):
            keys.add(UUID(sealed.removeprefix("period:")))
    return keys


async def test_personal_data_ends_while_counts_and_deliveries_go_on(
    settings: Settings,
    receiver: Receiver,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = generate_secret()
    async with programme(settings) as (p, _notify), running(ANALYTICS, settings):
        await webhook(settings, receiver, WIJKAGENT, [secret])
        await webhook(settings, receiver, "politie.meldkamer", [secret])
        report = {"description": TEXT, "category_hint": "hic.woninginbraak", "reporter": CONTACT}
        purged = await p.report("politie", **report, location=GROTE_MARKT)
        erased = await p.report("politie", **report, location=SCHALKWIJK)
        ids = [purged, erased]
        delivered = await receiver.wait(WIJKAGENT, count=2, within=45)
        assert all(TEXT in d.body.decode() for d in delivered)  # it was there to begin with

        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        try:

            async def counted() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM analytics.incident_facts "
                    "WHERE incident_id = ANY($1) AND triaged_at IS NOT NULL",
                    ids,
                )
                return bool(n == 2)

            await eventually(counted, within=30)
            facts_before = await _facts(conn, ids)

            # A copy of the report that no consumer can take: every consumer dead-letters it,
            # so the dead-letter topic holds the personal data too (sealed).
            dead_letters = settings.topic(INCIDENT_EVENTS.dlq)
            poison = json.dumps({"description": TEXT, "reporter": CONTACT, **GROTE_MARKT})
            await produce(
                settings,
                settings.topic(INCIDENT_EVENTS.name),
                [(str(purged).encode(), poison.encode(), [("ce_type", REPORTED_V1)])],
            )
            # Every service that reads reports dead-letters it; analytics, a background reader,
            # up to half a second after the others. All of them before the keys are destroyed:
            # a dead letter written after that is sealed with a key made after it.
            readers = {"triage", "notify", "analytics"}
            await read_topic(
                settings,
                dead_letters,
                until=lambda rs: readers <= {header(r, "x-dlq-service") for r in rs},
            )

            # On Kafka it was all there, sealed: who has the day's key reads it.
            before = await every_record(settings)
            found = await report_keys(conn, ids, PeriodKeys())
            reports = [open_report(e, found) for e in sealed_reports(before, ids)]
            assert len(reports) >= 2 and all(e.description == TEXT for e in reports)
            dead = [r for r in before if r.topic == dead_letters]
            await load_keys(settings, dead)
            assert dead and all(TEXT.encode() in DlqRecord.of(r).original().value for r in dead)

            # Right to erasure, from the command line, for one report.
            for name, value in {
                "DATABASE_URL": settings.database_url.get_secret_value(),
                "TOPIC_PREFIX": settings.topic_prefix,
            }.items():
                monkeypatch.setenv(name, value)
            get_settings.cache_clear()
            try:
                cli = await asyncio.to_thread(
                    CliRunner().invoke, privacy_app, ["erase", str(erased), "--request", "AVG-42"]
                )
            finally:
                get_settings.cache_clear()
            assert cli.exit_code == 0, cli.output
            # On Kafka at once: the erased report's own key is gone, the other still opens.
            found = await report_keys(conn, ids, PeriodKeys())
            assert set(found) == {purged}
            opened = {
                (e.incident_id, open_report(e, found).description)
                for e in sealed_reports(await every_record(settings), ids)
            }
            assert opened == {(purged, TEXT), (erased, "")}

            # A year on, the purge: a dry run counts, then the real one erases the other.
            await conn.execute("SET search_path = triage")
            a_year_on = datetime.now(UTC) + timedelta(days=366)
            dry = await privacy.purge(conn, settings, OFFICER, a_year_on, dry_run=True)
            assert dry.erased == 1
            assert (
                await conn.fetchval(
                    "SELECT personal_data_erased_at FROM incidents WHERE incident_id = $1", purged
                )
                is None
            )
            run = await privacy.purge(conn, settings, OFFICER, a_year_on)
            assert run.erased == 1 and run.keys_destroyed >= 1
            again = await privacy.purge(conn, settings, OFFICER, a_year_on)
            assert again.erased == 0

            # Audited: who erased what, and why; every purge run, the dry one too.
            audit = await conn.fetch(
                "SELECT actor, action, incident_id, detail FROM audit "
                "WHERE action IN ('erase_personal_data', 'privacy_purge') ORDER BY id"
            )  # (the daily loop's first run, at triage's start, erased nothing yet)
            erasures = {
                a["incident_id"]: json.loads(a["detail"]) for a in audit if a["incident_id"]
            }
            assert erasures[erased]["reason"] == "erasure"
            assert erasures[erased]["request"] == "AVG-42"
            assert erasures[purged] == {"reason": "retention", "retention_days": 365}
            runs = [
                json.loads(a["detail"])
                for a in audit
                if a["action"] == "privacy_purge" and a["actor"] == OFFICER.username
            ]
            assert [(r["dry_run"], r["erased"]) for r in runs] == [
                (True, 1),
                (False, 1),
                (False, 0),
            ]

            # Each erasure is an event on incident-events, read with a real consumer.
            def erasures_on(records: list[Any]) -> dict[str, str]:
                return {
                    str(e.incident_id): e.reason
                    for r in records
                    if header(r, "ce_type") == IncidentPersonalDataErased.ce_type
                    and isinstance(e := decode(r.headers, r.value), IncidentPersonalDataErased)
                }

            records = await read_topic(
                settings,
                settings.topic(INCIDENT_EVENTS.name),
                until=lambda rs: len(erasures_on(rs)) == 2,
            )
            assert erasures_on(records) == {str(purged): "retention", str(erased): "erasure"}

            # Notify erases its copies on the event; analytics records it and counts on.
            async def all_erased() -> bool:
                left = await conn.fetchval(
                    "SELECT count(*) FROM notify.incidents "
                    "WHERE incident_id = ANY($1) AND reported->>'description' <> ''",
                    ids,
                )
                seen = await conn.fetchval(
                    "SELECT count(*) FROM analytics.events "
                    "WHERE incident_id = ANY($1) AND type = 'incident.personal-data-erased'",
                    ids,
                )
                return bool(left == 0 and seen == 2)

            await eventually(all_erased, within=30)
            stored = await everything_stored(conn)
            for value in PERSONAL:
                assert not readable(value, stored), f"{value!r} is still readable in the database"
            assert await _facts(conn, ids) == facts_before

            # Every topic and dead-letter topic, read with a real consumer: nothing personal
            # in the clear, and every key that sealed it there is destroyed, so nobody with
            # the database and the platform's keys can open it any more.
            after = await every_record(settings)
            assert len(after) >= len(before)
            for record in after:
                if record.value == poison.encode():
                    continue  # the test wrote it in the clear, not the platform
                for value in [*PERSONAL, TEXT]:
                    assert not readable(value, as_text(record)), (record.topic, value)
            sealed_with = sealing_keys(after, ids)
            assert sealed_with >= sealing_keys(before, ids)
            now = PeriodKeys()
            await now.load(conn, sealed_with)
            assert [k for k in sealed_with if now.key(k) is not None] == []
            found = await report_keys(conn, ids, now)
            assert found == {}
            copies = sealed_reports(after, ids)
            assert len(copies) >= len(reports)  # the urgent lane holds copies too
            for copy in copies:
                report = open_report(copy, found)
                assert (report.description, report.location.lat, report.reporter_sealed) == (
                    "",
                    None,
                    None,
                )
        finally:
            await conn.close()

        # Webhooks still deliver: resolving one tells its recipients, without what was erased.
        await p.resolve(purged)
        cancels = await receiver.wait(WIJKAGENT, count=3, within=30)
        cancel = cancels[-1]
        verified(cancel, secret)
        assert cancel.json["kind"] == "cancel"
        assert cancel.json["incident_id"] == str(purged)
        assert not any(readable(value, cancel.body.decode()) for value in [*PERSONAL, TEXT])


async def _facts(conn: asyncpg.Connection, ids: list[UUID]) -> list[tuple[Any, ...]]:
    """What analytics counts of the incidents: category, buurt, wijk, priority, times."""
    rows = await conn.fetch(
        "SELECT incident_id, category, buurt, wijk, priority, occurred_at, received_at, "
        "report_count FROM analytics.incident_facts WHERE incident_id = ANY($1) "
        "ORDER BY incident_id",
        ids,
    )
    return [tuple(r) for r in rows]
