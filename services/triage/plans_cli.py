"""`veilig plans set|list|end`: the wijkveiligheidsplannen, from the command line.

The same changes as the admin API (``/v1/safety-plans``), made on triage's database: audited
(actor ``cli:<user>``), published on ``safety-plans`` by triage's outbox relay, and in effect
in every running triage replica at once.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from schemas import geo
from services.common.db import run_in_schema
from services.common.settings import get_settings
from services.triage import plan_store
from services.triage.actions import Actor
from services.triage.plans import PlanError, parse_plan

R = TypeVar("R")
console = Console()
plans_app = typer.Typer(
    help="Wijkveiligheidsplannen: per wijk, the categories its residents made a priority.",
    no_args_is_help=True,
)
MIGRATIONS = Path(__file__).parent / "migrations"
Wijk = Annotated[str, typer.Argument(help="Wijk code, e.g. WK039221 (Meerwijk).")]


def _with_db(action: Callable[[asyncpg.Connection], Awaitable[R]]) -> R:
    return run_in_schema("triage", MIGRATIONS, action, user_errors=(PlanError,))


def _operator() -> Actor:
    return Actor(f"cli:{getpass.getuser()}", "operator")


@plans_app.command("set")
def set_plan(
    wijk: Wijk,
    category: Annotated[
        list[str], typer.Option("--category", help="A priority category, repeatable.")
    ],
    starts: Annotated[str, typer.Option(help="First day it runs, YYYY-MM-DD.")],
    adopted_by: Annotated[str, typer.Option(help='Who adopted it, e.g. "Wijkraad Meerwijk".')],
    adopted_on: Annotated[str, typer.Option(help="When it was adopted, YYYY-MM-DD.")],
    ends: Annotated[
        str | None, typer.Option(help="Last day it runs, YYYY-MM-DD; default: until ended.")
    ] = None,
) -> None:
    """Adopt or change a wijk's plan (it replaces the wijk's current plan)."""
    try:
        plan = parse_plan(
            {
                "wijk_code": wijk,
                "categories": category,
                "starts_on": starts,
                "ends_on": ends,
                "adopted_by": adopted_by,
                "adopted_on": adopted_on,
            }
        )
    except PlanError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    settings = get_settings()
    version = _with_db(lambda conn: plan_store.set_plan(conn, settings, plan, _operator()))
    console.print(f"plan of {wijk}: version {version}, {', '.join(plan.categories)}")


@plans_app.command("end")
def end_plan(
    wijk: Wijk,
    on: Annotated[
        str | None, typer.Option("--on", help="Last day it runs, YYYY-MM-DD; default today.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why it ends.")] = None,
) -> None:
    """End a wijk's plan: its categories are no longer raised after the last day."""
    try:
        last_day = date.fromisoformat(on) if on else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--on") from None
    settings = get_settings()
    version = _with_db(
        lambda conn: plan_store.end_plan(
            conn, settings, wijk, _operator(), ends_on=last_day, reason=reason
        )
    )
    console.print(f"plan of {wijk}: version {version}, ends {last_day or plan_store.today()}")


@plans_app.command("list")
def list_plans(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per plan.")] = False,
) -> None:
    """Every wijk's plan: categories, period, who adopted it and when."""
    stored = _with_db(plan_store.list_plans)
    today = plan_store.today()
    if as_json:
        rows = [
            {**s.plan.model_dump(mode="json"), "version": s.version, "runs": s.plan.runs_on(today)}
            for s in stored
        ]
        print(json.dumps(rows))
        return
    names = geo.wijk_names()
    table = Table("wijk", "name", "categories", "runs", "adopted", "version")
    for s in stored:
        p = s.plan
        period = f"{p.starts_on} to {p.ends_on or '...'}"
        if not p.runs_on(today):
            period += " (not now)"
        table.add_row(
            p.wijk_code,
            names[p.wijk_code],
            ", ".join(p.categories),
            period,
            f"{p.adopted_by}, {p.adopted_on}",
            str(s.version),
        )
    console.print(table)
