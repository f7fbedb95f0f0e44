"""`veilig recipients …`: how notify reaches each recipient.

Secrets are written, never shown: ``list`` prints how many a channel has, not what they are.
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

from schemas.taxonomy import taxonomy
from services.common.db import run_in_schema
from services.notify.registry import (
    Channel,
    Format,
    RegistryError,
    list_channels,
    registry,
    remove_channel,
    set_channel,
)

R = TypeVar("R")
console = Console()
recipients_app = typer.Typer(
    help="Recipients of notifications: channels (webhook, CAP, e-mail) and escalation.",
    no_args_is_help=True,
)
MIGRATIONS = Path(__file__).parent / "migrations"

WebhookUrl = Annotated[
    str | None, typer.Option("--webhook-url", help="Standard Webhooks endpoint (http/https).")
]
Secrets = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        help="whsec_ signing secret; repeat for rotation (all sign). Replaces earlier ones.",
    ),
]
FormatOption = Annotated[
    Format | None,
    typer.Option("--format", help="json, or cap (CAP 1.2, full-profile recipients only)."),
]
Email = Annotated[
    str | None, typer.Option("--email", help="E-mail address, used when there is no webhook.")
]


def _with_db(action: Callable[[asyncpg.Connection], Awaitable[R]]) -> R:
    return run_in_schema("notify", MIGRATIONS, action, user_errors=(RegistryError,))


def _describe(channel: Channel) -> str:
    parts = []
    if channel.webhook_url:
        gone = " (disabled: gone)" if channel.webhook_disabled_at else ""
        parts.append(f"{channel.webhook_format} webhook {channel.webhook_url}{gone}")
    if channel.email:
        gone = " (disabled: gone)" if channel.email_disabled_at else ""
        parts.append(f"e-mail {channel.email}{gone}")
    return ", ".join(parts)


@recipients_app.command("set")
def set_recipient(
    code: Annotated[
        str,
        typer.Argument(
            help="A recipient code (politie.wijkagent.WK039201) or a kind for all of its "
            "recipients (politie.wijkagent.{wijk})."
        ),
    ],
    webhook_url: WebhookUrl = None,
    secret: Secrets = None,
    fmt: FormatOption = None,
    email: Email = None,
) -> None:
    """Create or change a recipient's channel; what is not given stays as it was. Setting a
    channel enables it again after its endpoint reported itself gone."""
    channel = _with_db(
        lambda conn: set_channel(
            conn, code, webhook_url=webhook_url, secrets=secret, webhook_format=fmt, email=email
        )
    )
    console.print(f"{channel.code}: {_describe(channel)}")


@recipients_app.command("set-all")
def set_all(
    webhook_url: WebhookUrl = None,
    secret: Secrets = None,
    fmt: FormatOption = None,
    email: Email = None,
) -> None:
    """Give every recipient kind the same channel (a local stand-in receiver for `make run`).
    Without --format each kind keeps its registry default (CAP for police and fire brigade)."""

    async def run(conn: asyncpg.Connection) -> list[Channel]:
        return [
            await set_channel(
                conn,
                kind.code,
                webhook_url=webhook_url,
                secrets=secret,
                webhook_format=fmt,
                email=email,
            )
            for kind in taxonomy().recipients
        ]

    for channel in _with_db(run):
        console.print(f"{channel.code}: {_describe(channel)}")


@recipients_app.command("remove")
def remove(code: Annotated[str, typer.Argument(help="The code given to `set`.")]) -> None:
    """Remove a recipient's channel (a concrete code falls back to its kind's channel)."""
    if not _with_db(lambda conn: remove_channel(conn, code)):
        console.print(f"[red]{code} has no channel of its own[/red]")
        raise typer.Exit(1)
    console.print(f"{code}: channel removed")


@recipients_app.command("list")
def list_recipients(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Every recipient kind with its profile, channel and escalation chain, and the concrete
    recipients with channels of their own. Secrets are counted, never shown."""
    channels = {c.code: c for c in _with_db(list_channels)}
    listed = [
        (kind, registry().entry(kind.code), code, channels.get(code))
        for kind in taxonomy().recipients
        for code in [kind.code, *sorted(c for c in channels if c != kind.code and kind.matches(c))]
    ]
    if as_json:
        document = [
            {
                "code": code,
                "name": kind.name,
                "profile": kind.profile.value,
                "acknowledges": entry.acknowledges,
                "escalation": list(entry.escalation),
                "format": channel.webhook_format if channel else entry.format,
                "webhook_url": channel.webhook_url if channel else None,
                "webhook_disabled": bool(channel and channel.webhook_disabled_at),
                "secrets": len(channel.secrets) if channel else 0,
                "email": channel.email if channel else None,
                "email_disabled": bool(channel and channel.email_disabled_at),
            }
            for kind, entry, code, channel in listed
        ]
        typer.echo(json.dumps(document, indent=2))
        return
    table = Table("code", "profile", "channel", "secrets", "acknowledges", "escalation")
    for kind, entry, code, channel in listed:
        table.add_row(
            code,
            kind.profile.value,
            _describe(channel) if channel else "[red]none[/red]",
            str(len(channel.secrets) if channel else 0),
            "yes" if entry.acknowledges else "no",
            " → ".join(entry.escalation) or "(itself again)",
        )
    console.print(table)
