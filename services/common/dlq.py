"""Dead-letter topics for operators: look at what consumers could not process, and replay it
once the cause is fixed (``veilig dlq …``, services/common/dlq_cli.py).

A consumer moves a record it cannot process to ``<topic>.dlq`` with the why in ``x-dlq-*``
headers (services/common/consumer.py, :func:`seal_dead_letter`). The dead letter's value is the
original record (its value and its headers) sealed with the period key of the day it was
dead-lettered (services/common/period_keys.py), and the reason is sealed too (it may quote the
value): a dead-letter topic keeps its records for 90 days, personal data must not lie there in
the clear, and the purge shreds a day's dead letters with the day's key (docs/decisions/0010).
Its headers carry no content: the kind, service, source topic, partition and offset, attempts
and ``x-dlq-sealed``. ``show`` and ``replay`` open it (replay publishes the original); records
written before sealing, or by hand, are read as they are.

This module reads a dead-letter topic with a plain consumer without a group (assigned
partitions, read from an offset up to the end offsets taken at the start, then stopped: it
commits nothing and disturbs no service), and replays records to their source topic: the
original key, value and headers minus every ``x-dlq-*`` header, plus ``x-replayed-from: <dlq
topic>/<partition>/<offset>``, through an idempotent producer with acks=all. A replay may
safely deliver a record that was processed before: consumers drop a second copy of an event
through their inbox (CloudEvents id), and intake drops a second copy of a submission through
its receipts (partner + external id).

Every replay, dry runs too, is audited in PostgreSQL: a row in ``ops.dlq_replays`` per
invocation (schema ``ops``, migrations in ``ops_migrations/``, applied on first use like the
``staff`` schema), written before anything is sent and completed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import re
import uuid
import zlib
from base64 import b64decode, b64encode
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from cryptography.fernet import Fernet

from schemas.topics import MAIN_TOPICS, Topic
from services.common import pii
from services.common.kafka_access import partner_topic_pattern
from services.common.kafka_security import client_options
from services.common.migrations import MigrationError, load_migrations, migrate
from services.common.period_keys import KEYS, PeriodKey
from services.common.settings import Settings

SCHEMA = "ops"
MIGRATIONS = Path(__file__).parent / "ops_migrations"
DLQ_HEADER_PREFIX = "x-dlq-"
# The value and the reason are sealed with a period key ("period:<key id>"); before period
# keys, with the PII key ("pii").
SEALED = "x-dlq-sealed"
PERIOD_SEALED = "period:"
REASON = "x-dlq-reason"
REPLAYED_FROM = "x-replayed-from"
STALL_SECONDS = 30.0  # no progress reading a partition for this long is an error
SEND_CHUNK = 500  # records in flight at once while replaying


class DlqError(RuntimeError):
    """What an operator can act on; the message is the whole story, on one line."""


# --- topics ----------------------------------------------------------------------------------


def resolve_topic(name: str, settings: Settings) -> Topic:
    """The declared topic that ``name`` means: its declared name, its ``.dlq`` name, or either
    with this deployment's topic prefix."""
    bare = name.strip().removesuffix(".dlq")
    if settings.topic_prefix:
        bare = bare.removeprefix(settings.topic_prefix)
    for topic in MAIN_TOPICS:
        if topic.name == bare:
            return topic
    declared = ", ".join(t.name for t in MAIN_TOPICS)
    raise DlqError(f"unknown topic {name!r}; the declared topics are {declared} (or their .dlq)")


def kafka_unreachable(settings: Settings, exc: BaseException) -> DlqError:
    return DlqError(
        f"Kafka at {settings.kafka_bootstrap_servers} is not reachable ({_one_line(exc)}); "
        "is it running (make up) and is KAFKA_BOOTSTRAP_SERVERS right?"
    )


# --- records ---------------------------------------------------------------------------------


def text_of(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())


