"""`veilig partners …` and `veilig keys …`: partner systems, their status callbacks and their
API keys (and, under `veilig keys pii|secrets`, the platform's own keys:
services/common/keys_cli.py).

A key is printed once, when it is made; the database keeps only its hash.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from services.common.db import run_in_schema
from services.common.keys_cli import pii_app, secrets_app
from services.common.settings import get_settings
from services.intake import callbacks
from services.intake import partners as store

R = TypeVar("R")
console = Console()
partners_app = typer.Typer(help="Partner systems that report incidents.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys of partners (rotation: issue, switch, revoke); the platform's own keys "
    "(pii, secrets).",
    no_args_is_help=True,
)
keys_app.add_typer(pii_app, name="pii")
keys_app.add_typer(secrets_app, name="secrets")
MIGRATIONS = Path(__file__).parent / "migrations"


def _with_db(action: Callable[[asyncpg.Connection], Awaitable[R]]) -> R:
    return run_in_schema(
        "intake", MIGRATIONS, action, user_errors=(store.PartnerError, callbacks.CallbackError)
    )


@partners_app.command("add")
def add(
    code: Annotated[str, typer.Argument(help="Partner code, e.g. politie or school-mendel.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    kind: Annotated[
        str, typer.Option(help="What kind of source: police, fire, school, ...")
    ] = "other",
    scope: Annotated[
        list[str] | None, typer.Option(help=f"Scopes (repeatable): {', '.join(store.SCOPES)}.")
    ] = None,
    rate: Annotated[int, typer.Option(help="Reports a minute before 429.")] = 600,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"partner", "key"}.')] = False,
) -> None:
    """Create a partner and print its first API key (once)."""
    key = _with_db(
        lambda conn: store.add_partner(
            conn,
            code,
            name=name or code,
            kind=kind,
            scopes=tuple(scope or store.DEFAULT_SCOPES),
            rate_per_minute=rate,
        )
    )
    _print_key(code, key, as_json)


@partners_app.command("list")
def list_partners() -> None:
    """The partners, their scopes and limits."""
    table = Table("code", "name", "kind", "scopes", "rate/min")
    for p in _with_db(store.list_partners):
        table.add_row(p.code, p.name, p.kind, " ".join(p.scopes), str(p.rate_per_minute))
    console.print(table)


@partners_app.command("callback")
def callback(
    code: Annotated[str, typer.Argument(help="Partner code.")],
    url: Annotated[str, typer.Option(help="Where to POST (https; plain http only to loopback).")],
    secret: Annotated[
        list[str], typer.Option(help="whsec_… signing secret, repeatable (rotation).")
    ],
) -> None:
    """Tell a partner what happens to its reports (triaged, acknowledged, resolved, merged):
    signed Standard Webhooks messages with its own report's public status and note only."""
    settings = get_settings()
    _with_db(lambda conn: callbacks.set_callback(conn, settings, code, url, secret))
    console.print(f"partner [bold]{code}[/bold]: status callbacks to {url}")


@keys_app.command("issue")
def issue(
    partner: Annotated[str, typer.Argument(help="Partner code.")],
    as_json: Annotated[bool, typer.Option("--json", help='Print {"partner", "key"}.')] = False,
) -> None:
    """Issue another key for a partner (the old keys stay valid until revoked)."""
    _print_key(partner, _with_db(lambda conn: store.issue_key(conn, partner)), as_json)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id (vh_<key id>_…).")]) -> None:
    """Revoke a key at once."""
    _with_db(lambda conn: store.revoke_key(conn, key_id))
    console.print(f"key {key_id} revoked")


@keys_app.command("list")
def list_keys(partner: Annotated[str | None, typer.Argument(help="Partner code.")] = None) -> None:
    """Key ids and their state (never the keys themselves)."""
    table = Table("key id", "partner", "created", "revoked")
    for k in _with_db(lambda conn: store.list_keys(conn, partner)):
        table.add_row(
            k.key_id, k.partner, f"{k.created_at:%Y-%m-%d %H:%M}", f"{k.revoked_at or ''}"
        )
    console.print(table)


def _print_key(partner: str, key: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"partner": partner, "key": key}))
    else:
        console.print(f"partner [bold]{partner}[/bold] key (shown once, store it safely):")
        print(key)
