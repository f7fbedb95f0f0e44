"""Keys per period and per report: how personal data on Kafka comes to an end
(docs/decisions/0010).

A log record cannot be edited, so what is personal in it travels sealed. Every dead letter
(services/common/dlq.py) is sealed with the key of its *period*, one UTC day. The personal part
of a report (``incident.reported.v2``, :class:`schemas.events.SealedPersonal`) is sealed with a
key of the report's own, kept in ``ops.report_keys`` wrapped with the day's key. Period keys
live in ``ops.period_keys``, each sealed with the PII key. Erasing one report deletes its key
(:func:`forget_reports`); the purge destroys every period key whose day ended more than the
retention period ago (:func:`destroy_keys`). Either way, what the key sealed, in any topic,
dead letter, backup or consumer, is unreadable from then on.

Opening a report whose key is gone gives the report as the purge leaves it
(:func:`schemas.erasure.erase_report`): the clear part of the event is already that form.

A process keeps the keys it used in memory for :data:`CACHE_SECONDS`, so a destroyed key may
still open a record in a running service for that long (only a replay of an old record would
ask); sealing always asks the database for the day's live key, in the caller's transaction.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from cryptography.fernet import Fernet, InvalidToken

from schemas.erasure import PERSONAL_FIELDS, erase_report, erased
from schemas.events import IncidentReported, IncidentReportedSealed, SealedPersonal
from services.common import pii

CACHE_SECONDS = 300.0

Connection = asyncpg.Connection | asyncpg.Pool


def period_of(moment: datetime) -> date:
    """The period of a moment: its UTC day."""
    return moment.astimezone(UTC).date()


@dataclass(frozen=True, slots=True)
class PeriodKey:
    key_id: uuid.UUID
    period: date
    key: bytes


class PeriodKeys:
    """This process's view of ``ops.period_keys``: ``current`` for sealing, ``load`` then
    ``key`` for opening."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # key id -> (the key, or None once destroyed; when it was read)
        self._cache: dict[uuid.UUID, tuple[bytes | None, float]] = {}

    def _remember(self, key_id: uuid.UUID, sealed: str | None) -> bytes | None:
        key = None if sealed is None else pii.open_sealed(sealed).encode()
        self._cache[key_id] = (key, self._clock())
        return key

    def _fresh(self, key_id: uuid.UUID) -> bool:
        found = self._cache.get(key_id)
        # A destroyed key never comes back; a live one is read again after a while.
        return found is not None and (found[0] is None or self._clock() - found[1] < CACHE_SECONDS)

    async def current(self, conn: asyncpg.Connection, period: date) -> PeriodKey:
        """The live key of ``period``, made on first use (inside the caller's transaction, so
        a key that was never used for anything committed is never made)."""
        for _ in range(2):
            row = await conn.fetchrow(
                "SELECT key_id, key_sealed FROM ops.period_keys "
                "WHERE period = $1 AND destroyed_at IS NULL",
                period,
            )
            if row is not None:
                key_id = row["key_id"]
                cached = self._cache.get(key_id)
                key = cached[0] if cached else self._remember(key_id, row["key_sealed"])
                if key is not None:
                    return PeriodKey(key_id, period, key)
            await conn.execute(
                "INSERT INTO ops.period_keys (key_id, period, key_sealed) VALUES ($1, $2, $3) "
                "ON CONFLICT (period) WHERE destroyed_at IS NULL DO NOTHING",
                uuid.uuid4(),
                period,
                pii.seal(Fernet.generate_key().decode()),
            )
        raise RuntimeError(f"no live period key for {period} could be made")

    async def load(self, conn: Connection, key_ids: Iterable[uuid.UUID]) -> None:
        """Read the keys of ``key_ids`` that this process does not hold fresh."""
        missing = list({k for k in key_ids if not self._fresh(k)})
        if not missing:
            return
        rows = await conn.fetch(
            "SELECT key_id, key_sealed FROM ops.period_keys WHERE key_id = ANY($1::uuid[])",
            missing,
        )
        found = {row["key_id"]: row["key_sealed"] for row in rows}
        for key_id in missing:
            # No row at all: not made by this deployment, as unreadable as destroyed.
            self._remember(key_id, found.get(key_id))

    def key(self, key_id: uuid.UUID) -> bytes | None:
        """A loaded key, or None when it is destroyed (or unknown)."""
        found = self._cache.get(key_id)
        return None if found is None else found[0]

    def open(self, key_id: uuid.UUID, token: str) -> bytes | None:
        """``token`` opened with a loaded key; None when the key is gone (shredded)."""
        key = self.key(key_id)
        if key is None:
            return None
        try:
            return Fernet(key).decrypt(token.encode())
        except InvalidToken as exc:
            raise pii.SealError(f"a token does not open with period key {key_id}") from exc


KEYS = PeriodKeys()
"""The one cache of period keys of this process."""


# --- reports ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportKey:
    """A report's own key, and the period key that wraps it in ``ops.report_keys``."""

    period_key: PeriodKey
    key: bytes


def make_report_keys(
    period_key: PeriodKey, incident_ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, ReportKey], list[str]]:
    """A key for each new report, and each wrapped with ``period_key``, in the order of
    ``incident_ids``: what :data:`STORE_REPORT_KEYS` keeps (in the caller's transaction)."""
    made = {i: ReportKey(period_key, Fernet.generate_key()) for i in incident_ids}
    wrap = Fernet(period_key.key)
    return made, [wrap.encrypt(made[i].key).decode() for i in incident_ids]


