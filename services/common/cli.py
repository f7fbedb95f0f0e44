"""Platform commands of `veilig`: topics and Kafka principals."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.common.settings import get_settings
from services.common.topics import TopicConflictError, apply_topics

console = Console()
topics_app = typer.Typer(
    help="Kafka topics as declared in schemas/topics.py.", no_args_is_help=True
)
kafka_app = typer.Typer(
    help="Kafka principals and their ACLs (services/common/kafka_access.py).",
    no_args_is_help=True,
)


@kafka_app.command("principals")
def kafka_principals(
    credentials: Annotated[
        Path, typer.Option(help="Folder of the principals' password files (made if missing).")
    ],
) -> None:
    """Create the services' and the read-only ops principal with their ACLs, on a broker
    that authenticates with SCRAM (`make up` runs it, as the administrator); writes
    ops-client.properties next to the credentials folder."""
    from services.common.kafka_access import KafkaAccessError, apply_principals

    try:
        made = asyncio.run(apply_principals(get_settings(), credentials))
    except (KafkaAccessError, ConnectionError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"kafka: principals {', '.join(made)} with their ACLs")


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