def seal_dead_letter(
    value: bytes,
    headers: Iterable[tuple[str, bytes]],
    *,
    key: PeriodKey,
    reason: str,
    kind: str,
    service: str,
    source: tuple[str, int, int],
    attempts: int,
) -> tuple[bytes, dict[str, str]]:
    """The value and headers of the dead letter of a record (``value``, ``headers``) from
    ``source`` (topic, partition, offset): the original sealed, the why beside it.

    Sealed, with the period key ``key`` (the purge shreds it with its day), is the original's
    headers as one JSON line, then its value as it was, compressed (sealing adds a third, and a
    dead letter must fit where its record did)."""
    head = json.dumps({"headers": [[k, b64encode(v).decode()] for k, v in headers]})
    topic, partition, offset = source
    box = Fernet(key.key)
    return box.encrypt(zlib.compress(head.encode() + b"\n" + value)), {
        SEALED: f"{PERIOD_SEALED}{key.key_id}",
        REASON: box.encrypt(reason[:2000].encode()).decode(),
        "x-dlq-kind": kind,
        "x-dlq-service": service,
        "x-dlq-source-topic": topic,
        "x-dlq-source-partition": str(partition),
        "x-dlq-source-offset": str(offset),
        "x-dlq-attempts": str(attempts),
    }


def _period_key_id(sealed: str | None) -> uuid.UUID | None:
    if sealed is None or not sealed.startswith(PERIOD_SEALED):
        return None
    try:
        return uuid.UUID(sealed.removeprefix(PERIOD_SEALED))
    except ValueError:
        return None


def _open(sealed: str, token: bytes) -> bytes:
    """``token`` of a dead letter marked ``sealed``: with the PII key (``pii``, before period
    keys) or with its period key, which must be loaded (:func:`load_keys`)."""
    key_id = _period_key_id(sealed)
    if key_id is None:
        return pii.open_bytes(token)
    opened = KEYS.open(key_id, token.decode())
    if opened is None:
        raise pii.SealError(f"period key {key_id} is destroyed or unknown here")
    return opened


def reason_of(headers: Iterable[tuple[str, bytes]]) -> str | None:
    """Why a dead letter is there (its ``x-dlq-reason``, opened when sealed), or None."""
    found = dict(headers)
    reason = text_of(found.get(REASON))
    sealed = text_of(found.get(SEALED))
    if reason is None or sealed is None:
        return reason
    try:
        return _open(sealed, reason.encode()).decode()
    except pii.SealError:
        return "(sealed with a key that is gone or not configured here)"


class HasHeaders(Protocol):
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


async def load_keys(settings: Settings, records: Iterable[HasHeaders]) -> None:
    """Read the period keys that sealed the dead letters ``records`` (a :class:`DlqRecord` or a
    consumer's record); none needed, no database asked."""
    key_ids = {k for r in records if (k := _period_key_id(text_of(dict(r.headers).get(SEALED))))}
    if key_ids:
        conn = await connect_ops(settings)
        try:
            await KEYS.load(conn, key_ids)
        finally:
            await conn.close()


