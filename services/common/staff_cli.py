"""`veilig staff …`: staff accounts of the staff-facing APIs. A token is printed once."""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from typing import Annotated, cast

import asyncpg
import typer
from rich.console import Console

from services.common.settings import get_settings
from services.common.staff import ROLES, Role, StaffError, add_staff

console = Console()
RoleChoice = Enum("RoleChoice", {role: role for role in ROLES}, type=str)  # typer's choices
staff_app = typer.Typer(help="Staff accounts (roles: triage, ops, admin).", no_args_is_help=True)


@staff_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Login name, e.g. j.jansen.")],
    role: Annotated[RoleChoice, typer.Option(help="The role.")],
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"username", "role", "token"}.')
    ] = False,
) -> None:
    """Create a staff account and print its bearer token (once)."""

    async def run() -> str:
        conn = await asyncpg.connect(get_settings().database_url.get_secret_value())
        try:
            return await add_staff(conn, username, cast(Role, role.value))
        finally:
            await conn.close()

    try:
        token = asyncio.run(run())
    except StaffError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps({"username": username, "role": role.value, "token": token}))
    else:
        console.print(f"staff member {username} ({role.value}); token (shown once):")
        typer.echo(token)
