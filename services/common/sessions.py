"""Server-side browser sessions of staff (the triage console) and one-time sign-in links.

A session is a row in ``staff.sessions``; the browser holds only a random id in an HttpOnly,
SameSite=Strict cookie scoped to the console's path (``Secure`` unless the page is served on
loopback for local development: browsers drop Secure cookies over plain http). The database
keeps the id's SHA-256, so a copy of the table opens no session. A session ends on logout,
after the idle timeout, after its absolute lifetime, when the account is disabled, or when its
token is rotated (a session belongs to the token the account had when it began): every request
checks, so ``veilig staff disable``/``rotate`` take effect at once.

A sign-in link carries a one-time code that expires in minutes. It travels in the URL's
fragment (``/console/signin#<code>``), which browsers never send to a server nor put in a
Referer; the page posts it, and the first post wins.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
from fastapi import Request

from services.common.problems import Problem
from services.common.settings import Settings

SESSION_COOKIE = "veilig_console"
CONSOLE_PATH = "/console"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta
    lifetime: timedelta

    @classmethod
    def of(cls, settings: Settings) -> SessionPolicy:
        return cls(
            idle=timedelta(minutes=settings.console_idle_minutes),
            lifetime=timedelta(hours=settings.console_session_hours),
        )

    def alive(self, created_at: datetime, last_seen_at: datetime, now: datetime) -> bool:
        """Whether a session begun at ``created_at`` and last used at ``last_seen_at`` may
        still be used at ``now``."""
        return now - last_seen_at < self.idle and now - created_at < self.lifetime


@dataclass(frozen=True, slots=True)
class SessionUser:
    username: str
    role: str


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, without port) is this machine."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def same_origin(origin: str | None, base_url: str) -> bool:
    """Whether a request's ``Origin`` header names the site it was sent to (``base_url``, the
    scheme and host the request reached). A missing or ``null`` Origin is refused: browsers
    send it on every state-changing request."""
    if not origin or origin == "null":
        return False
    sent, own = urlsplit(origin), urlsplit(base_url)
    return (sent.scheme, sent.netloc) == (own.scheme, own.netloc)


def refuse_cross_site(request: Request) -> None:
    """Refuse (403) a state-changing request that came without this site's own Origin."""
    if request.method in SAFE_METHODS:
        return
    if not same_origin(request.headers.get("origin"), str(request.base_url)):
        raise Problem(403, "cross-origin", "Refused", "the request's Origin is not this site")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


async def _for_active(
    conn: asyncpg.Connection, table: str, columns: str, username: str, *values: object
) -> str:
    """Insert a random secret's digest into ``table`` for an active account, with the token
    the account has now; returns the secret ('' when the account is unknown or disabled)."""
    secret = secrets.token_urlsafe(32)
    params = ", ".join(f"${i}" for i in range(3, 3 + len(values)))
    made = await conn.fetchval(
        f"INSERT INTO staff.{table} ({columns}) "  # noqa: S608 (fixed names)
        f"SELECT $1, username, token_id, {params} FROM staff.staff "
        "WHERE username = $2 AND disabled_at IS NULL RETURNING username",
        _digest(secret),
        username,
        *values,
    )
    return secret if made else ""


async def open_session(conn: asyncpg.Connection, username: str, now: datetime) -> str | None:
    """Begin a session for an active account; returns the cookie value (None: disabled)."""
    columns = "id_hash, username, token_id, created_at, last_seen_at"
    return await _for_active(conn, "sessions", columns, username, now, now) or None


async def session_user(
    pool: asyncpg.Pool | asyncpg.Connection,
    session_id: str,
    policy: SessionPolicy,
    now: datetime,
) -> SessionUser | None:
    """The staff member of an open session, which this use keeps alive; None when the session
    is unknown, ended, expired, or its account disabled or rotated since."""
    row = await pool.fetchrow(
        "SELECT s.username, st.role, s.created_at, s.last_seen_at FROM staff.sessions s "
        "JOIN staff.staff st ON st.username = s.username AND st.token_id = s.token_id "
        "WHERE s.id_hash = $1 AND s.ended_at IS NULL AND st.disabled_at IS NULL",
        _digest(session_id),
    )
    if row is None or not policy.alive(row["created_at"], row["last_seen_at"], now):
        return None
    await pool.execute(
        "UPDATE staff.sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2",
        _digest(session_id),
        now,
    )
    return SessionUser(row["username"], row["role"])


async def end_session(pool: asyncpg.Pool | asyncpg.Connection, session_id: str) -> None:
    await pool.execute(
        "UPDATE staff.sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL",
        _digest(session_id),
    )


async def issue_link(
    conn: asyncpg.Connection, username: str, valid_for: timedelta, now: datetime
) -> str | None:
    """A one-time sign-in code for an active account (None: unknown or disabled)."""
    columns = "code_hash, username, token_id, expires_at"
    return await _for_active(conn, "signin_links", columns, username, now + valid_for) or None


async def redeem_link(conn: asyncpg.Connection, code: str, now: datetime) -> str | None:
    """Use a sign-in code: the account's username the first time, while it is valid and the
    account still has the token it had; None ever after."""
    username: str | None = await conn.fetchval(
        "UPDATE staff.signin_links l SET used_at = $2 FROM staff.staff st "
        "WHERE l.code_hash = $1 AND l.used_at IS NULL AND l.expires_at > $2 "
        "AND st.username = l.username AND st.token_id = l.token_id AND st.disabled_at IS NULL "
        "RETURNING l.username",
        _digest(code),
        now,
    )
    return username
