"""Staff accounts and roles for the staff-facing HTTP APIs (triage console, analytics).

Every staff member has one role: ``triage`` works the queue, ``ops`` runs the platform (and is
the only role that sees exact small counts in analytics), ``admin`` manages the platform. A
token reads ``vs_<token id>_<secret>`` (services/common/tokens.py): only its hash is stored,
and it is shown once, when it is made.

The accounts live in their own schema ``staff`` (migrations in ``staff_migrations/``), shared
by the services that serve staff; :func:`add_staff` creates it on first use.

HTTP: ``Authorization: Bearer <token>``, or for a browser the cookie :data:`STAFF_COOKIE`
(a page may set it once from a ``?token=`` link; EventSource cannot send headers), or the
triage console's server-side session (services/common/sessions.py). A request authenticated by
a cookie that changes state must carry the site's own ``Origin``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, get_args

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common import sessions, tokens
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


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None
    open_sessions: int


async def disable_staff(conn: asyncpg.Connection, username: str) -> None:
    """Disable an account: its token and every open session stop working at once."""
    await ensure_schema(conn)
    done = await conn.fetchval(
        "UPDATE staff.staff SET disabled_at = coalesce(disabled_at, now()) "
        "WHERE username = $1 RETURNING username",
        username,
    )
    if done is None:
        raise StaffError(f"no staff member {username!r}")


async def rotate_staff(conn: asyncpg.Connection, username: str) -> str:
    """Give an account a new token (shown once); the old one and every session and sign-in
    link made with it stop working at once."""
    await ensure_schema(conn)
    issued = tokens.issue(TOKEN_PREFIX)
    done = await conn.fetchval(
        "UPDATE staff.staff SET token_id = $2, token_hash = $3 WHERE username = $1 "
        "RETURNING username",
        username,
        issued.token_id,
        issued.digest,
    )
    if done is None:
        raise StaffError(f"no staff member {username!r}")
    return issued.token


async def active_staff(conn: asyncpg.Connection, roles: Sequence[Role]) -> list[Staff]:
    """The enabled accounts of ``roles``, by username: whom work can be given to."""
    await ensure_schema(conn)
    rows = await conn.fetch(
        "SELECT username, role FROM staff.staff WHERE disabled_at IS NULL "
        "AND role = ANY($1::text[]) ORDER BY username",
        list(roles),
    )
    return [Staff(r["username"], r["role"]) for r in rows]


async def list_staff(conn: asyncpg.Connection) -> list[Account]:
    """Every account with its number of open sessions (made with its current token)."""
    await ensure_schema(conn)
    rows = await conn.fetch(
        "SELECT st.username, st.role, st.created_at, st.disabled_at, count(s.id_hash) AS n "
        "FROM staff.staff st LEFT JOIN staff.sessions s ON s.username = st.username "
        "AND s.token_id = st.token_id AND s.ended_at IS NULL AND st.disabled_at IS NULL "
        "GROUP BY st.username ORDER BY st.username"
    )
    return [
        Account(r["username"], r["role"], r["created_at"], r["disabled_at"], r["n"]) for r in rows
    ]


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
        session_id = None if token else request.cookies.get(sessions.SESSION_COOKIE)
        staff = await authenticate_staff(rt.pool, token) if token else None
        if session_id:
            user = await sessions.session_user(
                rt.pool, session_id, sessions.SessionPolicy.of(rt.settings), datetime.now(UTC)
            )
            staff = Staff(user.username, user.role) if user else None  # type: ignore[arg-type]
        if staff is None:
            raise Problem(
                401,
                "unauthenticated",
                "Missing or invalid staff token",
                "send Authorization: Bearer <staff token>; tokens are made with "
                "`veilig staff add USER --role ROLE`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # A browser sends cookies with requests other sites make it send; Origin tells.
        if credentials is None:
            sessions.refuse_cross_site(request)
        if staff.role not in allowed:
            raise Problem(
                403, "forbidden", "Not allowed", f"this needs the role {' or '.join(allowed)}"
            )
        return staff

    return dependency
