"""`veilig chaos` (what `make chaos` calls): faults against the real processes, invariants
checked from the ground truth, results in chaos-results/.

It stops and starts this run's PostgreSQL and broker through ``deploy/local`` scripts, so it
runs against the local infrastructure that `make chaos` starts (its own run folder and ports),
never against a shared one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Annotated

import typer
from rich.console import Console

from services.common.settings import get_settings
from tools.chaos import output, scenarios
from tools.chaos.runner import ChaosSettings, run

console = Console()
if not console.is_terminal:  # make's output, a CI log: the whole table on one line per row
    console = Console(width=160)


def chaos(
    quick: Annotated[
        bool,
        typer.Option("--quick", envvar="QUICK", help="Scenarios 1 and 2 only, short windows."),
    ] = False,
    rate: Annotated[float, typer.Option(help="Offered reports per second.", min=0.1)] = 20.0,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this scenario (repeatable, or comma-separated): kill, postgres, "
            "broker, receivers (receiver-5xx, receiver-timeout, receiver-slow, receiver-410), "
            "scale, cluster."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the random fault moments (default: random).")
    ] = None,
) -> None:
    """Inject faults under a steady load and check that nothing is lost or doubled."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s chaos %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The broker going away is the point: the observer's client must not flood the output.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        chosen = scenarios.select(only, quick)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--only") from None
    profile = scenarios.QUICK if quick else scenarios.FULL
    seed = random.randrange(10**6) if seed is None else seed
    options = ChaosSettings()
    results = asyncio.run(run(get_settings(), options, profile, chosen, rate, seed))
    folder = output.write(options.out, results)
    output.show(results, console)
    console.print(f"results: {folder}/results.md")
    if not all(row["ok"] for row in results["scenarios"]):
        raise typer.Exit(1)
