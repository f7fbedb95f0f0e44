"""Results as ``results.json``, ``results.md`` and PNG plots in one folder per run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tools.bench.scenarios import Timeline
from tools.bench.stats import per_second


def write(folder: Path, results: dict[str, Any], timelines: dict[str, Timeline]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    results["throughput_per_second"] = {
        name: _series(timeline) for name, timeline in timelines.items()
    }
    (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / "results.md").write_text(markdown(results))
    _plots(folder, results)
    link_latest(folder)


def link_latest(folder: Path) -> None:
    """Point ``<results>/latest`` at this run's folder."""
    latest = folder.parent / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(folder.name)


def _series(timeline: Timeline) -> dict[str, Any]:
    times = timeline.offered + timeline.accepted + timeline.delivered + timeline.counted
    end = max(times, default=timeline.start) + 1
    return {
        "start": timeline.start,
        "marks": [[round(t - timeline.start, 2), label] for t, label in timeline.marks],
        **{
            name: per_second(getattr(timeline, name), timeline.start, end)
            for name in ("offered", "accepted", "delivered", "counted")
        },
    }


def number(value: float | None, unit: str = "") -> str:
    """A figure for a table: three significant digits, thousands separated, — for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:,.0f}{unit}" if abs(value) >= 100 else f"{value:,.3g}{unit}"


_num = number


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _ms(latency: dict[str, Any]) -> str:
    parts = " / ".join(_num(latency[k]) for k in ("p50", "p95", "p99", "max"))
    missing = f" ({latency['missing']} missing)" if latency["missing"] else ""
    return parts + missing


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} times"


def _durability(run: dict[str, Any]) -> list[str]:
    found = run.get("durability")
    if not found:
        return []
    settings = ", ".join(f"{k}={v}" for k, v in found.items() if k != "producer_acks")
    return [
        f"Durability as in production: PostgreSQL {settings}; producers acks="
        f"{found['producer_acks']} (idempotent). Replicas of triage and notify: "
        f"{run.get('replicas', 1)}.",
        "",
    ]


def markdown(results: dict[str, Any]) -> str:
    run, broker = results["run"], results.get("broker")
    lines = [
        f"# Benchmark {run['started']} ({run['profile']})",
        "",
        f"Target: intake {run['intake_url']}, Kafka {run['kafka']}; "
        f"{run['cpus']} CPUs; report size {run['record_size']} bytes; "
        f"wall time {run['wall_seconds']:.0f} s. Method: docs/benchmarks.md.",
        "",
        *_durability(run),
        "| scenario | figure | value | ratio to the broker alone |",
        "| --- | --- | --- | --- |",
    ]
    if broker:
        producer, consumer = broker["producer"], broker["consumer"]
        lines += [
            f"| broker | ProducerPerformance, acks=all | {_num(producer['per_second'])} "
            f"records/s (p99 {producer['p99_ms']:.0f} ms) | 100% |",
            f"| broker | ConsumerPerformance | {_num(consumer['per_second'])} records/s | 100% |",
        ]
    for row in results.get("http_intake", []):
        mode = "single reports" if row["batch"] == 1 else f"batches of {row['batch']}"
        alone = " (intake alone: triage, notify, analytics paused)" if row["intake_alone"] else ""
        lines.append(
            f"| 1 HTTP intake | {mode}, {row['clients']} clients{alone} | "
            f"{_num(row['per_second'])} accepted/s | {_ratio(row['ratio'])} |"
        )
    if kafka := results.get("kafka_intake"):
        lines.append(
            f"| 2 Kafka intake | submissions → incident.reported | "
            f"{_num(kafka['per_second'])} reports/s | {_ratio(kafka['ratio'])} |"
        )
    if e2e := results.get("end_to_end"):
        lines.append(
            f"| 3 end to end | highest sustainable offered rate | "
            f"{_num(e2e['highest_sustainable'])} reports/s | {_ratio(e2e['ratio'])} |"
        )
    if burst := results.get("burst"):
        lines.append(
            f"| 4 burst | {burst['reports']:,} reports: last delivered / counted after | "
            f"{_num(burst['delivered_seconds'], ' s')} / {_num(burst['counted_seconds'], ' s')} "
            f"({_num(burst['per_second'])} reports/s) | {_ratio(burst['ratio'])} |"
        )
    if p1 := results.get("p1_in_burst"):
        lines.append(
            f"| 7 P1 in a burst | {p1['p1_delivered']}/{p1['p1_sent']} P1 during "
            f"{p1['burst_reports']:,} P4: first delivery p50 / p99 / max | "
            f"{_num(p1['p1_first_delivery_ms']['p50'], ' ms')} / "
            f"{_num(p1['p1_first_delivery_ms']['p99'], ' ms')} / "
            f"{_num(p1['p1_first_delivery_ms']['max'], ' ms')} "
            f"(burst drained in {_num(p1['burst_drained_seconds'], ' s')}) | — |"
        )
        stages = p1["p1_stage_ms"]
        lines.append(
            "| 7 P1 in a burst | where a P1 waited, p50 (p99): intake's answer / intake to "
            "triaged / triaged to the receiver | "
            + " / ".join(
                f"{_num(stages[s]['p50'], ' ms')} ({_num(stages[s]['p99'], ' ms')})"
                for s in ("intake_answer", "to_triaged", "to_receiver")
            )
            + " | — |"
        )
    if queue := results.get("console_queue"):
        lines.append(
            f"| 10 console queue | {queue['open_incidents']:,} open incidents, every view with "
            f"its counts: worst p50 / p95 | {_num(queue['worst_p50_ms'], ' ms')} / "
            f"{_num(queue['worst_p95_ms'], ' ms')} "
            f"(limit {queue['limit_ms']:.0f} ms) | — |"
        )
    if rebuilt := results.get("rebuild"):
        lines.append(
            f"| 5 analytics rebuild | {rebuilt['records']:,} records from offset 0 | "
            f"{_num(rebuilt['per_second'])} events/s | {_ratio(rebuilt['ratio'])} |"
        )
        lines.append(
            f"| 5 analytics rebuild | seconds per step: {' / '.join(rebuilt['phase_seconds'])} | "
            + " / ".join(_num(s, " s") for s in rebuilt["phase_seconds"].values())
            + " | — |"
        )
    if drained := results.get("notify_drain"):
        lines.append(
            f"| 9 notify drain | {drained['deliveries']:,} due deliveries, worker alone "
            f"(concurrency {drained['concurrency']}) | {_num(drained['per_second'])} "
            f"deliveries/s; {drained['cpu_ms_per_delivery']:.2f} CPU ms each | — |"
        )
    if e2e:
        lines += [
            "",
            "## 3. End to end (latency from each report's scheduled send time, ms: "
            "p50 / p95 / p99 / max)",
            "",
            "| offered/s | accepted | delivered/s | backlog growth/s | delivered | counted | "
            "verdict |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        rows = [(True, e2e["warm_up"])] if e2e.get("warm_up") else []
        for warm, step in rows + [(False, step) for step in e2e["steps"]]:
            verdict = (
                f"warm-up ({step['seconds']:.0f} s): neither judged nor counted"
                if warm
                else "saturated"
                if step["saturated"]
                else "sustainable"
                if step["sustainable"]
                else "not sustainable"
            )
            why = f": {'; '.join(step['reasons'])}" if step["reasons"] and not warm else ""
            lines.append(
                f"| {step['offered']:,}{' (warm-up)' if warm else ''} | "
                f"{step['accepted']:,}/{step['sent']:,} | "
                f"{_num(step['delivered']['per_second'])} | "
                f"{_num(step['delivered']['backlog_growth'])} | "
                f"{_ms(step['delivered']['latency_ms'])} | {_ms(step['counted']['latency_ms'])} | "
                f"{verdict}{why} |"
            )
        res = e2e["resources"]
        lines += [
            "",
            f"## 6. CPU and peak memory during scenario 3 ({res['seconds']:.0f} s"
            + ("" if res["peaks_reset"] else "; peaks since process start")
            + ")",
            "",
            "| process | CPU s | CPU % | peak MB |",
            "| --- | --- | --- | --- |",
        ]
        for name, use in res["processes"].items():
            lines.append(
                f"| {name} | {use['cpu_seconds']:.1f} | {use['cpu_percent']:.0f} | "
                f"{use['peak_mb']:.0f} |"
            )
    if (burst := results.get("burst")) and (per_report := burst.get("cpu_ms_per_report")):
        lines += [
            "",
            f"## 4. CPU per report during the burst of {burst['reports']:,} (where the time goes)",
            "",
            "| process | CPU ms per report |",
            "| --- | --- |",
            *(f"| {name} | {ms:.2f} |" for name, ms in per_report.items()),
            f"| **all** | **{sum(per_report.values()):.2f}** |",
        ]
    if peer := results.get("peer"):
        lines += [
            "",
            "## 8. The peer: Prometheus Alertmanager, same generator and receiver "
            "(delivery latency, ms: p50 / p95 / p99 / max)",
            "",
            "| offered/s | this platform | Alertmanager | ratio p50 | ratio p99 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in peer["side_by_side"]:
            ours = _ms(row["platform_ms"]) if row["platform_ms"] else "— (not offered)"
            lines.append(
                f"| {row['offered']:,} | {ours} | {_ms(row['peer_ms'])} | "
                f"{_times(row['p50_ratio'])} | {_times(row['p99_ratio'])} |"
            )
    if results.get("notes"):
        lines += ["", "## Notes", "", *(f"- {note}" for note in results["notes"])]
    lines += ["", "![latency](latency.png)", "", "![throughput](throughput.png)", ""]
    return "\n".join(lines)


def _plots(folder: Path, results: dict[str, Any]) -> None:
    # matplotlib is a dev dependency and slow to import: only here, headless.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    e2e = results.get("end_to_end")
    fig, ax = plt.subplots(figsize=(8, 5))
    if e2e:
        rates = [s["offered"] for s in e2e["steps"]]
        for path, style in (("delivered", "-"), ("counted", "--")):
            # One colour per percentile, solid for delivered, dashed for counted.
            for n, key in enumerate(("p50", "p95", "p99", "max")):
                values = [s[path]["latency_ms"][key] for s in e2e["steps"]]
                ax.plot(
                    rates,
                    [math.nan if v is None else v for v in values],
                    style,
                    color=f"C{n}",
                    marker="o",
                    label=f"{path} {key}",
                )
        ax.axhline(1000, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("offered rate (reports/s)")
    ax.set_ylabel("latency from scheduled send (ms)")
    ax.set_title("End to end: latency percentiles against offered rate")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(folder / "latency.png", dpi=110)
    plt.close(fig)

    series = results["throughput_per_second"]
    rows = max(1, len(series))
    fig, axes = plt.subplots(rows, 1, figsize=(10, 3.5 * rows), squeeze=False)
    for ax, (name, data) in zip(axes[:, 0], series.items(), strict=False):
        for key in ("offered", "accepted", "delivered", "counted"):
            ax.plot(range(len(data[key])), data[key], label=key)
        for at, label in data["marks"]:
            ax.axvline(at, color="grey", linewidth=0.6)
            ax.annotate(label, (at, 0), textcoords="offset points", xytext=(3, 3), fontsize=8)
        ax.set_title(f"{name.replace('_', ' ')}: throughput over time")
        ax.set_xlabel("seconds")
        ax.set_ylabel("reports/s")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(folder / "throughput.png", dpi=110)
    plt.close(fig)
