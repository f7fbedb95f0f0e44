"""Moving sealed values to the current first key (docs/decisions/0010).

- ``veilig keys secrets reseal`` re-seals every webhook and callback secret with the first
  secrets key (also those still sealed with the PII keys, from before secrets had a key of
  their own).
- ``veilig keys pii rotate`` puts a new PII key first and re-seals the live personal data with
  it (``veilig keys pii reseal`` does the second half alone): triage's and notify's copy of
  the report's sealed contact, and notify's rendered messages that are still to be sent.
  Messages already delivered or failed are not read again; outboxes hold a row only until it
  is published; Kafka's copies cannot be rewritten: they stay sealed with the key of their
  time until it is dropped.

Safe while the services run: rows are read in batches in key order and each batch is written
back in one statement that changes a row only if its sealed value is still the one read (a
value changed or erased meanwhile keeps its new state). A run that is interrupted is simply
run again: what is sealed with the first key already is left alone. Every run is audited in
``ops.key_operations`` (counts per table and the fingerprint of the key; never a key or a
sealed value).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import asyncpg

from services.common import pii

BATCH = 500
Operation = Literal["secrets-reseal", "pii-rotate", "pii-reseal"]


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """Sealed values in ``table`` (schema-qualified): in ``column``, or in the text field
    ``field`` of the JSON column ``column``; ``live`` selects the rows that still matter."""

    table: str
    key: str
    key_type: str
    column: str
    field: str | None = None
    live: str = "true"

    @property
    def value(self) -> str:
        return f"t.{self.column}" if self.field is None else f"t.{self.column}->>'{self.field}'"

    @property
    def assignment(self) -> str:
        if self.field is None:
            return f"{self.column} = v.new"
        return f"{self.column} = jsonb_set(t.{self.column}, '{{{self.field}}}', to_jsonb(v.new))"


SECRET_COLUMNS = (
    SealedColumn("notify.channels", "code", "text", "secrets_sealed"),
    SealedColumn("intake.partner_callbacks", "partner", "text", "secrets_sealed"),
)
PII_COLUMNS = (
    SealedColumn("ops.period_keys", "key_id", "uuid", "key_sealed"),
    SealedColumn("triage.incidents", "incident_id", "uuid", "report", "reporter_sealed"),
    SealedColumn("notify.incidents", "incident_id", "uuid", "reported", "reporter_sealed"),
    SealedColumn(
        "notify.deliveries",
        "message_id",
        "uuid",
        "body_sealed",
        live="t.status NOT IN ('delivered', 'failed') AND t.body_sealed <> ''",
    ),
)


@dataclass(slots=True)
class Counts:
    """Of one table: values re-sealed, and values no configured key opens (their key was
    dropped: shredded, left as they are)."""

    resealed: int = 0
    unreadable: int = 0


Resealed = tuple[int, dict[str, Counts]]  # the audit id, and the counts per table


async def reseal_column(
    conn: asyncpg.Connection, sealed: SealedColumn, reseal: Callable[[str], str | None]
) -> Counts:
    """Re-seal ``sealed``'s values with ``reseal`` (None: leave it), batch by batch. A table
    that does not exist (its service never ran) has nothing to do."""
    counts = Counts()
    if await conn.fetchval("SELECT to_regclass($1)", sealed.table) is None:
        return counts
    select = (
        f"SELECT t.{sealed.key} AS id, {sealed.value} AS value FROM {sealed.table} AS t "  # noqa: S608
        f"WHERE {sealed.value} IS NOT NULL AND ({sealed.live}) {{after}} "
        f"ORDER BY t.{sealed.key} LIMIT {BATCH}"
    )
    update = (
        f"UPDATE {sealed.table} AS t SET {sealed.assignment} "  # noqa: S608
        f"FROM unnest($1::{sealed.key_type}[], $2::text[], $3::text[]) AS v(id, old, new) "
        f"WHERE t.{sealed.key} = v.id AND {sealed.value} = v.old"
    )
    rows = await conn.fetch(select.format(after=""))
    while rows:
        moved = []
        for row in rows:
            try:
                new = reseal(row["value"])
            except pii.SealError:
                counts.unreadable += 1
                continue
            if new is not None:
                moved.append((row["id"], row["value"], new))
        if moved:
            ids, old, new_values = zip(*moved, strict=True)
            done = await conn.execute(update, list(ids), list(old), list(new_values))
            counts.resealed += int(done.split()[-1])
        rows = await conn.fetch(select.format(after=f"AND t.{sealed.key} > $1"), rows[-1]["id"])
    return counts


async def reseal_audited(
    conn: asyncpg.Connection,
    who: str,
    operation: Operation,
    key_id: str,
    columns: Sequence[SealedColumn],
    reseal: Callable[[str], str | None],
) -> Resealed:
    """Re-seal ``columns`` with ``reseal``, audited in ``ops.key_operations`` as ``operation``
    by ``who`` towards the key ``key_id``."""
    audit_id = await conn.fetchval(
        "INSERT INTO ops.key_operations (who, operation, key_id) VALUES ($1, $2, $3) RETURNING id",
        who,
        operation,
        key_id,
    )
    resealed: dict[str, Counts] = {}
    outcome, error = "done", None
    try:
        for sealed in columns:
            resealed[sealed.table] = await reseal_column(conn, sealed, reseal)
    except BaseException as exc:
        outcome, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        await conn.execute(
            "UPDATE ops.key_operations SET outcome = $2, resealed = $3::jsonb, error = $4, "
            "finished_at = now() WHERE id = $1",
            audit_id,
            outcome,
            json.dumps({table: asdict(counts) for table, counts in resealed.items()}),
            error,
        )
    return audit_id, resealed


async def reseal_secrets(conn: asyncpg.Connection, who: str) -> Resealed:
    """Every channel and callback secret sealed with the first secrets key, audited."""
    key_id = pii.key_ids(pii.SECRETS)[0]
    return await reseal_audited(
        conn, who, "secrets-reseal", key_id, SECRET_COLUMNS, pii.reseal_secret
    )


async def reseal_personal_data(
    conn: asyncpg.Connection, who: str, operation: Operation
) -> Resealed:
    """The live personal data sealed with the first PII key, audited as ``operation``."""
    key_id = pii.key_ids(pii.PII)[0]
    return await reseal_audited(conn, who, operation, key_id, PII_COLUMNS, pii.reseal)