STORE_REPORT_KEYS = (
    "INSERT INTO ops.report_keys (incident_id, key_id, key_wrapped) "
    "SELECT i, {key_id}::uuid, w FROM unnest({ids}::uuid[], {wrapped}::text[]) AS u(i, w)"
)
"""Keeps the wrapped keys of :func:`make_report_keys`: a statement to complete with the
parameters (or expressions) of the period key's id, the incident ids and the wrapped keys."""


async def report_keys(
    conn: Connection, incident_ids: Iterable[uuid.UUID], keys: PeriodKeys = KEYS
) -> dict[uuid.UUID, ReportKey]:
    """The keys of the reports of ``incident_ids`` that can still be opened (not erased, and
    their day's key not destroyed), each with the period key that wraps it."""
    rows = await conn.fetch(
        "SELECT r.incident_id, r.key_id, r.key_wrapped, p.period FROM ops.report_keys AS r "
        "JOIN ops.period_keys AS p USING (key_id) WHERE r.incident_id = ANY($1::uuid[])",
        list(set(incident_ids)),
    )
    await keys.load(conn, (r["key_id"] for r in rows))
    found = {}
    for row in rows:
        period_key, own = keys.key(row["key_id"]), keys.open(row["key_id"], row["key_wrapped"])
        if period_key is not None and own is not None:
            wrapping = PeriodKey(row["key_id"], row["period"], period_key)
            found[row["incident_id"]] = ReportKey(wrapping, own)
    return found


async def sealed_again(
    conn: asyncpg.Connection, report: IncidentReported
) -> IncidentReportedSealed:
    """A report the platform holds opened, sealed for Kafka again with its own key. A report
    whose key is gone is erased already: it goes as erased, under a key nobody keeps."""
    key = (await report_keys(conn, [report.incident_id])).get(report.incident_id)
    if key is None:
        nobodys = PeriodKey(uuid.uuid4(), period_of(report.recorded_at), Fernet.generate_key())
        return seal_report(erase_report(report), ReportKey(nobodys, Fernet.generate_key()))
    return seal_report(report, key)


async def forget_reports(conn: asyncpg.Connection, incident_ids: Iterable[uuid.UUID]) -> None:
    """Delete the reports' keys: every sealed copy of them is unreadable from now on."""
    await conn.execute(
        "DELETE FROM ops.report_keys WHERE incident_id = ANY($1::uuid[])", list(incident_ids)
    )


def seal_report(report: IncidentReported, key: ReportKey) -> IncidentReportedSealed:
    """``report`` as it goes on Kafka: what :func:`erase_report` keeps in the clear, the whole
    personal part sealed with the report's ``key``."""
    data = report.model_dump()  # what these fields hold is JSON already (no dates, no ids)
    personal = {name: data[name] for name in PERSONAL_FIELDS}
    clear = erased(data)
    del clear["schema_version"]
    return IncidentReportedSealed(
        **clear,
        personal_sealed=SealedPersonal(
            key_id=key.period_key.key_id,
            period=key.period_key.period,
            ciphertext=Fernet(key.key).encrypt(json.dumps(personal).encode()).decode(),
        ),
    )


def open_report(event: IncidentReported, found: Mapping[uuid.UUID, ReportKey]) -> IncidentReported:
    """The report in ``event`` with its personal part, or as erased when its key is gone;
    ``found`` holds the report keys that exist (:func:`report_keys`)."""
    if not isinstance(event, IncidentReportedSealed):
        return event
    data: dict[str, Any] = event.model_dump(exclude={"personal_sealed", "schema_version"})
    key = found.get(event.incident_id)
    if key is not None:
        try:
            opened = Fernet(key.key).decrypt(event.personal_sealed.ciphertext.encode())
        except InvalidToken as exc:
            raise pii.SealError(f"report {event.incident_id} does not open with its key") from exc
        data.update(json.loads(opened))
    return IncidentReported.model_validate(data)


async def open_reports(conn: Connection, events: Iterable[Any]) -> list[Any]:
    """``events`` with every sealed report opened (other events as they are)."""
    events = list(events)
    sealed = [e.incident_id for e in events if isinstance(e, IncidentReportedSealed)]
    found = await report_keys(conn, sealed) if sealed else {}
    return [open_report(e, found) for e in events]


# --- the purge -------------------------------------------------------------------------------


async def destroy_keys(conn: asyncpg.Connection, before: date, *, dry_run: bool = False) -> int:
    """Destroy the live keys of the periods before ``before`` (and the report keys they wrap);
    the number destroyed (with ``dry_run`` the number that would be)."""
    if dry_run:
        count = await conn.fetchval(
            "SELECT count(*) FROM ops.period_keys WHERE period < $1 AND destroyed_at IS NULL",
            before,
        )
        return int(count)
    async with conn.transaction():
        destroyed = await conn.fetch(
            "UPDATE ops.period_keys SET key_sealed = NULL, destroyed_at = now() "
            "WHERE period < $1 AND destroyed_at IS NULL RETURNING key_id",
            before,
        )
        await conn.execute(
            "DELETE FROM ops.report_keys WHERE key_id = ANY($1::uuid[])",
            [r["key_id"] for r in destroyed],
        )
    return len(destroyed)
