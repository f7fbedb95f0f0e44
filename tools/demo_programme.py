"""The safety programme in the demo: a wijk's plan and a prevention signal.

Before the night starts, Meerwijk's wijkveiligheidsplan is added through the CLI (`veilig
plans set`, shown as typed); triage takes it in without a restart. After the reports, the
demo shows what it did: the priority (and why) of the report the scenario marks ``show:
plan``, the plan's priorities in Meerwijk's wijk report, and the zorgsignaal that the third
neighbour-nuisance report at one door sent to the stand-in receiver.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
from rich.console import Console

from schemas.timeutil import AMSTERDAM
from services.cli import executable
from services.common.settings import Settings
from services.triage.signals import RECIPIENT as CARE
from tools.demo import STANDIN_URL, load_scenario

T = TypeVar("T")
WAIT_SECONDS = 60.0


async def add_plan(console: Console) -> None:
    """Add the scenario's plan with `veilig plans set`, printed as an operator would type it."""
    plan = load_scenario()["plan"]
    today = datetime.now(AMSTERDAM).date()
    args = ["veilig", "plans", "set", plan["wijk"]]
    for category in plan["categories"]:
        args += ["--category", category]
    args += [
        "--starts",
        str(today - timedelta(days=30)),
        "--adopted-by",
        plan["adopted_by"],
        "--adopted-on",
        str(today - timedelta(days=45)),
    ]
    console.print(f"\n[bold]Meerwijk's safety plan[/bold]\n  $ {shlex.join(args)}")
    process = await asyncio.create_subprocess_exec(
        executable(), *args[1:], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    console.print("  " + output.decode().strip().replace("\n", "\n  "))


async def _eventually(look: Callable[[], Awaitable[T | None]]) -> T | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while loop.time() < deadline:
        found = await look()
        if found is not None:
            return found
        await asyncio.sleep(1.0)
    return None


async def show(
    console: Console, settings: Settings, results: list[dict[str, Any]], token: str
) -> None:
    """What the plan and the signal did (waiting a little for triage and notify)."""
    host = f"http://{settings.http_host}"
    headers = {"Authorization": f"Bearer {token}"}
    wijk = load_scenario()["plan"]["wijk"]
    async with httpx.AsyncClient(headers=headers, timeout=10) as client:
        for item in (r for r in results if r.get("show") == "plan" and r["incident_id"]):

            async def decided(incident: str = item["incident_id"]) -> dict[str, Any] | None:
                url = f"{host}:{settings.triage_port}/v1/incidents/{incident}"
                answer = await client.get(url)
                return answer.json() if answer.status_code == 200 else None

            found = await _eventually(decided)
            if found is None:
                console.print(f"  {item['title']}: [yellow]not triaged yet[/yellow]")
                continue
            console.print(f"  {item['title']}: [bold]{found['priority']}[/bold]")
            for reason in found["reasons"]:
                if "safety plan" in reason or reason.startswith("default of"):
                    console.print(f"    {reason}")

        async def plan_report() -> dict[str, Any] | None:
            url = f"{host}:{settings.analytics_port}/v1/reports/wijk/{wijk}"
            answer = await client.get(url)
            body = answer.json() if answer.status_code == 200 else {}
            plan = body.get("plan")
            return body if plan and any(p["count"] for p in plan["priorities"]) else None

        report = await _eventually(plan_report)
        if report is not None:
            console.print(f"  wijk report {report['name']} {report['period']}, plan priorities:")
            for p in report["plan"]["priorities"]:
                console.print(
                    f"    {p['label']:<40} this period {p['count']}, before {p['previous']}, "
                    f"open {p['open']}"
                )

        async def signal() -> dict[str, Any] | None:
            answer = await client.get(f"{STANDIN_URL}/deliveries")
            for item in answer.json()["items"] if answer.status_code == 200 else ():
                if item["recipient"] == CARE and "Zorgsignaal" in item["body"]:
                    return dict(json.loads(item["body"]))
            return None

        console.print("\n[bold]Zorgsignaal[/bold]")
        message = await _eventually(signal)
        if message is None:
            console.print("  [yellow]none reached the stand-in receiver yet[/yellow]")
        else:
            console.print(f"  {CARE} ({message['profile']}): {message['update_reason']}")
