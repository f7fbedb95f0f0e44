"""Platform commands of `veilig`: topics."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from services.common.settings import get_settings
from services.common.topics import TopicConflictError, apply_topics

console = Console()
topics_app = typer.Typer(
    help="Kafka topics as declared in schemas/topics.py.", no_args_is_help=True
)


@topics_app.command("apply")
def topics_apply() -> None:
    """Create missing topics, add partitions, fix configuration drift; report conflicts."""
    settings = get_settings()
    try:
        report = asyncio.run(apply_topics(settings))
    except TopicConflictError as exc:
        console.print(f"[red]topic conflict:[/red] {exc}")
        raise typer.Exit(1) from exc
    except ConnectionError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    for name in report.created:
        console.print(f"topic {name}: created")
    for name, (old, new) in report.partitions_added.items():
        console.print(f"topic {name}: partitions {old} -> {new}")
    for name, drift in report.configs_altered.items():
        console.print(f"topic {name}: configuration corrected {drift}")
    console.print(f"topics: {len(report.unchanged)} unchanged, {len(report.created)} created")
