"""Platform commands of `veilig`: topics and the local process manager."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import typer
from rich.console import Console

from services.common.settings import SERVICES, get_settings
from services.common.supervisor import Supervisor, service_program
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


def run_platform(
    demo: bool = typer.Option(True, "--demo/--no-demo", help="Replay the demo."),
) -> None:
    """Run all four services under a supervisor until Ctrl-C (what `make run` calls)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    log_dir = os.path.join(os.environ.get("RUN_DIR", ".run"), "logs")
    programs = [service_program(s, settings.port_of(s), settings.http_host) for s in SERVICES]

    async def main() -> None:
        supervisor = Supervisor(programs, log_dir=log_dir)
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await supervisor.start()
        laggards = await supervisor.wait_ready()
        if laggards:
            console.print(f"[yellow]not ready yet:[/yellow] {', '.join(laggards)} (see {log_dir})")
        base = f"http://{settings.http_host}"
        console.print("\n[bold]Veilig Haarlem is running[/bold]")
        for service in SERVICES:
            port = settings.port_of(service)
            console.print(f"  {service:<10} {base}:{port}/docs   metrics {base}:{port}/metrics")
        console.print(f"  logs       {log_dir}/")
        console.print("Press Ctrl-C to stop.\n")
        await done.wait()
        console.print("stopping ...")
        await supervisor.stop()

    asyncio.run(main())
