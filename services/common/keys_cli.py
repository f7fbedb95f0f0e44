"""`veilig keys pii …` and `veilig keys secrets …`: the platform's own keys
(docs/decisions/0010); the logic is in services/common/keys.py and services/common/pii.py, the
runbook is docs/runbooks/rotating-keys-and-secrets.md."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import asyncpg
import typer
from rich.console import Console

from services.common import dlq, keys, pii
from services.common.settings import get_settings

console = Console()
pii_app = typer.Typer(
    help="The keys that seal personal data (PII_KEYS / PII_KEY_FILE).", no_args_is_help=True
)
secrets_app = typer.Typer(
    help="The key that seals webhook and callback secrets (SECRETS_KEYS / SECRETS_KEY_FILE).",
    no_args_is_help=True,
)
ByOption = Annotated[
    str | None, typer.Option("--by", help="Who does it, for the audit (default: the OS user).")
]


def _audited(
    by: str | None, work: Callable[[asyncpg.Connection, str], Awaitable[keys.Resealed]]
) -> keys.Resealed:
    """Run ``work`` on a connection with the ``ops`` schema; what went wrong is one line."""

    async def action() -> keys.Resealed:
        conn = await dlq.connect_ops(get_settings())
        try:
            return await work(conn, by or dlq.default_operator())
        finally:
            await conn.close()

    try:
        return asyncio.run(action())
    except (dlq.DlqError, pii.SealError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


def _report(resealed: dict[str, keys.Counts], what: str) -> None:
    for table, counts in resealed.items():
        unreadable = (
            f", {counts.unreadable} no configured key opens (left as they are)"
            if counts.unreadable
            else ""
        )
        console.print(f"{table}: {counts.resealed} {what} re-sealed{unreadable}")


def _reseal_personal_data(by: str | None, operation: keys.Operation) -> None:
    audit_id, resealed = _audited(
        by, lambda conn, who: keys.reseal_personal_data(conn, who, operation)
    )
    _report(resealed, "value(s)")
    ids = pii.key_ids(pii.PII)
    console.print(f"live personal data is sealed with key {ids[0]} (audit #{audit_id})")
    if len(ids) > 1:
        console.print(
            f"the older key(s) {', '.join(ids[1:])} may be dropped once every host has this "
            "list: no live data needs them. What Kafka and backups hold sealed with a dropped "
            "key is unreadable from then on (crypto-shredding): keep a key until what it "
            "sealed is past PERSONAL_DATA_RETENTION_DAYS, unless that is the point"
        )


@pii_app.command("rotate")
def pii_rotate(by: ByOption = None) -> None:
    """Put a new PII key first and re-seal the live personal data with it (audited).

    With PII_KEY_FILE the key is written to the file (services on this host read it again when
    they meet data sealed with it); with PII_KEYS in the environment the new list is printed to
    set on every host, and `veilig keys pii reseal` does the re-sealing once they have it.
    """
    try:
        new = pii.add_first_key(pii.PII)
    except pii.SealError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    key_id = pii.fingerprint(new.keys[0])
    if new.written_to is None:
        audit_id, _ = _audited(
            by,
            lambda conn, who: keys.reseal_audited(conn, who, "pii-rotate", key_id, (), pii.reseal),
        )
        console.print(
            f"new PII key {key_id} (audit #{audit_id}). PII_KEYS comes from the environment: "
            "set this list on every host (intake, triage, notify and the operators' shells), "
            "restart them, then run `veilig keys pii reseal`:"
        )
        print("PII_KEYS=" + ",".join(key.decode() for key in new.keys))
        return
    console.print(f"new PII key {key_id} is first in {new.written_to}")
    _reseal_personal_data(by, "pii-rotate")


@pii_app.command("reseal")
def pii_reseal(by: ByOption = None) -> None:
    """Re-seal the live personal data with the first PII key (audited; safe to repeat)."""
    _reseal_personal_data(by, "pii-reseal")


@secrets_app.command("reseal")
def secrets_reseal(by: ByOption = None) -> None:
    """Re-seal every webhook and callback secret with the first secrets key (audited).

    Secrets sealed with the PII keys (before secrets had a key of their own) or with an older
    secrets key move to it; safe while the services run, and safe to run again.
    """
    audit_id, resealed = _audited(by, keys.reseal_secrets)
    _report(resealed, "secret(s)")
    console.print(f"every secret is sealed with the first secrets key (audit #{audit_id})")
