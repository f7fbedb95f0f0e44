"""`make demo`: replay a Friday night in Haarlem through the public partner API.

The scenario (``tools/data/demo_scenario.yaml``) names its partners; the demo creates the
ones that are missing and keeps their keys in ``$RUN_DIR/demo/keys.json`` (mode 0600), then
posts every report at a watchable pace and shows what came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import asyncpg
import httpx
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from schemas.taxonomy import taxonomy
from services.common import staff
from services.common.migrations import load_migrations, migrate
from services.common.settings import Settings
from services.common.staff_cli import signin_link
from services.intake import partners as partner_store
from services.intake.service import SPEC as INTAKE
from services.notify.registry import set_channel
from services.notify.service import SPEC as NOTIFY

SCENARIO = Path(__file__).with_name("data") / "demo_scenario.yaml"
# The stand-in receiver (tools/standins.py) reads the same variable: a second stack (the
# benchmark while developing) runs its stand-ins on other ports.
STANDIN_URL = f"http://127.0.0.1:{os.environ.get('STANDIN_WEBHOOK_PORT', '8090')}"
console = Console(soft_wrap=True)  # long URLs and tokens stay on one line


async def point_recipients_at_standins(
    settings: Settings,
    secret: str,
    *,
    url: str = STANDIN_URL,
    webhook_format: Literal["json", "cap"] | None = None,
) -> None:
    """Every recipient kind delivers to the local stand-in receiver, one path per kind, so
    that nothing in `make run` points at a real police or fire-brigade system. Without a
    format each kind keeps its registry default (CAP for police and fire brigade)."""
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "notify"}
    )
    try:
        await migrate(conn, "notify", load_migrations(NOTIFY.migrations))
        for kind in taxonomy().recipients:
            await set_channel(
                conn,
                kind.code,
                webhook_url=f"{url}/hooks/{quote(kind.code, safe='')}",
                secrets=[secret],
                webhook_format=webhook_format,
            )
    finally:
        await conn.close()


async def ops_token(settings: Settings, store: Path) -> str:
    """A staff token (role ops) for the dashboard of a local run: kept in ``store`` (0600)
    and reused while it works, made anew otherwise."""
    known = store.read_text().strip() if store.exists() else ""  # noqa: ASYNC240 (tiny local file)
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await staff.ensure_schema(conn)
        if known and await staff.authenticate_staff(conn, known):
            return known
        token = await staff.add_staff(conn, f"ops-{uuid.uuid4().hex[:6]}", "ops")
    finally:
        await conn.close()
    write_secret(store, token)
    return token


LOCAL_TRIAGE = "dienst"  # the triage account of a local run


async def console_link(settings: Settings) -> str:
    """A one-time sign-in link to the triage console for the local run's triage account
    (made on first use)."""
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        with contextlib.suppress(staff.StaffError):  # made by an earlier run
            await staff.add_staff(conn, LOCAL_TRIAGE, "triage")
        return await signin_link(conn, settings, LOCAL_TRIAGE)
    finally:
        await conn.close()


def load_scenario(path: Path = SCENARIO) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def read_keys(store: Path) -> dict[str, str]:
    return json.loads(store.read_text()) if store.exists() else {}  # type: ignore[no-any-return]


def write_keys(store: Path, keys: dict[str, str]) -> None:
    write_secret(store, json.dumps(keys))


def write_secret(store: Path, text: str) -> None:
    """Write a local secret readable by its owner only."""
    store.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


async def partner_keys(
    settings: Settings, wanted: dict[str, dict[str, Any]], known: dict[str, str]
) -> dict[str, str]:
    """A working key per scenario partner: kept from an earlier run, or made now (with the
    partner's ``rate_per_minute`` where ``wanted`` gives one)."""
    keys = dict(known)
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    try:
        await migrate(conn, "intake", load_migrations(INTAKE.migrations))
        for code, info in wanted.items():
            if code in keys and await partner_store.authenticate(conn, keys[code]):
                continue
            try:
                keys[code] = await partner_store.add_partner(
                    conn,
                    code,
                    name=info["name"],
                    kind=info["kind"],
                    **{k: info[k] for k in ("rate_per_minute",) if k in info},
                )
            except partner_store.PartnerError:  # it exists, but we lost its key
                keys[code] = await partner_store.issue_key(conn, code)
    finally:
        await conn.close()
    return keys


async def replay(
    settings: Settings, *, pace: float, base_url: str, keys_file: Path
) -> list[dict[str, Any]]:
    scenario = load_scenario()
    keys = await partner_keys(settings, scenario["partners"], read_keys(keys_file))
    write_keys(keys_file, keys)
    results: list[dict[str, Any]] = []
    run = uuid.uuid4().hex[:6]
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
    ) as progress:
        task = progress.add_task("Friday night in Haarlem", total=len(scenario["reports"]))
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            for n, item in enumerate(scenario["reports"]):
                body = {
                    "external_id": f"demo-{run}-{n}",
                    "description": item["description"],
                    "location": item["location"],
                    "flags": item.get("flags", {}),
                }
                for optional in ("reporter", "category_hint"):
                    if optional in item:
                        body[optional] = item[optional]
                if "days_ago" in item:  # a report of an earlier night (the zorgsignaal's)
                    occurred = datetime.now(UTC) - timedelta(days=item["days_ago"])
                    body["occurred_at"] = occurred.isoformat()
                response = await client.post(
                    "/v1/incidents",
                    json=body,
                    headers={"Authorization": f"Bearer {keys[item['partner']]}"},
                )
                ok = response.status_code in (200, 202)
                incident = response.json().get("incident_id") if ok else None
                progress.console.print(
                    f"  {item['at']}  {item['partner']:<24} {item['title']:<52} "
                    + (
                        f"[green]{response.status_code}[/green] {incident}"
                        if ok
                        else f"[red]{response.status_code} {response.text[:200]}[/red]"
                    )
                )
                results.append({**item, "status": response.status_code, "incident_id": incident})
                progress.advance(task)
                await asyncio.sleep(pace)
    return results


def summary(results: list[dict[str, Any]], settings: Settings, started: float) -> None:
    accepted = sum(r["status"] in (200, 202) for r in results)
    console.print(
        f"\n{accepted} of {len(results)} reports accepted in {time.monotonic() - started:.0f}s. "
        "Triage merges the three fire reports into one incident; notify delivers to the "
        "stand-in receiver."
    )
    host = f"http://{settings.http_host}"
    console.print(
        f"  partner API docs   {host}:{settings.intake_port}/docs\n"
        f"  triage API         {host}:{settings.triage_port}/docs\n"
        f"  ops dashboard      {host}:{settings.analytics_port}/dashboard (the login link above)\n"
        f"  deliveries         {STANDIN_URL}/  (stand-in webhook receiver)\n"
        f"  metrics            http://{settings.metrics_host}:"
        f"{{{settings.intake_metrics_port}..{settings.analytics_metrics_port}}}/metrics"
    )
