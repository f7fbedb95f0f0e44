"""`veilig`: the one operator command line of the platform.

Each capability registers its own sub-command group here instead of shipping a script.
"""

from __future__ import annotations

import typer

from schemas.cli import geo_app
from services.analytics.cli import analytics_app
from services.common.cli import topics_app
from services.common.dlq_cli import dlq_app
from services.common.staff_cli import staff_app
from services.intake.cli import keys_app, partners_app
from services.notify.cli import recipients_app
from services.triage.cli import app as triage_app
from services.triage.cli import routes_app
from services.triage.plans_cli import plans_app
from tools.bench.cli import bench
from tools.chaos.cli import chaos
from tools.cli import demo, run_platform

app = typer.Typer(
    name="veilig",
    help="Veilig Haarlem operator CLI.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(topics_app, name="topics")
app.add_typer(staff_app, name="staff")
app.add_typer(geo_app, name="geo")
app.add_typer(partners_app, name="partners")
app.add_typer(keys_app, name="keys")
app.add_typer(recipients_app, name="recipients")
app.add_typer(triage_app, name="triage")
app.add_typer(routes_app, name="routes")
app.add_typer(plans_app, name="plans")
app.add_typer(analytics_app, name="analytics")
app.add_typer(dlq_app, name="dlq")
app.command("run")(run_platform)
app.command("demo")(demo)
app.command("bench")(bench)
app.command("chaos")(chaos)


def main() -> None:
    app()
