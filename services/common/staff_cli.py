"""`veilig staff …`: staff accounts of the staff-facing APIs. A token is printed once.

``disable`` and ``rotate`` take effect at once, for the triage console's open sessions too:
every request checks the account and the token its session began with.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Annotated, TypeVar, cast

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from services.common import sessions
from services.common.settings import Settings, get_settings
from services.common.staff import (
    ROLES,
    Role,
    StaffError,
    add_staff,
    disable_staff,
    ensure_schema,
    list_staff,
    rotate_staff,
)

console = Console(soft_wrap=True)
RoleChoice = Enum("RoleChoice", {role: role for role in ROLES}, type=str)  # typer's choices
staff_app = typer.Typer(help="Staff accounts (roles: triage, ops, admin).", no_args_is_help=True)
T = TypeVar("T")


def _with_db(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``work`` on a connection to the platform's database; a StaffError exits with 1."""

    async def run() -> T:
        conn = await asyncpg.connect(get_settings().database_url.get_secret_value())
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except StaffError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


@staff_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Login name, e.g. j.jansen.")],
    role: Annotated[RoleChoice, typer.Option(help="The role.")],
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"username", "role", "token"}.')
    ] = False,
) -> None:
    """Create a staff account and print its bearer token (once)."""
    token = _with_db(lambda conn: add_staff(conn, username, cast(Role, role.value)))
    if as_json:
        typer.echo(json.dumps({"username": username, "role": role.value, "token": token}))
    else:
        console.print(f"staff member {username} ({role.value}); token (shown once):")
        typer.echo(token)


@staff_app.command("disable")
def disable(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable an account: its token and its open console sessions stop working at once."""
    _with_db(lambda conn: disable_staff(conn, username))
    console.print(f"staff member {username}: disabled")


@staff_app.command("rotate")
def rotate(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Give an account a new token (printed once); the old token and sessions end at once."""
    token = _with_db(lambda conn: rotate_staff(conn, username))
    console.print(f"staff member {username}: new token (shown once); the old one is void")
    typer.echo(token)


@staff_app.command("list")
def list_accounts(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per account.")] = False,
) -> None:
    """Every account: role, since when, disabled or not, open console sessions."""
    accounts = _with_db(list_staff)
    if as_json:
        for a in accounts:
            typer.echo(
                json.dumps(
                    {
                        "username": a.username,
                        "role": a.role,
                        "created_at": a.created_at.isoformat(),
                        "disabled_at": a.disabled_at.isoformat() if a.disabled_at else None,
                        "open_sessions": a.open_sessions,
                    }
                )
            )
        return
    table = Table("username", "role", "created", "status", "open sessions")
    for a in accounts:
        status = f"disabled {a.disabled_at:%Y-%m-%d %H:%M}" if a.disabled_at else "active"
        table.add_row(
            a.username, a.role, f"{a.created_at:%Y-%m-%d %H:%M}", status, str(a.open_sessions)
        )
    console.print(table)


async def signin_link(conn: asyncpg.Connection, settings: Settings, username: str) -> str:
    """A one-time console sign-in link for an active account (`veilig staff link`, `make run`)."""
    await ensure_schema(conn)
    valid_for = timedelta(minutes=settings.console_link_minutes)
    code = await sessions.issue_link(conn, username, valid_for, datetime.now(UTC))
    if code is None:
        raise StaffError(f"no active staff member {username!r}")
    base = f"http://{settings.http_host}:{settings.triage_port}"
    return f"{base}{sessions.CONSOLE_PATH}/signin#{code}"


@staff_app.command("link")
def link(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Print a one-time sign-in link to the triage console (valid CONSOLE_LINK_MINUTES)."""
    url = _with_db(lambda conn: signin_link(conn, get_settings(), username))
    minutes = get_settings().console_link_minutes
    console.print(f"triage console for {username} (works once, for {minutes:g} minutes):")
    typer.echo(url)
