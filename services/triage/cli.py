"""`veilig triage ...` and `veilig routes ...`: operator commands of the triage service."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from schemas import geo
from schemas.events import Flags
from schemas.taxonomy import Priority, taxonomy
from schemas.timeutil import AMSTERDAM, is_nightlife
from services.triage import routing, workflow
from services.triage.priority import decide_priority

app = typer.Typer(
    name="triage",
    help="Triage: classification, priority and the incident workflow.",
    no_args_is_help=True,
)
routes_app = typer.Typer(
    name="routes", help="Routing rules (routes.yaml): check and test.", no_args_is_help=True
)

FLAG_NAMES = tuple(name for name, f in Flags.model_fields.items() if f.annotation is bool)


@app.command()
def evaluate(
    test_size: float | None = typer.Option(
        None, min=0.05, max=0.5, help="Share of the corpus held out [default: 0.25]."
    ),
    seed: int | None = typer.Option(None, help="Seed of the stratified split [default: 42]."),
    review_threshold: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Confidence below which a decision goes to review."
    ),
) -> None:
    """Train on a stratified split of the corpus and print the held-out scores."""
    # Imported here so that `veilig --help` does not pay for loading scikit-learn.
    from services.triage.classifier import evaluate as run_evaluation

    given = {"test_size": test_size, "seed": seed, "review_threshold": review_threshold}
    options: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    typer.echo(run_evaluation(**options))


# --- priority and workflow ----------------------------------------------------

CategoryOption = Annotated[str, typer.Option(help="Category code, e.g. uitgaansoverlast.")]
FlagOption = Annotated[
    list[str] | None,
    typer.Option("--flag", help=f"Report flag, repeatable: {', '.join(FLAG_NAMES)}."),
]
WijkOption = Annotated[str | None, typer.Option(help="Wijk code, e.g. WK039201.")]
ReportsOption = Annotated[int, typer.Option(min=1, help="Independent reports of the incident.")]
AtOption = Annotated[
    str | None,
    typer.Option(
        help="ISO time; local Europe/Amsterdam unless it has an offset (the first of a repeated "
        "hour on the night the clocks go back); default: now."
    ),
]


def _flags(names: list[str] | None) -> Flags:
    unknown = sorted(set(names or ()) - set(FLAG_NAMES))
    if unknown:
        raise typer.BadParameter(
            f"unknown {', '.join(unknown)}; flags: {', '.join(FLAG_NAMES)}", param_hint="--flag"
        )
    return Flags(**dict.fromkeys(names or (), True))


def _moment(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--at") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=AMSTERDAM)


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(AMSTERDAM):%A %Y-%m-%d %H:%M %Z}"


def _category(code: str) -> str:
    if code not in taxonomy().category_codes:
        raise typer.BadParameter(
            f"unknown category {code!r}; known: {', '.join(taxonomy().category_codes)}",
            param_hint="--category",
        )
    return code


@app.command("priority")
def priority_command(
    category: CategoryOption,
    flag: FlagOption = None,
    wijk: WijkOption = None,
    reports: ReportsOption = 1,
    at: AtOption = None,
) -> None:
    """Show the priority an incident gets, why, and its deadlines."""
    moment = _moment(at)
    decision = decide_priority(_category(category), _flags(flag), wijk, reports, at=moment)
    typer.echo(
        f"priority: {decision.priority or f'none (triage queue; {decision.effective} deadlines)'}"
    )
    for reason in decision.reasons:
        typer.echo(f"  {reason}")
    acknowledge_by, handle_by = decision.deadlines(moment)
    typer.echo(f"reported:        {_local(moment)}")
    typer.echo(f"acknowledge by:  {_local(acknowledge_by)}")
    typer.echo(f"handle by:       {_local(handle_by)}")


@app.command("transitions")
def transitions_command() -> None:
    """Print the allowed status changes and in which statuses each action is allowed."""
    typer.echo("status changes:")
    for old in workflow.STATUSES:
        allowed = [s for s in workflow.STATUSES if s in workflow.ALLOWED_TRANSITIONS[old]]
        typer.echo(f"  {old:<13} -> {', '.join(allowed) or '(final)'}")
    typer.echo("actions (in status -> leads to):")
    for action, moves in workflow.ACTIONS.items():
        typer.echo(f"  {action:<16} {', '.join(f'{s} -> {t}' for s, t in moves.items())}")


# --- routes -------------------------------------------------------------------------------

RoutesFile = Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Routes file.")]


def _load_routes(path: Path) -> routing.RoutingTable:
    try:
        return routing.load_routes(path)
    except routing.ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@routes_app.command("check")
def routes_check(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Routes file.")
    ] = routing.DEFAULT_PATH,
) -> None:
    """Validate a routes file: every problem names the rule and the field."""
    table = _load_routes(file)
    typer.echo(f"{file}: {len(table.rules)} rules, valid")


@routes_app.command("test")
def routes_test(
    category: CategoryOption,
    at: AtOption = None,
    wijk: Annotated[
        str | None, typer.Option(help="Wijk code; default: the wijk of --buurt.")
    ] = None,
    buurt: Annotated[str | None, typer.Option(help="Buurt code, e.g. BU03920102.")] = None,
    source: Annotated[
        str | None, typer.Option(help=f"Partner kind: {', '.join(get_args(routing.PartnerKind))}.")
    ] = None,
    partner: Annotated[str | None, typer.Option(help="Partner code, e.g. spaarnelijn.")] = None,
    flag: FlagOption = None,
    priority: Annotated[
        str | None, typer.Option(help="P1..P4; default: decided from the other options.")
    ] = None,
    reports: ReportsOption = 1,
    needs_review: Annotated[
        bool, typer.Option("--needs-review", help="The classifier was not sure.")
    ] = False,
    routes: RoutesFile = routing.DEFAULT_PATH,
) -> None:
    """Show which rules an incident matches and whom it reaches, with profiles."""
    table = _load_routes(routes)
    category, flags, moment = _category(category), _flags(flag), _moment(at)
    if buurt is not None and wijk is None:
        try:
            wijk = geo.locate(buurt_code=buurt).wijk_code
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--buurt") from None
    if priority is None:
        decision = decide_priority(category, flags, wijk, reports, at=moment)
        chosen, why = decision.priority, f"decided: {'; '.join(decision.reasons)}"
    elif priority in get_args(Priority):
        chosen, why = priority, "given"
    else:
        raise typer.BadParameter(f"{priority!r} is not P1..P4", param_hint="--priority")
    incident = routing.RoutingInput(
        category=category,
        priority=chosen,
        wijk_code=wijk,
        buurt_code=buurt,
        source=source,
        partner=partner,
        flags=flags,
        at=moment,
        needs_review=needs_review,
    )
    result = table.route(incident)

    night = " (nightlife hours)" if is_nightlife(moment) else ""
    typer.echo(
        f"incident: {category}, wijk {wijk or '-'}, buurt {buurt or '-'}, "
        f"source {source or '-'}, partner {partner or '-'}, "
        f"flags {', '.join(flag or ()) or '-'}{', needs review' if needs_review else ''}"
    )
    typer.echo(f"at:       {_local(moment)}{night}")
    typer.echo(f"priority: {chosen or 'none'} ({why})")
    typer.echo(f"rules:    {table.source}")
    for entry in result.trace:
        outcome = ("MATCH, continue" if entry.continued else "MATCH") if entry.matched else "no"
        typer.echo(f"  [{entry.index}] {entry.rule}: {outcome}: {entry.why}")
        for note in entry.notes:
            typer.echo(f"        {note}")
        for recipient in entry.added:
            typer.echo(f"        + {recipient.code} ({recipient.profile})")
    if not result.recipients:
        typer.echo("recipients: none, the report waits in the triage queue")
        return
    typer.echo("recipients:")
    for recipient in result.recipients:
        typer.echo(f"  {recipient.code:<32} {recipient.profile}")
