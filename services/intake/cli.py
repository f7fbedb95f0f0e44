"""`veilig partners …` and `veilig keys …`: partner systems, their status callbacks and their
API keys (and, under `veilig keys pii|secrets`, the platform's own keys:
services/common/keys_cli.py).

A key is printed once, when it is made; the database keeps only its hash.
"""

from __future__ import annotations

import asyncio
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
    kafka: Annotated[
        bool,
        typer.Option(
            "--kafka",
            help="Also let it submit over Kafka: its own principal (password printed once), "
            "its own topic incident-submissions.<code> and a produce quota.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"partner", "key"} (and "kafka").')
    ] = False,
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
    access = _kafka_access(code, rate) if kafka else None
    _print_key(code, key, as_json, access)


@partners_app.command("kafka")
def kafka_access(
    code: Annotated[str, typer.Argument(help="Partner code.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the credentials as JSON.")] = False,
) -> None:
    """Give an existing partner Kafka access, or a new Kafka password (the old one stops
    working): printed once."""
    partner = _with_db(lambda conn: store.get_partner(conn, code))
    access = _kafka_access(code, partner.rate_per_minute)
    if as_json:
        print(json.dumps({"partner": code, "kafka": access}))
    else:
        _print_kafka(access)


def _kafka_access(code: str, rate_per_minute: int) -> dict[str, str]:
    """The partner's principal, topic and quota on Kafka (services/common/kafka_access.py)."""
    from services.common.kafka_access import (
        KafkaAccessError,
        enable_partner,
        partner_principal,
        partner_topic,
        produce_quota,
    )

    settings = get_settings()
    try:
        password = asyncio.run(enable_partner(settings, code, produce_quota(rate_per_minute)))
    except (KafkaAccessError, ConnectionError) as exc:
        console.print(f"[red]Kafka access for {code} failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    return {
        "username": partner_principal(code),
        "password": password,
        "topic": partner_topic(settings, code),
        "sasl_mechanism": settings.kafka_sasl_mechanism,
    }


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


def _print_key(partner: str, key: str, as_json: bool, kafka: dict[str, str] | None = None) -> None:
    if as_json:
        print(json.dumps({"partner": partner, "key": key} | ({"kafka": kafka} if kafka else {})))
        return
    console.print(f"partner [bold]{partner}[/bold] key (shown once, store it safely):")
    print(key)
    if kafka:
        _print_kafka(kafka)


def _print_kafka(kafka: dict[str, str]) -> None:
    console.print(
        f"Kafka ({kafka['sasl_mechanism']}, shown once): principal [bold]{kafka['username']}"
        f"[/bold], produce to [bold]{kafka['topic']}[/bold]; password:"
    )
    print(kafka["password"])
