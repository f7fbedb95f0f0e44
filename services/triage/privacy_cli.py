"""`veilig privacy purge|erase`: personal data has an end (docs/decisions/0010).

The same work as triage's daily purge, made on triage's database: audited (actor
``cli:<user>``), and each erasure published as ``incident.personal-data-erased`` by triage's
outbox relay, on which notify erases its copies.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar
from uuid import UUID

import asyncpg
import typer
from rich.console import Console

from services.common import dlq
from services.common.db import run_in_schema
from services.common.settings import get_settings
from services.triage import privacy
from services.triage.actions import Actor

R = TypeVar("R")
console = Console()
privacy_app = typer.Typer(
    help="Personal data: the retention purge and erasure on request.", no_args_is_help=True
)
MIGRATIONS = Path(__file__).parent / "migrations"


def _with_db(action: Callable[[asyncpg.Connection], Awaitable[R]]) -> R:
    async def with_keys(conn: asyncpg.Connection) -> R:
        await dlq.ensure_schema(conn)  # the period and report keys live in the ops schema
        return await action(conn)

    return run_in_schema("triage", MIGRATIONS, with_keys, user_errors=(privacy.NoSuchIncident,))


def _operator() -> Actor:
    return Actor(f"cli:{getpass.getuser()}", "operator")


@privacy_app.command("purge")
def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what is due; erase nothing (audited).")
    ] = False,
) -> None:
    """Erase the personal data of every report past PERSONAL_DATA_RETENTION_DAYS."""
    settings = get_settings()

    run = _with_db(
        lambda conn: privacy.purge(conn, settings, _operator(), datetime.now(UTC), dry_run=dry_run)
    )
    verb = "would be" if run.dry_run else "were"
    console.print(
        f"reports received before {run.cutoff:%Y-%m-%d %H:%M} UTC "
        f"({settings.personal_data_retention_days} days): {run.erased} {verb} erased; "
        f"{run.keys_destroyed} period keys {verb} destroyed"
    )


@privacy_app.command("erase")
def erase(
    incident_id: Annotated[UUID, typer.Argument(help="The incident whose report to erase.")],
    request: Annotated[
        str | None, typer.Option(help="Reference of the erasure request, kept in the audit.")
    ] = None,
) -> None:
    """Erase one report's personal data now (a right-to-erasure request)."""
    settings = get_settings()
    erased = _with_db(
        lambda conn: privacy.erase(
            conn, settings, incident_id, _operator(), datetime.now(UTC), request
        )
    )
    console.print(
        f"incident {incident_id}: personal data "
        + ("erased" if erased else "was erased before; nothing to do")
    )
