"""The scenarios of ``make bench`` (numbers as in issue 9; the method is docs/benchmarks.md).

Each returns a JSON-ready dict; rates are also given as a ratio to the broker baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from schemas.envelope import event_type
from schemas.events import IncidentReported, IncidentReportedSealed
from schemas.topics import INCIDENT_EVENTS
from services.analytics.kafka_monitor import KafkaMonitor, topic_partitions
from services.cli import executable
from services.common.kafka_security import client_options
from services.common.settings import Settings
from services.common.topics import connect_admin
from tools.bench import observe
from tools.bench.loadgen import (
    AlertLoop,
    Burst,
    ClosedLoop,
    ClosedResult,
    Job,
    KafkaResult,
    KafkaSubmit,
    LoadGenerator,
    OpenLoop,
    Result,
    Sent,
    SentReports,
    Target,
)
from tools.bench.reports import external_id
from tools.bench.settings import Profile
from tools.bench.stats import Latency, StepMeasure, backlog, count_between, judge, slope

HTTP_MODES = ((1, 16), (100, 4), (500, 2))
"""Scenario 1: (reports a request, clients) — single reports need many clients in flight."""
ALONE_MODES = ((1, 64), (500, 2))
"""Scenario 1 with the pipeline paused: intake's own capacity. Single reports from 64 clients,
as many partners posting at once would (a closed loop of 16 is held by its own round trips)."""
DOWNSTREAM = ("triage", "notify", "analytics")
"""What works on what intake accepts: paused (SIGSTOP) for the measure of intake alone."""
BURST_BATCH, BURST_CLIENTS = 500, 4

REPORTED_TYPES = frozenset({IncidentReported.ce_type, IncidentReportedSealed.ce_type})


@dataclass
class Timeline:
    """Raw times of one scenario, for the throughput-over-time plot."""

    start: float
    offered: list[float] = field(default_factory=list)
    accepted: list[float] = field(default_factory=list)
    delivered: list[float] = field(default_factory=list)
    counted: list[float] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)  # step starts


@dataclass
class Bench:
    """What every scenario works with."""

    settings: Settings
    profile: Profile
    target: Target
    generator: LoadGenerator
    deliveries: observe.Deliveries
    pool: asyncpg.Pool
    monitor: KafkaMonitor
    processes: dict[str, int]  # name -> pid, for CPU and memory (only where they run here)
    broker_produce: float = math.nan  # records/s of ProducerPerformance
    broker_consume: float = math.nan
    next_index: int = 0
    timelines: dict[str, Timeline] = field(default_factory=dict)

    async def generate(self, job: Job) -> Result:
        result = await asyncio.to_thread(self.generator.run, job)
        if isinstance(result, SentReports | ClosedResult):
            self.next_index += result.used
        return result

    def lag(self) -> dict[str, int]:
        """Consumer lag per group, as the monitor last sampled it."""
        total: dict[str, int] = defaultdict(int)
        for partition in self.monitor.latest.lag:
            total[partition.group] += partition.lag
        return dict(total)

    async def wait_idle(self, seconds: float) -> int:
        """Wait until no consumer group of the platform lags (at most ``seconds``): a backlog
        left from before would be measured as latency. Returns the lag left."""
        deadline = time.monotonic() + seconds
        while True:
            lag = sum(self.lag().values())
            if (self.monitor.latest.at and lag == 0) or time.monotonic() >= deadline:
                return lag
            await asyncio.sleep(0.5)


def ratio(value: float | None, baseline: float) -> float | None:
    if value is None or not math.isfinite(baseline) or baseline <= 0:
        return None
    return round(value / baseline, 4)


def _latencies(sent: Sequence[Sent], arrived: dict[str, float]) -> list[float]:
    """From scheduled time to arrival; a report that was refused or never arrived: inf."""
    return [
        arrived[s.incident_id] - s.scheduled
        if s.incident_id is not None and s.incident_id in arrived
        else math.inf
        for s in sent
    ]


@contextlib.contextmanager
def paused(pids: Sequence[int]) -> Iterator[None]:
    """The processes of ``pids`` stopped (SIGSTOP) meanwhile, continued after; one that is
    gone meanwhile (restarted by its supervisor under another pid) is left alone."""

    def signal_all(signum: signal.Signals) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal_all(signal.SIGSTOP)
    try:
        yield
    finally:
        signal_all(signal.SIGCONT)


async def _closed_loop(bench: Bench, batch: int, clients: int, alone: bool) -> dict[str, Any]:
    result = await bench.generate(
        ClosedLoop(batch, clients, bench.profile.intake_seconds, bench.next_index)
    )
    assert isinstance(result, ClosedResult)
    rate = result.accepted / result.seconds
    return {
        "batch": batch,
        "clients": clients,
        "intake_alone": alone,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "seconds": round(result.seconds, 2),
        "per_second": round(rate, 1),
        "ratio": ratio(rate, bench.broker_produce),
        "request_ms": Latency.of(result.request_seconds).as_ms(),
    }


async def http_intake(bench: Bench) -> list[dict[str, Any]]:
    """1. Accepted reports per second over HTTP: single reports, batches of 100 and 500."""
    return [await _closed_loop(bench, batch, clients, False) for batch, clients in HTTP_MODES]


async def intake_alone(bench: Bench) -> list[dict[str, Any]]:
    """1. Single reports and batches of 500 once more with everything downstream of intake
    paused: intake's own capacity, without the pipeline draining what it accepts on the same
    cores (the paused consumers rejoin their groups after). Only where the benchmark started
    the platform."""
    downstream = [pid for name, pid in bench.processes.items() if name.startswith(DOWNSTREAM)]
    if not downstream:
        return []
    with paused(downstream):
        return [await _closed_loop(bench, batch, clients, True) for batch, clients in ALONE_MODES]


async def kafka_intake(bench: Bench) -> dict[str, Any]:
    """2. Reports per second from incident-submissions to incident.reported on
    incident-events (the time of the last one's record, as the outbox relay produced it)."""
    count, first = bench.profile.kafka_reports, bench.next_index
    wanted = {external_id(bench.target.run, i) for i in range(first, first + count)}
    consumer = AIOKafkaConsumer(**client_options(bench.settings), enable_auto_commit=False)
    admin = await connect_admin(bench.settings)
    try:
        partitions = await topic_partitions(admin, [bench.settings.topic(INCIDENT_EVENTS.name)])
    finally:
        await admin.close()
    await consumer.start()
    try:
        consumer.assign(partitions)
        for tp, end in (await consumer.end_offsets(partitions)).items():
            consumer.seek(tp, end)  # only what the platform publishes from now on
        produced = asyncio.create_task(bench.generate(KafkaSubmit(count, first)))
        bench.next_index += count
        seen: list[float] = []
        deadline = time.monotonic() + bench.profile.wait_seconds
        while len(seen) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    if event_type(record.headers) not in REPORTED_TYPES:
                        continue
                    body = json.loads(record.value or b"{}")
                    if body.get("partner") == bench.target.partner and (
                        body.get("external_id") in wanted
                    ):
                        seen.append(record.timestamp / 1000.0)
        sent = await produced
    finally:
        await consumer.stop()
    assert isinstance(sent, KafkaResult)
    seconds = max(seen) - sent.first_sent if len(seen) == count else None
    rate = count / seconds if seconds else None
    return {
        "reports": count,
        "published": len(seen),
        "produce_seconds": round(sent.last_acked - sent.first_sent, 2),
        "seconds": None if seconds is None else round(seconds, 2),
        "per_second": None if rate is None else round(rate, 1),
        "ratio": ratio(rate, bench.broker_produce),
    }


def _path(
    name: str, sent: Sequence[Sent], arrived: dict[str, float], start: float, seconds: float
) -> tuple[StepMeasure, dict[str, Any]]:
    """One path of a step (delivered or counted): throughput and backlog growth over the
    step's second half (steady state whatever the latency), and latency percentiles."""
    middle, end = start + seconds / 2, start + seconds
    arrivals = sorted(arrived[s.incident_id] for s in sent if s.incident_id in arrived)
    throughput = count_between(arrivals, middle, end) / (end - middle)
    due = sorted(s.scheduled for s in sent)
    growth = slope(backlog(due, arrivals, middle, end, every=0.25))
    latency = Latency.of(_latencies(sent, arrived))
    measure = StepMeasure(
        offered=len(sent) / seconds, throughput=throughput, backlog_growth=growth, p99=latency.p99
    )
    return measure, {
        "path": name,
        "per_second": round(throughput, 1),
        "backlog_growth": round(growth, 1),
        "latency_ms": latency.as_ms(),
    }


async def _open_loop_step(
    bench: Bench, rate: int, seconds: float
) -> tuple[dict[str, Any], list[str], list[Sent]]:
    """One step of scenario 3: ``rate`` reports/s for ``seconds``, measured on both paths."""
    result = await bench.generate(OpenLoop(rate, seconds, bench.next_index))
    assert isinstance(result, SentReports)
    sent = result.sent
    ids = [s.incident_id for s in sent if s.incident_id is not None]
    arrived = await observe.wait_for(ids, bench.deliveries, bench.pool, bench.profile.step_grace)
    start = min(s.scheduled for s in sent)
    measures, paths = {}, []
    for name, times in (("delivered", arrived.delivered), ("counted", arrived.counted)):
        measures[name], summary = _path(name, sent, times, start, seconds)
        paths.append(summary)
    verdict = judge(measures, result.lag)
    step = {
        "offered": rate,
        "seconds": seconds,
        "sent": len(sent),
        "accepted": len(ids),
        "generator_lag_s": round(result.lag, 3),
        **{p.pop("path"): p for p in paths},
        "consumer_lag": bench.lag(),
        "saturated": verdict.saturated,
        "sustainable": verdict.sustainable,
        "reasons": verdict.reasons,
    }
    return step, ids, sent


async def end_to_end(bench: Bench) -> dict[str, Any]:
    """3. Open loop at fixed offered rates, stepping up until one saturates; with 6., the CPU
    seconds and peak memory of every process over these steps. First, where the profile has
    one, a warm-up step that is shown but neither judged nor counted (docs/benchmarks.md)."""
    profile = bench.profile
    lag_at_start = await bench.wait_idle(profile.drain_seconds)
    warm_up = None
    if profile.warm_up_seconds:
        warm_up, *_ = await _open_loop_step(bench, profile.warm_up_rate, profile.warm_up_seconds)
        await bench.wait_idle(profile.drain_seconds)
    timeline = bench.timelines.setdefault("end_to_end", Timeline(start=time.time()))
    peaks_reset = all([observe.reset_peaks(pid) for pid in bench.processes.values()])
    before = {name: observe.usage(pid) for name, pid in bench.processes.items()}
    began = time.monotonic()
    steps: list[dict[str, Any]] = []
    all_ids: list[str] = []
    for rate in profile.rates:
        step, ids, sent = await _open_loop_step(bench, rate, profile.step_seconds)
        all_ids += ids
        timeline.marks.append((min(s.scheduled for s in sent), f"{rate}/s"))
        timeline.offered += [s.scheduled for s in sent]
        timeline.accepted += [s.answered for s in sent if s.incident_id is not None]
        steps.append(step)
        if step["saturated"]:
            break
    seconds = time.monotonic() - began
    after = {name: observe.usage(pid) for name, pid in bench.processes.items()}
    cpu = {name: after[name].cpu_seconds - before[name].cpu_seconds for name in after}
    # The backlog of a saturated step clears before the next scenario starts.
    drained = await observe.wait_for(all_ids, bench.deliveries, bench.pool, profile.drain_seconds)
    timeline.delivered += list(drained.delivered.values())
    timeline.counted += list(drained.counted.values())
    sustainable = [s["offered"] for s in steps if s["sustainable"]]
    best = max(sustainable) if sustainable else None
    return {
        "lag_at_start": lag_at_start,
        "warm_up": warm_up,
        "steps": steps,
        "highest_sustainable": best,
        "ratio": ratio(best, bench.broker_produce),
        "drained": len(drained.delivered) == len(drained.counted) == len(all_ids),
        "resources": {
            "seconds": round(seconds, 1),
            "peaks_reset": peaks_reset,
            "processes": {
                name: {
                    "cpu_seconds": round(cpu[name], 2),
                    "cpu_percent": round(100 * cpu[name] / seconds, 1),
                    "peak_mb": round(after[name].peak_kb / 1024, 1),
                }
                for name in after
            },
        },
    }


async def burst(bench: Bench) -> dict[str, Any]:
    """4. All reports at once; how long until the last is delivered and counted, and the CPU
    each process spent on it per report (where the time goes, stage by stage)."""
    count = bench.profile.burst
    before = {name: observe.usage(pid) for name, pid in bench.processes.items()}
    result = await bench.generate(Burst(count, BURST_BATCH, BURST_CLIENTS, bench.next_index))
    assert isinstance(result, SentReports)
    start = result.sent[0].scheduled
    ids = [s.incident_id for s in result.sent if s.incident_id is not None]
    arrived = await observe.wait_for(ids, bench.deliveries, bench.pool, bench.profile.wait_seconds)
    after = {name: observe.usage(pid) for name, pid in bench.processes.items()}
    bench.timelines["burst"] = Timeline(
        start=start,
        offered=[start] * count,
        accepted=[s.answered for s in result.sent if s.incident_id is not None],
        delivered=list(arrived.delivered.values()),
        counted=list(arrived.counted.values()),
    )

    def until_last(times: dict[str, float]) -> float | None:
        return round(max(times.values()) - start, 2) if len(times) == count else None

    done = [until_last(arrived.delivered), until_last(arrived.counted)]
    seconds = None if None in done else max(d for d in done if d is not None)
    rate = count / seconds if seconds else None
    return {
        "reports": count,
        "accepted": len(ids),
        "accepted_seconds": round(max(s.answered for s in result.sent) - start, 2),
        "delivered_seconds": done[0],
        "counted_seconds": done[1],
        "per_second": None if rate is None else round(rate, 1),
        "ratio": ratio(rate, bench.broker_produce),
        "delivered_ms": Latency.of(_latencies(result.sent, arrived.delivered)).as_ms(),
        "counted_ms": Latency.of(_latencies(result.sent, arrived.counted)).as_ms(),
        "cpu_ms_per_report": {
            name: round(1000 * (after[name].cpu_seconds - before[name].cpu_seconds) / count, 2)
            for name in after
        },
    }


P1_REPORTS = 20


async def p1_in_burst(bench: Bench) -> dict[str, Any]:
    """7. A fire never waits behind graffiti: 20 P1 reports at random moments while a burst of
    P4 reports is accepted and drains; the P1s' first-delivery latency, and the drain time."""
    count = bench.profile.burst
    # The burst meets an idle platform: what the scenario before left behind is not its load.
    lag_at_start = await bench.wait_idle(bench.profile.drain_seconds)
    moments = tuple(
        sorted(random.Random(7).uniform(0, bench.profile.p1_window) for _ in range(P1_REPORTS))
    )
    # The P1s go from the load generator's process, beside the burst, over a connection of
    # their own: the same client as every other request, not this process's event loop.
    result = await bench.generate(
        Burst(count, BURST_BATCH, BURST_CLIENTS, bench.next_index, urgent_at=moments)
    )
    assert isinstance(result, SentReports)
    start = result.started
    burst_ids = [s.incident_id for s in result.sent if s.incident_id is not None]
    sent = [(s.scheduled, s.answered, s.incident_id) for s in result.urgent if s.incident_id]
    p1_ids = [incident for _, _, incident in sent]
    arrived = await observe.wait_for(
        p1_ids + burst_ids, bench.deliveries, bench.pool, bench.profile.wait_seconds
    )
    p1_latency = Latency.of(
        [arrived.delivered[i] - at if i in arrived.delivered else math.inf for at, _, i in sent]
    )
    # Where each P1 waited: intake's answer, then from intake's record to triage's decision,
    # then from the decision to its arrival at the receiver (notify's own delivered event is
    # recorded after the POST returns, so the arrival is the end of notify's hop).
    times = await observe.hops(bench.pool, p1_ids)
    stages: dict[str, list[float]] = {"intake_answer": [], "to_triaged": [], "to_receiver": []}
    for at, answered, incident in sent:
        received, triaged = times.get(incident, (math.nan, math.nan))
        arrival = arrived.delivered.get(incident, math.nan)
        for stage, value in zip(
            stages, (answered - at, triaged - received, arrival - triaged), strict=True
        ):
            stages[stage].append(value if math.isfinite(value) else math.inf)
    burst_done = [arrived.delivered.get(i) for i in burst_ids]
    drained = (
        round(max(t for t in burst_done if t is not None) - start, 2)
        if burst_ids and None not in burst_done
        else None
    )
    return {
        "burst_reports": count,
        "burst_accepted": len(burst_ids),
        "p1_sent": P1_REPORTS,
        "p1_accepted": len(p1_ids),
        "p1_delivered": sum(i in arrived.delivered for i in p1_ids),
        "p1_window_seconds": bench.profile.p1_window,
        "p1_first_delivery_ms": p1_latency.as_ms(),
        "p1_stage_ms": {stage: Latency.of(values).as_ms() for stage, values in stages.items()},
        "burst_drained_seconds": drained,
        "lag_at_start": lag_at_start,
    }


PEER_MAX_RATE = 2_000  # Alertmanager's rates stop here (it was seen at 2,000/s with p99 ~0.4 s)


async def peer(bench: Bench, url: str) -> dict[str, Any]:
    """8. The same open-loop steps against Prometheus Alertmanager (every alert its own
    notification) and the same receiver: latency from the scheduled time to the arrival."""
    steps = []
    for rate in [r for r in bench.profile.rates if r <= PEER_MAX_RATE]:
        result = await bench.generate(
            AlertLoop(url, rate, bench.profile.step_seconds, bench.next_index)
        )
        assert isinstance(result, SentReports)
        ids = [s.incident_id for s in result.sent if s.incident_id is not None]
        for _ in range(int(bench.profile.step_grace * 4)):  # the step's grace, in 0.25 s
            if all(i in bench.deliveries.first for i in ids):
                break
            await asyncio.sleep(0.25)
        arrived = {i: bench.deliveries.first[i] for i in ids if i in bench.deliveries.first}
        steps.append(
            {
                "offered": rate,
                "sent": len(result.sent),
                "accepted": len(ids),
                "delivered": len(arrived),
                "generator_lag_s": round(result.lag, 3),
                "latency_ms": Latency.of(_latencies(result.sent, arrived)).as_ms(),
            }
        )
    return {"steps": steps}


def side_by_side(e2e: dict[str, Any], peer_result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per offered rate: the platform's and Alertmanager's delivery latency, and their ratio."""
    platform = {s["offered"]: s["delivered"]["latency_ms"] for s in e2e.get("steps", [])}
    rows = []
    for step in peer_result["steps"]:
        ours, theirs = platform.get(step["offered"]), step["latency_ms"]
        row: dict[str, Any] = {"offered": step["offered"], "platform_ms": ours, "peer_ms": theirs}
        for q in ("p50", "p99"):
            a, b = (ours or {}).get(q), theirs.get(q)
            row[f"{q}_ratio"] = round(a / b, 1) if a is not None and b else None
        rows.append(row)
    return rows


async def analytics_rebuild(broker_consume: float) -> dict[str, Any]:
    """5. `veilig analytics rebuild`: replay both topics from offset 0 and swap in. Run as an
    operator runs it, a process of its own: forked from this one, its workers would carry the
    benchmark's memory and threads along (measured: 24,800 events/s in here, 30,000 to 33,000 as
    a command on the same topics)."""
    process = await asyncio.create_subprocess_exec(
        executable(), "analytics", "rebuild", "--json", stdout=asyncio.subprocess.PIPE
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"veilig analytics rebuild exited with {process.returncode}")
    result = json.loads(output)
    return {
        "records": result["records"],
        "events": result["events"],
        "seconds": result["seconds"],
        "per_second": result["events_per_second"],
        "ratio": ratio(result["events_per_second"], broker_consume),
        "phase_seconds": result["phase_seconds"],
    }