@dataclass(frozen=True, slots=True)
class Original:
    """A dead letter's record as it was on its source topic."""

    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class DlqRecord:
    """One record of a dead-letter topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record: ConsumerRecord[bytes, bytes]) -> DlqRecord:
        """A record as a consumer read it from a dead-letter topic."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value or b"",
            headers=tuple(record.headers or ()),
        )

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` as text, or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return text_of(found)

    @property
    def origin(self) -> str:
        """Where this record sits: ``<dlq topic>/<partition>/<offset>``."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def sealed(self) -> bool:
        return self.header(SEALED) is not None

    @property
    def reason(self) -> str | None:
        return reason_of(self.headers)

    def original(self) -> Original:
        """The record as it was on its source topic: opened when sealed."""
        if not self.sealed:  # dead-lettered before values were sealed, or written by hand
            kept = tuple(
                (k, v) for k, v in self.headers if not k.lower().startswith(DLQ_HEADER_PREFIX)
            )
            return Original(self.value, kept)
        try:
            opened = _open(self.header(SEALED) or "", self.value)
            head, _, value = zlib.decompress(opened).partition(b"\n")
            headers = json.loads(head)["headers"]
            return Original(value, tuple((k, b64decode(v)) for k, v in headers))
        except pii.SealError as exc:
            raise DlqError(
                f"{self.origin} cannot be opened ({exc}): its period key was destroyed by the "
                "personal-data purge and its content is gone, or this host lacks the platform's "
                "PII keys (PII_KEYS or PII_KEY_FILE)"
            ) from exc
        except (zlib.error, ValueError, KeyError, TypeError) as exc:
            raise DlqError(f"{self.origin} is marked sealed but is not a sealed record") from exc

    def readable(self) -> tuple[list[tuple[str, bytes]], bytes]:
        """What `veilig dlq show` prints: the why (``x-dlq-*``, the reason opened), then the
        original's headers, and the original's value."""
        original = self.original()
        why = [
            (k, (self.reason or "").encode() if k == REASON else v)
            for k, v in self.headers
            if k.lower().startswith(DLQ_HEADER_PREFIX)
        ]
        return why + list(original.headers), original.value

    @property
    def source_topic(self) -> str | None:
        return self.header("x-dlq-source-topic")

    def summary(self) -> dict[str, str | int | None]:
        """The record as `veilig dlq list --json` prints it (the whole reason)."""
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp.isoformat(),
            "key": text_of(self.key),
            "kind": self.header("x-dlq-kind"),
            "service": self.header("x-dlq-service"),
            "source_topic": self.source_topic,
            "source_partition": _int(self.header("x-dlq-source-partition")),
            "source_offset": _int(self.header("x-dlq-source-offset")),
            "attempts": _int(self.header("x-dlq-attempts")),
            "reason": self.reason,
        }


def replay_headers(headers: Iterable[tuple[str, bytes]], origin: str) -> list[tuple[str, bytes]]:
    """The headers a replayed record carries: the original ones without any ``x-dlq-*`` (nor
    the ``x-replayed-from`` of an earlier replay), plus ``x-replayed-from: origin``."""
    kept = [
        (key, value)
        for key, value in headers
        if not key.lower().startswith(DLQ_HEADER_PREFIX) and key.lower() != REPLAYED_FROM
    ]
    kept.append((REPLAYED_FROM, origin.encode()))
    return kept


# --- reading a dead-letter topic -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bounds:
    """A partition's first offset and its end (the offset the next record will get)."""

    first: int
    end: int

    def __contains__(self, offset: object) -> bool:
        return isinstance(offset, int) and self.first <= offset < self.end

    def describe(self) -> str:
        return "empty" if self.end <= self.first else f"offsets {self.first}..{self.end - 1}"


class DlqReader:
    """A dead-letter topic's partitions, their bounds when it was opened, and their records."""

    def __init__(
        self, consumer: AIOKafkaConsumer, topic: str, bounds: dict[int, Bounds], settings: Settings
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.bounds = bounds
        self.settings = settings

    def _check_partition(self, partition: int | None) -> list[int]:
        if partition is None:
            return sorted(self.bounds)
        if partition not in self.bounds:
            raise DlqError(
                f"{self.topic} has no partition {partition} "
                f"(its partitions are 0..{max(self.bounds)})"
            )
        return [partition]

    def _layout(self, partitions: Sequence[int]) -> str:
        return ", ".join(f"partition {p}: {self.bounds[p].describe()}" for p in partitions)

    async def records(
        self, *, partition: int | None = None, from_offset: int | None = None
    ) -> AsyncIterator[DlqRecord]:
        """The records of ``partition`` (or every partition, one after the other) from
        ``from_offset`` on, up to the end the partition had when the reader was opened.
        An offset beyond the last record of every selected partition is an error."""
        partitions = self._check_partition(partition)
        if from_offset is not None and not any(
            from_offset < self.bounds[p].end for p in partitions
        ):
            raise DlqError(
                f"no record at or after offset {from_offset} in {self.topic} "
                f"({self._layout(partitions)})"
            )
        for p in partitions:
            bounds = self.bounds[p]
            start = max(bounds.first, from_offset or 0)
            if start >= bounds.end:
                continue
            async for record in self._read(p, start, bounds.end):
                yield record

    async def record_at(self, offset: int, partition: int | None = None) -> DlqRecord:
        """The record at ``offset`` (of ``partition``, which may be left out when only one
        partition holds that offset)."""
        partitions = self._check_partition(partition)
        holding = [p for p in partitions if offset in self.bounds[p]]
        if not holding:
            where = self.topic if partition is None else f"{self.topic} partition {partition}"
            raise DlqError(f"no record at offset {offset} in {where} ({self._layout(partitions)})")
        if len(holding) > 1:
            raise DlqError(
                f"offset {offset} exists in partitions {', '.join(map(str, holding))} of "
                f"{self.topic}: say which with --partition"
            )
        async with contextlib.aclosing(self._read(holding[0], offset, offset + 1)) as records:
            async for record in records:
                return record
        raise DlqError(f"no record at offset {offset} in {self.topic} partition {holding[0]}")

    async def _read(self, partition: int, start: int, end: int) -> AsyncIterator[DlqRecord]:
        tp = TopicPartition(self.topic, partition)
        loop = asyncio.get_running_loop()
        try:
            self.consumer.assign([tp])  # only this one: nothing else is fetched meanwhile
            self.consumer.seek(tp, start)
            position = start
            stalled_at = loop.time() + STALL_SECONDS
            while position < end:
                fetched = await self.consumer.getmany(tp, timeout_ms=500, max_records=500)
                batch = fetched.get(tp, [])
                if batch:
                    stalled_at = loop.time() + STALL_SECONDS
                for record in batch:
                    position = record.offset + 1
                    if start <= record.offset < end:
                        yield DlqRecord.of(record)
                # Offsets may have gaps (transaction markers): the position says how far we are.
                position = max(position, await self.consumer.position(tp))
                if position < end and loop.time() > stalled_at:
                    raise DlqError(
                        f"reading {self.topic} partition {partition} stalled at offset "
                        f"{position} (end {end}) for {STALL_SECONDS:.0f}s; is Kafka healthy?"
                    )
        except KafkaError as exc:
            raise kafka_unreachable(self.settings, exc) from exc


@contextlib.asynccontextmanager
async def open_dlq(settings: Settings, topic: Topic) -> AsyncIterator[DlqReader]:
    """A reader of ``topic``'s dead-letter topic (this deployment's prefix), its partitions'
    bounds taken now; it fails with a :class:`DlqError` when Kafka cannot be reached or the
    topic does not exist."""
    name = settings.topic(topic.dlq)
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="veilig-dlq")
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        client_id="veilig-dlq",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        try:
            await admin.start()
            if name not in await admin.list_topics():  # describing it could auto-create it
                raise DlqError(
                    f"topic {name} does not exist on Kafka at {settings.kafka_bootstrap_servers}; "
                    "`veilig topics apply` creates the declared topics"
                )
            (meta,) = await admin.describe_topics([name])
            partitions = [TopicPartition(name, p["partition"]) for p in meta["partitions"]]
            await consumer.start()
            firsts = await consumer.beginning_offsets(partitions)
            ends = await consumer.end_offsets(partitions)
        except KafkaError as exc:
            raise kafka_unreachable(settings, exc) from exc
        bounds = {tp.partition: Bounds(firsts[tp], ends[tp]) for tp in partitions}
        yield DlqReader(consumer, name, bounds, settings)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


async def list_records(
    settings: Settings, topic: Topic, *, limit: int | None = None
) -> tuple[list[DlqRecord], int]:
    """The first ``limit`` records of ``topic``'s dead-letter topic (partition by partition,
    in offset order) and how many it holds in all."""
    async with open_dlq(settings, topic) as reader:
        total = sum(max(0, b.end - b.first) for b in reader.bounds.values())
        records: list[DlqRecord] = []
        async with contextlib.aclosing(reader.records()) as everything:
            async for record in everything:
                records.append(record)
                if limit is not None and len(records) >= limit:
                    break
    await load_keys(settings, records)
    return records, total


async def show_record(
    settings: Settings, topic: Topic, offset: int, partition: int | None = None
) -> DlqRecord:
    async with open_dlq(settings, topic) as reader:
        record = await reader.record_at(offset, partition)
    await load_keys(settings, [record])
    return record


# --- replaying -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    dlq_topic: str
    target_topic: str  # the targets' names, for people and the audit
    records: list[DlqRecord]
    targets: list[str]  # where each record goes (a per-partner family: its partner's topic)

    def ranges(self) -> list[dict[str, int]]:
        """Per partition: the first and last offset replayed and how many records."""
        by_partition: dict[int, list[int]] = {}
        for record in self.records:
            by_partition.setdefault(record.partition, []).append(record.offset)
        return [
            {"partition": p, "first": min(o), "last": max(o), "records": len(o)}
            for p, o in sorted(by_partition.items())
        ]


@dataclass(slots=True)
class ReplayResult:
    audit_id: int
    plan: ReplayPlan
    dry_run: bool
    sent: int = 0


def default_operator() -> str:
    """Who runs this: the OS user (``--by`` overrides it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


async def connect_ops(settings: Settings) -> asyncpg.Connection:
    """A connection with the ``ops`` schema created or updated (idempotent)."""
    try:
        conn = await asyncpg.connect(settings.database_url.get_secret_value(), timeout=15)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DlqError(
            f"PostgreSQL is not reachable ({_one_line(exc)}); is it running (make up) and is "
            "DATABASE_URL right?"
        ) from exc
    try:
        await ensure_schema(conn)
    except (asyncpg.PostgresError, MigrationError) as exc:
        await conn.close()
        raise DlqError(
            f"PostgreSQL: the {SCHEMA} schema could not be created or updated ({_one_line(exc)})"
        ) from exc
    except BaseException:
        await conn.close()
        raise
    return conn


async def ensure_schema(conn: asyncpg.Connection) -> None:
    """Create or update the ``ops`` schema (idempotent; migrations take an advisory lock)."""
    await migrate(conn, SCHEMA, load_migrations(MIGRATIONS))


def _target(record: DlqRecord, settings: Settings, topic: Topic) -> str:
    """Where ``record`` goes back to: its source topic, which must be ``topic`` (or, for a
    per-partner family, one partner's topic of it) in this deployment."""
    expected = settings.topic(topic.name)
    family = partner_topic_pattern(settings, topic) if topic.per_partner else None
    source = record.source_topic
    if source is None and family is None:  # not dead-lettered by our consumers
        return expected
    if source is not None and (source == expected or (family and re.fullmatch(family, source))):
        return source
    wanted = f"{expected}.<partner>" if family else expected
    raise DlqError(
        f"{record.origin} came from {source!r}, not from {wanted!r} (another deployment's "
        "topic prefix?); nothing was replayed"
    )


async def plan_replay(
    settings: Settings,
    topic: Topic,
    *,
    partition: int | None = None,
    from_offset: int | None = None,
) -> ReplayPlan:
    """What a replay would send: the dead-letter records selected, checked to come from
    ``topic`` (in this deployment)."""
    async with open_dlq(settings, topic) as reader:
        records = [r async for r in reader.records(partition=partition, from_offset=from_offset)]
        dlq_topic = reader.topic
    targets = [_target(record, settings, topic) for record in records]
    await load_keys(settings, records)
    for record in records:
        record.original()  # every record opens, or nothing is sent
    named = sorted(set(targets)) or [settings.topic(topic.name)]
    return ReplayPlan(dlq_topic, ", ".join(named), records, targets)


async def publish(settings: Settings, plan: ReplayPlan, result: ReplayResult) -> None:
    """Send the plan's records to their source topic; ``result.sent`` counts the acknowledged
    ones, also when sending fails half-way."""
    producer = AIOKafkaProducer(
        **client_options(settings),
        client_id="veilig-dlq-replay",
        enable_idempotence=True,
        acks="all",
        linger_ms=settings.kafka_linger_ms,
    )
    try:
        try:
            await producer.start()
            for start in range(0, len(plan.records), SEND_CHUNK):
                chunk = zip(
                    plan.records[start : start + SEND_CHUNK],
                    plan.targets[start : start + SEND_CHUNK],
                    strict=True,
                )
                originals = [(record, target, record.original()) for record, target in chunk]
                futures = [
                    await producer.send(
                        target,
                        original.value,
                        key=record.key,
                        headers=replay_headers(original.headers, record.origin),
                    )
                    for record, target, original in originals
                ]
                for future in futures:
                    await future
                    result.sent += 1
        except KafkaError as exc:
            raise kafka_unreachable(settings, exc) from exc
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()


async def replay(
    settings: Settings,
    conn: asyncpg.Connection,
    topic: Topic,
    *,
    who: str,
    reason: str | None,
    partition: int | None = None,
    from_offset: int | None = None,
    dry_run: bool = False,
) -> ReplayResult:
    """Replay ``topic``'s dead-letter records (from ``from_offset`` on, of ``partition`` or
    of all) to ``topic``; with ``dry_run`` send nothing. Audited either way."""
    reason = (reason or "").strip() or None
    if not dry_run and reason is None:
        raise DlqError(
            "a replay needs a reason, kept in the audit: --reason 'what was fixed' "
            "(or look first with --dry-run)"
        )
    who = who.strip()
    if not who:
        raise DlqError("--by needs a name")
    plan = await plan_replay(settings, topic, partition=partition, from_offset=from_offset)
    audit_id = await conn.fetchval(
        "INSERT INTO ops.dlq_replays (who, dlq_topic, target_topic, partition, from_offset, "
        "ranges, records, reason, dry_run) "
        "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9) RETURNING id",
        who,
        plan.dlq_topic,
        plan.target_topic,
        partition,
        from_offset,
        json.dumps(plan.ranges()),
        len(plan.records),
        reason,
        dry_run,
    )
    result = ReplayResult(audit_id=audit_id, plan=plan, dry_run=dry_run)
    outcome, error = ("dry-run" if dry_run else "replayed"), None
    try:
        if not dry_run:
            await publish(settings, plan, result)
    except BaseException as exc:
        outcome, error = "failed", _one_line(exc)
        raise
    finally:
        await conn.execute(
            "UPDATE ops.dlq_replays SET outcome = $2, sent = $3, error = $4, "
            "finished_at = now() WHERE id = $1",
            audit_id,
            outcome,
            result.sent,
            error,
        )
    return result


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    who: str
    dlq_topic: str
    target_topic: str
    partition: int | None
    from_offset: int | None
    ranges: list[dict[str, int]]
    records: int
    sent: int
    reason: str | None
    dry_run: bool
    outcome: str
    error: str | None


async def replay_history(
    conn: asyncpg.Connection, dlq_topic: str | None = None, *, limit: int = 50
) -> list[AuditEntry]:
    """The latest replays (of one dead-letter topic, or of all), newest first."""
    rows = await conn.fetch(
        "SELECT id, at, who, dlq_topic, target_topic, partition, from_offset, ranges, records, "
        "sent, reason, dry_run, outcome, error FROM ops.dlq_replays "
        "WHERE $1::text IS NULL OR dlq_topic = $1 ORDER BY id DESC LIMIT $2",
        dlq_topic,
        limit,
    )
    return [AuditEntry(**{**dict(row), "ranges": json.loads(row["ranges"])}) for row in rows]
