"""Partners and their API keys.

A key reads ``vh_<key id>_<secret>`` (services/common/tokens.py: only a hash is stored).
Several keys of one partner may be active at once, which is how keys are rotated: issue,
switch, revoke.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

import asyncpg

from schemas.events import PartnerKind
from schemas.topics import DLQ_SUFFIX
from services.common import tokens
from services.common.signalled import SignalledCache

SCOPES = ("incidents:write", "incidents:read", "open311")
DEFAULT_SCOPES = SCOPES
KEY_PREFIX = "vh"
# The code is also the tail of the partner's Kafka topic, incident-submissions.<code>.
CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class PartnerError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Partner:
    code: str
    name: str
    kind: PartnerKind
    scopes: tuple[str, ...]
    rate_per_minute: int


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key_id: str
    partner: str
    created_at: datetime
    revoked_at: datetime | None


async def add_partner(
    conn: asyncpg.Connection,
    code: str,
    *,
    name: str,
    kind: str,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    rate_per_minute: int = 600,
) -> str:
    """Create a partner and its first key; returns the key (shown once, never stored)."""
    if not CODE_PATTERN.match(code):
        raise PartnerError(
            f"partner code {code!r}: lower-case letters, digits and '-', 2 to 63 characters"
        )
    if code == DLQ_SUFFIX:
        raise PartnerError(f"partner code {code!r} is reserved (it names a dead-letter topic)")
    if kind not in get_args(PartnerKind):
        raise PartnerError(f"unknown kind {kind!r}; kinds: {', '.join(get_args(PartnerKind))}")
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise PartnerError(f"unknown scopes {sorted(unknown)}; known: {', '.join(SCOPES)}")
    async with conn.transaction():
        try:
            await conn.execute(
                "INSERT INTO partners (code, name, kind, scopes, rate_per_minute) "
                "VALUES ($1, $2, $3, $4, $5)",
                code,
                name,
                kind,
                list(scopes),
                rate_per_minute,
            )
        except asyncpg.UniqueViolationError as exc:
            raise PartnerError(f"partner {code!r} exists already") from exc
        return await _insert_key(conn, code)


async def issue_key(conn: asyncpg.Connection, partner: str) -> str:
    if await conn.fetchval("SELECT 1 FROM partners WHERE code = $1", partner) is None:
        raise PartnerError(f"no partner {partner!r}")
    return await _insert_key(conn, partner)


async def _insert_key(conn: asyncpg.Connection, partner: str) -> str:
    key = tokens.issue(KEY_PREFIX)
    await conn.execute(
        "INSERT INTO api_keys (key_id, partner, secret_hash) VALUES ($1, $2, $3)",
        key.token_id,
        partner,
        key.digest,
    )
    return key.token


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> None:
    done = await conn.fetchval(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL "
        "RETURNING key_id",
        key_id,
    )
    if done is None:
        raise PartnerError(f"no active key {key_id!r}")


async def list_keys(conn: asyncpg.Connection, partner: str | None = None) -> list[KeyInfo]:
    rows = await conn.fetch(
        "SELECT key_id, partner, created_at, revoked_at FROM api_keys "
        "WHERE $1::text IS NULL OR partner = $1 ORDER BY partner, created_at",
        partner,
    )
    return [KeyInfo(**dict(row)) for row in rows]


async def list_partners(conn: asyncpg.Connection) -> list[Partner]:
    rows = await conn.fetch(
        "SELECT code, name, kind, scopes, rate_per_minute FROM partners ORDER BY code"
    )
    return [_partner(row) for row in rows]


async def partners_by_code(conn: asyncpg.Connection, codes: list[str]) -> dict[str, Partner]:
    rows = await conn.fetch(
        "SELECT code, name, kind, scopes, rate_per_minute FROM partners "
        "WHERE code = ANY($1::text[])",
        codes,
    )
    return {row["code"]: _partner(row) for row in rows}


async def get_partner(conn: asyncpg.Connection, code: str) -> Partner:
    partner = (await partners_by_code(conn, [code])).get(code)
    if partner is None:
        raise PartnerError(f"no partner {code!r} (veilig partners list)")
    return partner


def _partner(row: asyncpg.Record) -> Partner:
    return Partner(
        code=row["code"],
        name=row["name"],
        kind=row["kind"],
        scopes=tuple(row["scopes"]),
        rate_per_minute=row["rate_per_minute"],
    )


async def _active_key(
    conn: asyncpg.Connection | asyncpg.Pool, key_id: str
) -> tuple[bytes, Partner] | None:
    row = await conn.fetchrow(
        "SELECT k.secret_hash, p.code, p.name, p.kind, p.scopes, p.rate_per_minute "
        "FROM api_keys k JOIN partners p ON p.code = k.partner "
        "WHERE k.key_id = $1 AND k.revoked_at IS NULL",
        key_id,
    )
    return (row["secret_hash"], _partner(row)) if row else None


async def authenticate(
    conn: asyncpg.Connection | asyncpg.Pool, key: str, cache: KeyCache | None = None
) -> Partner | None:
    """The partner owning an active ``key``, or None (unknown, malformed or revoked)."""
    parsed = tokens.parse(KEY_PREFIX, key)
    if parsed is None:
        return None
    key_id, secret = parsed
    load = functools.partial(_active_key, conn, key_id)
    found = await (cache.lookup(key_id, load) if cache is not None else load())
    if not tokens.verify(secret, found[0] if found else None):
        return None
    assert found is not None
    return found[1]


KEYS = "keys"  # the KeyCache in Runtime.extras
KEYS_CHANGED = "intake_keys"
"""NOTIFY channel a trigger on ``api_keys`` and ``partners`` signals every change on."""


class KeyCache(SignalledCache[str, tuple[bytes, Partner]]):
    """Active keys (their hash and partner), so that a request costs no database round trip.

    Revocation still takes effect at once, as soon as the NOTIFY arrives (milliseconds after the
    commit): a trigger on ``api_keys`` and ``partners`` NOTIFYs every intake process, which
    empties its cache. Unknown key ids are never cached."""

    def __init__(self) -> None:
        super().__init__(KEYS_CHANGED, keep_missing=False)
