"""Keys per period: how personal data on Kafka comes to an end (docs/decisions/0010).

A log record cannot be edited, so what is personal in it travels sealed with the key of its
*period*, one UTC day: the personal part of a report (``incident.reported.v2``,
:class:`schemas.events.SealedPersonal`) and every dead letter (services/common/dlq.py). Keys
live in PostgreSQL (``ops.period_keys``, each sealed with the PII key); the purge destroys every
key whose day ended more than the retention period ago (:func:`destroy_keys`), and from then on
what it sealed, in any topic, dead letter, backup or consumer, is unreadable.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from cryptography.fernet import Fernet, InvalidToken

from schemas.erasure import erase_report
from schemas.events import IncidentReported, IncidentReportedSealed, SealedPersonal
from services.common import pii

CACHE_SECONDS = 300.0
PERSONAL_FIELDS = ("description", "location", "flags", "attributes", "reporter_sealed")
"""The fields of a report whose whole value travels sealed; their clear copies on the wire are
what :func:`erase_report` leaves of them."""

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


def seal_report(report: IncidentReported, key: PeriodKey) -> IncidentReportedSealed:
    """``report`` as it goes on Kafka: what :func:`erase_report` keeps in the clear, the whole
    personal part sealed with ``key``."""
    personal = report.model_dump(mode="json", include=set(PERSONAL_FIELDS))
    clear = erase_report(report).model_dump(exclude={"schema_version"})
    return IncidentReportedSealed(
        **clear,
        personal_sealed=SealedPersonal(
            key_id=key.key_id,
            period=key.period,
            ciphertext=Fernet(key.key).encrypt(json.dumps(personal).encode()).decode(),
        ),
    )


def open_report(event: IncidentReported, keys: PeriodKeys = KEYS) -> IncidentReported:
    """The report in ``event`` with its personal part, or as erased when its key is gone
    (the keys of sealed reports must be :meth:`PeriodKeys.load`-ed first)."""
    if not isinstance(event, IncidentReportedSealed):
        return event
    data: dict[str, Any] = event.model_dump(exclude={"personal_sealed", "schema_version"})
    sealed = event.personal_sealed
    opened = keys.open(sealed.key_id, sealed.ciphertext)
    if opened is not None:
        data.update(json.loads(opened))
    return IncidentReported.model_validate(data)


async def open_reports(conn: Connection, events: Iterable[Any]) -> list[Any]:
    """``events`` with every sealed report opened (other events as they are)."""
    events = list(events)
    await KEYS.load(
        conn, (e.personal_sealed.key_id for e in events if isinstance(e, IncidentReportedSealed))
    )
    return [open_report(e) for e in events]


# --- the purge -------------------------------------------------------------------------------


async def destroy_keys(conn: asyncpg.Connection, before: date, *, dry_run: bool = False) -> int:
    """Destroy the live keys of the periods before ``before``; the number destroyed (with
    ``dry_run`` the number that would be)."""
    if dry_run:
        count = await conn.fetchval(
            "SELECT count(*) FROM ops.period_keys WHERE period < $1 AND destroyed_at IS NULL",
            before,
        )
        return int(count)
    done = await conn.execute(
        "UPDATE ops.period_keys SET key_sealed = NULL, destroyed_at = now() "
        "WHERE period < $1 AND destroyed_at IS NULL",
        before,
    )
    return int(done.split()[-1])
