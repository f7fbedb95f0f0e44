"""Staff accounts and roles for the staff-facing HTTP APIs (triage console, analytics).

Every staff member has one role: ``triage`` works the queue, ``ops`` runs the platform (and is
the only role that sees exact small counts in analytics), ``admin`` manages the platform. A
token reads ``vs_<token id>_<secret>`` (services/common/tokens.py): only its hash is stored,
and it is shown once, when it is made.

The accounts live in their own schema ``staff`` (migrations in ``staff_migrations/``), shared
by the services that serve staff; :func:`add_staff` creates it on first use.

HTTP: ``Authorization: Bearer <token>``, or for a browser the cookie :data:`STAFF_COOKIE`
(a page may set it once from a ``?token=`` link; EventSource cannot send headers).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, get_args

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common import tokens
from services.common.migrations import load_migrations, migrate
from services.common.problems import Problem
from services.common.runtime import Runtime, runtime

Role = Literal["triage", "ops", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
SCHEMA = "staff"
MIGRATIONS = Path(__file__).parent / "staff_migrations"
STAFF_COOKIE = "veilig_staff"
TOKEN_PREFIX = "vs"  # noqa: S105 (a prefix, not a secret)
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


class StaffError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Staff:
    username: str
    role: Role


async def ensure_schema(conn: asyncpg.Connection) -> None:
    """Create or update the ``staff`` schema (idempotent; migrations take an advisory lock)."""
    await migrate(conn, SCHEMA, load_migrations(MIGRATIONS))


async def add_staff(conn: asyncpg.Connection, username: str, role: Role) -> str:
    """Create a staff account; returns its token (shown once, never stored)."""
    if not USERNAME_PATTERN.match(username):
        raise StaffError(
            f"username {username!r}: lower-case letters, digits, '.', '_' and '-', "
            "2 to 63 characters"
        )
    if role not in ROLES:
        raise StaffError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    await ensure_schema(conn)
    issued = tokens.issue(TOKEN_PREFIX)
    try:
        await conn.execute(
            "INSERT INTO staff.staff (username, role, token_id, token_hash) "
            "VALUES ($1, $2, $3, $4)",
            username,
            role,
            issued.token_id,
            issued.digest,
        )
    except asyncpg.UniqueViolationError as exc:
        raise StaffError(f"staff member {username!r} exists already") from exc
    return issued.token


async def authenticate_staff(pool: asyncpg.Pool | asyncpg.Connection, token: str) -> Staff | None:
    """The active staff member owning ``token``, or None (unknown, malformed or disabled)."""
    parsed = tokens.parse(TOKEN_PREFIX, token)
    if parsed is None:
        return None
    token_id, secret = parsed
    try:
        row = await pool.fetchrow(
            "SELECT username, role, token_hash FROM staff.staff "
            "WHERE token_id = $1 AND disabled_at IS NULL",
            token_id,
        )
    except asyncpg.UndefinedTableError:  # no account was ever made
        row = None
    if not tokens.verify(secret, row["token_hash"] if row else None):
        return None
    assert row is not None
    return Staff(username=row["username"], role=row["role"])


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="staff token",
    description=f"`Authorization: Bearer <staff token>` (browsers: the `{STAFF_COOKIE}` cookie); "
    "tokens are made with `veilig staff add`",
)


def require_role(*roles: Role) -> Callable[..., Awaitable[Staff]]:
    """FastAPI dependency: the authenticated staff member, who must have one of ``roles``
    (401 without a valid token, 403 with another role)."""
    allowed = roles or ROLES

    async def dependency(
        request: Request,
        rt: Annotated[Runtime, Depends(runtime)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Staff:
        token = credentials.credentials if credentials else request.cookies.get(STAFF_COOKIE)
        staff = await authenticate_staff(rt.pool, token) if token else None
        if staff is None:
            raise Problem(
                401,
                "unauthenticated",
                "Missing or invalid staff token",
                "send Authorization: Bearer <staff token>; tokens are made with "
                "`veilig staff add USER --role ROLE`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if staff.role not in allowed:
            raise Problem(
                403, "forbidden", "Not allowed", f"this needs the role {' or '.join(allowed)}"
            )
        return staff

    return dependency
