"""The table of a chaos run: printed, and as ``results.json`` and ``results.md`` in
``chaos-results/<timestamp>/`` (``latest`` points at the newest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tools.bench.output import link_latest, number

COLUMNS = (
    ("scenario", "scenario"),
    ("sent", "reports sent"),
    ("accepted", "accepted"),
    ("lost", "lost"),
    ("duplicated", "duplicated effects"),
    ("dead_lettered", "dead-lettered"),
    ("redelivered", "redelivered (allowed)"),
    ("analytics_off", "analytics off"),
    ("recovery_seconds", "longest time to recover"),
    ("verdict", "verdict"),
)


def cells(row: dict[str, Any], *, short: bool = False) -> list[str]:
    """One row of the table as text; ``short``: the scenario as number and name (a terminal
    is narrow), else its title."""
    name = f"{row['title'].split()[0]} {row['scenario']}" if short else row["title"]
    if row.get("not_run"):
        return [name, *["—"] * (len(COLUMNS) - 2), "NOT RUN"]
    recovery = row.get("recovery_seconds")
    out = []
    for key, _ in COLUMNS:
        if key == "scenario":
            out.append(name)
        elif key == "recovery_seconds":
            out.append("not recovered" if recovery is None else number(recovery, " s"))
        elif key == "verdict":
            out.append("ok" if row["ok"] else "BROKEN")
        else:
            out.append(f"{row.get(key, 0):,}")
    return out


def table(results: dict[str, Any]) -> Table:
    run = results["run"]
    view = Table(
        title=f"make chaos ({run['profile']}, {run['rate']:g} reports/s, seed {run['seed']})"
    )
    for _, header in COLUMNS:
        text = header in ("scenario", "verdict")
        view.add_column(header, justify="left" if text else "right", no_wrap=text)
    for row in results["scenarios"]:
        view.add_row(*cells(row, short=True), style=None if row["ok"] else "red")
    return view


def markdown(results: dict[str, Any]) -> str:
    run = results["run"]
    lines = [
        f"# Chaos run {run['started']} ({run['profile']})",
        "",
        f"Open-loop load of {run['rate']:g} reports/s through intake's partner API (refused "
        f"reports retried with the same external id); {run['cpus']} CPUs; "
        f"seed {run['seed']}; wall time {run['wall_seconds']:.0f} s.",
        "",
        "| " + " | ".join(header for _, header in COLUMNS) + " |",
        "| " + " | ".join("---" for _ in COLUMNS) + " |",
        *("| " + " | ".join(cells(row)) + " |" for row in results["scenarios"]),
        "",
        "*lost*: accepted reports without their reported event, triage outcome or a delivery "
        "to every routed recipient. *duplicated effects*: a second reported event, incident, "
        "triage outcome, or message id for the same incident, recipient and purpose. "
        "*redelivered*: the same message id received again (at-least-once retries, allowed). "
        "*analytics off*: events analytics lacks or has extra compared with the topics. "
        "*longest time to recover*: from the end of a fault until every report accepted by "
        "then was delivered.",
    ]
    for row in results["scenarios"]:
        lines += ["", f"## {row['title']}", ""]
        if row.get("problems"):
            lines += ["Broken:", "", *(f"- {p}" for p in row["problems"]), ""]
        else:
            lines += ["Every invariant held.", ""]
        if row.get("not_run"):
            continue
        lines.append(
            f"Kafka {row['kafka']}; window {row['window_seconds']:.0f} s; settled "
            f"{row['settle_seconds']:.0f} s after the load; restarts: "
            f"{_restarts(row['restarts'])}."
        )
        if row["notes"]:
            lines += ["", "Timeline:", "", *(f"- {note}" for note in row["notes"])]
        per_fault = row["details"].get("recovery_per_fault", [])
        if per_fault:
            lines += [
                "",
                "Recovery per fault: "
                + ", ".join(f"{r['fault']} {r['seconds']:.1f} s" for r in per_fault),
            ]
        if row["details"].get("dead_letters"):
            lines += ["", "Dead letters:", ""]
            lines += [f"- {n}: {why}" for why, n in row["details"]["dead_letters"].items()]
    return "\n".join(lines) + "\n"


def _restarts(restarts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in restarts.items()) or "none"


def write(out: Path, results: dict[str, Any]) -> Path:
    """``out/<timestamp>/results.{json,md}``; the folder."""
    stamp = results["run"]["started"].replace("-", "").replace(":", "").replace("+0000", "Z")
    folder = out / stamp
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (folder / "results.md").write_text(markdown(results))
    link_latest(folder)
    return folder


def show(results: dict[str, Any], console: Console) -> None:
    console.print(table(results))
    for row in results["scenarios"]:
        for problem in row.get("problems", []):
            console.print(f"[red]{row['scenario']}:[/red] {problem}")
