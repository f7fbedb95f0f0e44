"""`veilig analytics …`: operator commands of the analytics service."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from services.analytics.rebuild import rebuild
from services.common.settings import get_settings

console = Console()
analytics_app = typer.Typer(
    help="Analytics: projections, dashboard, reports.", no_args_is_help=True
)


@analytics_app.command("rebuild")
def rebuild_command(
    batch: Annotated[int, typer.Option(min=1, help="Records read and loaded at a time.")] = 5000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Replay incident-events and notification-events from offset 0 into fresh tables and
    swap them in (the live service keeps running)."""
    columns = (
        TextColumn("[bold]rebuild"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9,.0f} events/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=as_json) as bar:
        task = bar.add_task("rebuild", total=None, rate=0.0)

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            bar.update(task, completed=done, total=total, rate=done / elapsed if elapsed else 0)

        result = asyncio.run(rebuild(get_settings(), batch=batch, progress=progress))
    summary = {
        "records": result.records,
        "events": result.events,
        "invalid": result.invalid,
        "seconds": round(result.seconds, 2),
        "events_per_second": round(result.per_second),
        "phase_seconds": result.phases,
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        console.print(
            f"rebuilt from {result.records:,} records ({result.events:,} events, "
            f"{result.invalid} invalid skipped) in {result.seconds:.1f} s: "
            f"{result.per_second:,.0f} events/s; swapped in"
        )
        console.print(", ".join(f"{name} {s:.2f} s" for name, s in result.phases.items()))
