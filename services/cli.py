"""`veilig`: the one operator command line of the platform.

Each capability registers its own sub-command group here instead of shipping a script. A group
is imported only when it is used: `veilig dlq list` does not load the classifier, the
benchmarks or the chaos tools (seconds per call on a busy machine, in every script and test
that runs the command).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

COMMANDS: dict[str, str] = {
    "run": "tools.cli:run_platform",
    "demo": "tools.cli:demo",
    "bench": "tools.bench.cli:bench",
    "chaos": "tools.chaos.cli:chaos",
    "topics": "services.common.cli:topics_app",
    "kafka": "services.common.cli:kafka_app",
    "staff": "services.common.staff_cli:staff_app",
    "geo": "schemas.cli:geo_app",
    "partners": "services.intake.cli:partners_app",
    "keys": "services.intake.cli:keys_app",
    "recipients": "services.notify.cli:recipients_app",
    "triage": "services.triage.cli:app",
    "routes": "services.triage.cli:routes_app",
    "plans": "services.triage.plans_cli:plans_app",
    "analytics": "services.analytics.cli:analytics_app",
    "dlq": "services.common.dlq_cli:dlq_app",
    "privacy": "services.triage.privacy_cli:privacy_app",
}
"""Command name -> ``module:attribute``: a Typer group, or a function made one command."""


def executable() -> str:
    """This command's executable in this installation (next to the Python that runs)."""
    return str(Path(sys.executable).with_name("veilig"))


def load(name: str) -> click.Command:
    """The command ``name``, importing its module now."""
    module, attribute = COMMANDS[name].split(":")
    target = getattr(importlib.import_module(module), attribute)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """The top-level group: lists every command, imports only the one that runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load(cmd_name) if cmd_name in COMMANDS else None


app = typer.Typer(
    name="veilig",
    help="Veilig Haarlem operator CLI.",
    no_args_is_help=True,
    add_completion=False,
    cls=LazyGroup,
)


@app.callback()
def veilig() -> None:
    """Veilig Haarlem operator CLI."""


def main() -> None:
    app()
