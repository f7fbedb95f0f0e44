"""`veilig dlq …`: dead-letter topics for operators (list, show, replay, history).

The logic lives in services/common/dlq.py; this is the command line around it. Every failure
an operator can act on (unknown topic, missing offset, Kafka or PostgreSQL unreachable) is one
line on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC
from typing import Annotated, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from schemas.topics import Topic
from services.common import dlq
from services.common.settings import Settings, get_settings

R = TypeVar("R")
console = Console(soft_wrap=True)
REASON_WIDTH = 60  # characters of the reason in the table (all of it with --json)
KEY_WIDTH = 40
WIDE_TABLE = 140  # columns from which `list` shows every detail in its table
VALUE_CHARS = 4000  # characters of a value `show` prints

dlq_app = typer.Typer(
    help="Dead-letter topics: what consumers could not process; look at it, replay it once "
    "the cause is fixed (audited). Runbook: docs/runbooks/replay-a-dlq.md.",
    no_args_is_help=True,
)

TopicArgument = Annotated[
    str,
    typer.Argument(
        help="The source topic as declared (incident-submissions, incident-events, "
        "notification-events) or its .dlq name; the topic prefix comes from TOPIC_PREFIX.",
        show_default=False,
    ),
]
PartitionOption = Annotated[
    int | None, typer.Option("--partition", "-p", min=0, help="Partition of the dead-letter topic.")
]


@dlq_app.callback()
def _quiet_clients() -> None:
    # aiokafka logs every failed connection attempt; the one-line error below says it all.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _run(action: Callable[[Settings], Awaitable[R]]) -> R:
    """Run ``action`` with the settings; a :class:`dlq.DlqError` is one line and exit 1."""
    try:
        return asyncio.run(action(get_settings()))
    except dlq.DlqError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


def _topic(name: str) -> Topic:
    try:
        return dlq.resolve_topic(name, get_settings())
    except dlq.DlqError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc


def _short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dlq_app.command("list")
def list_command(
    topic: TopicArgument,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many records.")] = 100,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array, the whole reason of each record.")
    ] = False,
) -> None:
    """The records of a dead-letter topic, oldest first per partition, with why each is there."""
    declared = _topic(topic)
    records, total = _run(lambda settings: dlq.list_records(settings, declared, limit=limit))
    if as_json:
        typer.echo(json.dumps([r.summary() for r in records], ensure_ascii=False))
        return
    name = get_settings().topic(declared.dlq)
    if not records:
        console.print(f"{name} is empty: nothing was dead-lettered (or it expired)")
        return
    source_topic = get_settings().topic(declared.name)
    wide = console.width >= WIDE_TABLE
    table = Table(
        title=f"{name}: what consumers of {source_topic} could not process",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    columns = ("part", "offset", "time (UTC)", "key", "kind", "service", "source", "att")
    for column in columns if wide else ("part/offset", "time (UTC)", "kind", "key"):
        table.add_column(column, no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for record in records:
        row = record.summary()
        source = f"{row['source_partition']}/{row['source_offset']}"
        if row["source_topic"] != source_topic:  # not from here: say where from
            source = f"{row['source_topic'] or '?'}/{source}"
        key = Text(_short(str(row["key"] or ""), KEY_WIDTH if wide else 20))
        kind = Text(str(row["kind"] or ""))
        reason = Text(_short(record.reason, REASON_WIDTH))
        if wide:
            table.add_row(
                str(record.partition),
                str(record.offset),
                f"{record.timestamp:%Y-%m-%d %H:%M:%S}",
                key,
                kind,
                Text(str(row["service"] or "")),
                Text(source),
                str(row["attempts"] or ""),
                reason,
            )
        else:  # a narrow terminal: the reason matters more than the details
            table.add_row(
                f"{record.partition}/{record.offset}",
                f"{record.timestamp:%m-%d %H:%M}",
                kind,
                key,
                reason,
            )
    console.print(table)
    more = f" (the first {len(records)}; --limit shows more)" if total > len(records) else ""
    console.print(f"{name}: {total} record(s){more}")


@dlq_app.command("show")
def show_command(
    topic: TopicArgument,
    offset: Annotated[int, typer.Argument(min=0, help="Offset in the dead-letter topic.")],
    partition: PartitionOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the record as JSON (headers and value text).")
    ] = False,
) -> None:
    """One dead-letter record, opened: why it is there, the original's headers and value (as
    text, shortened)."""
    declared = _topic(topic)
    record = _run(lambda settings: dlq.show_record(settings, declared, offset, partition))
    try:
        headers, original = record.readable()
    except dlq.DlqError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    value = original.decode("utf-8", errors="replace")
    shortened = value if len(value) <= VALUE_CHARS else value[:VALUE_CHARS] + "…"
    if as_json:
        typer.echo(
            json.dumps(
                {
                    **record.summary(),
                    "topic": record.topic,
                    "headers": [[k, v.decode("utf-8", errors="replace")] for k, v in headers],
                    "value": shortened,
                    "value_bytes": len(original),
                },
                ensure_ascii=False,
            )
        )
        return
    console.print(f"[bold]{record.origin}[/bold]  {record.timestamp:%Y-%m-%d %H:%M:%S} UTC")
    console.print(Text(f"key: {dlq.text_of(record.key)}"))
    table = Table("header", "value")
    for key, raw in headers:
        table.add_row(Text(key), Text(raw.decode("utf-8", errors="replace")))
    console.print(table)
    note = "" if shortened is value else f", the first {VALUE_CHARS} characters"
    console.print(f"value ({len(original)} bytes{note}):")
    typer.echo(shortened)


@dlq_app.command("replay")
def replay_command(
    topic: TopicArgument,
    from_offset: Annotated[
        int | None,
        typer.Option(
            "--from",
            min=0,
            help="Replay records from this offset on (in every partition "
            "replayed); default: from the first.",
            show_default=False,
        ),
    ] = None,
    partition: PartitionOption = None,
    reason: Annotated[
        str | None,
        typer.Option(help="What was fixed; required (not for --dry-run), kept in the audit."),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who replays (default: the OS user).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be replayed; send nothing.")
    ] = False,
) -> None:
    """Republish dead-letter records to their source topic, audited.

    Each record goes opened, with its original key, value and headers (without x-dlq-* ones),
    plus x-replayed-from; consumers drop a copy of what they processed before.
    """
    declared = _topic(topic)
    if not dry_run and not (reason or "").strip():
        typer.secho(
            "error: a replay needs a reason, kept in the audit: --reason 'what was fixed' "
            "(or look first with --dry-run)",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(1)

    async def action(settings: Settings) -> dlq.ReplayResult:
        conn = await dlq.connect_ops(settings)  # first: no replay goes unaudited
        try:
            return await dlq.replay(
                settings,
                conn,
                declared,
                who=by or dlq.default_operator(),
                reason=reason,
                partition=partition,
                from_offset=from_offset,
                dry_run=dry_run,
            )
        finally:
            await conn.close()

    result = _run(action)
    plan = result.plan
    for record in plan.records:
        console.print(
            Text(
                f"{'would replay' if dry_run else 'replayed'} {record.origin} "
                f"key={_short(dlq.text_of(record.key), KEY_WIDTH)} -> {plan.target_topic} "
                f"({record.header('x-dlq-kind') or '?'})"
            )
        )
    if not plan.records:
        console.print(f"nothing to replay in {plan.dlq_topic} (audit #{result.audit_id})")
    elif dry_run:
        console.print(
            f"dry run: {len(plan.records)} record(s) of {plan.dlq_topic} would go to "
            f"{plan.target_topic}; nothing was sent (audit #{result.audit_id})"
        )
    else:
        console.print(
            f"replayed {result.sent} record(s) of {plan.dlq_topic} to {plan.target_topic} "
            f"(audit #{result.audit_id}); verify with the runbook's checks"
        )


@dlq_app.command("history")
def history_command(
    topic: Annotated[
        str | None, typer.Argument(help="Only the replays of this topic.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="The latest this many.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> None:
    """The replay audit: who replayed what, when and why (dry runs included), newest first."""
    dlq_topic = get_settings().topic(_topic(topic).dlq) if topic else None

    async def action(settings: Settings) -> list[dlq.AuditEntry]:
        conn = await dlq.connect_ops(settings)
        try:
            return await dlq.replay_history(conn, dlq_topic, limit=limit)
        finally:
            await conn.close()

    entries = _run(action)
    if as_json:
        rows = [{**asdict(e), "at": e.at.isoformat()} for e in entries]
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not entries:
        console.print("no replays yet" + (f" of {dlq_topic}" if dlq_topic else ""))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("#", "at (UTC)", "who", "dlq topic", "offsets", "sent/records", "outcome"):
        table.add_column(column, overflow="fold")
    table.add_column("reason", overflow="fold", min_width=12)
    for e in entries:
        offsets = " ".join(f"{r['partition']}:{r['first']}..{r['last']}" for r in e.ranges)
        table.add_row(
            str(e.id),
            f"{e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            Text(e.who),
            Text(e.dlq_topic),
            offsets,
            f"{e.sent}/{e.records}",
            Text(e.outcome + (f": {e.error}" if e.error else "")),
            Text(_short(e.reason, REASON_WIDTH)),
        )
    console.print(table)
