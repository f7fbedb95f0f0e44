"""`veilig bench` (what `make bench` calls): start the platform as `make run` does, without
the demo, run the scenarios, write the results, stop everything.

With ``--no-start`` it measures a platform that runs elsewhere: Kafka and PostgreSQL from
``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL``, the rest from ``BENCH_*`` (tools/bench/settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import platform
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import typer
from rich.console import Console

from services.analytics.kafka_monitor import KafkaMonitor
from services.common.kafka_access import create_partner_topic, partner_topic
from services.common.settings import Settings, get_settings
from services.common.topics import connect_admin
from tools import demo
from tools.bench import console_queue, drain, kafka_tools, output, peer, scenarios
from tools.bench.loadgen import LoadGenerator, Target
from tools.bench.observe import Deliveries
from tools.bench.reports import record_size
from tools.bench.settings import FULL, QUICK, BenchSettings, Profile
from tools.cli import RUN_DIR, platform_programs, standin_secret
from tools.supervisor import Supervisor

console = Console()
log = logging.getLogger("veilig.bench")
KEYS_FILE = RUN_DIR / "bench" / "keys.json"
DELIVERIES_FILE = RUN_DIR / "standins" / "webhooks.jsonl"


class Scenario(StrEnum):
    http = "http"
    kafka = "kafka"
    e2e = "e2e"
    burst = "burst"
    p1 = "p1"
    peer = "peer"
    rebuild = "rebuild"
    drain = "drain"
    console = "console"


def bench(
    quick: Annotated[
        bool, typer.Option("--quick", envvar="QUICK", help="Smoke run: under 3 minutes.")
    ] = False,
    start: Annotated[
        bool,
        typer.Option(
            "--start/--no-start",
            help="Start the services and stand-ins here (else: measure a running platform).",
        ),
    ] = True,
    skip: Annotated[
        list[Scenario] | None, typer.Option(help="Leave a scenario out (repeatable).")
    ] = None,
    rates: Annotated[
        str | None,
        typer.Option(help="End-to-end offered rates, e.g. 10,50,200 (default: the profile's)."),
    ] = None,
    replicas: Annotated[
        int,
        typer.Option(
            envvar="REPLICAS", min=1, help="Instances of triage and notify (same groups)."
        ),
    ] = 1,
) -> None:
    """Benchmark the platform against the broker alone; results in bench-results/."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # a line per SASL sign-in
    profile = QUICK if quick else FULL
    if rates:
        profile = dataclasses.replace(profile, rates=tuple(int(r) for r in rates.split(",")))
    folder = asyncio.run(
        run(get_settings(), BenchSettings(), profile, start, set(skip or ()), replicas)
    )
    console.print(f"results: {folder}/results.md")


async def run(
    settings: Settings,
    options: BenchSettings,
    profile: Profile,
    start: bool,
    skip: set[Scenario],
    replicas: int = 1,
) -> Path:
    began, started = time.monotonic(), datetime.now(UTC)
    run_id = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {"notes": []}
    timelines: dict[str, scenarios.Timeline] = {}
    async with _platform(settings, start, replicas) as processes:
        key = await _partner_key(settings, options)
        # Its own submission topic, made now: intake finds it within a metadata refresh.
        admin = await connect_admin(settings)
        try:
            await create_partner_topic(admin, settings, options.partner)
        finally:
            await admin.close()
        target = Target(
            intake_url=options.intake(settings),
            partner=options.partner,
            key=key,
            kafka=settings,
            submissions_topic=partner_topic(settings, options.partner),
            run=run_id,
        )
        size = record_size(run_id)
        results["run"] = {
            "started": started.isoformat(timespec="seconds"),
            "profile": profile.name,
            "run_id": run_id,
            "intake_url": target.intake_url,
            "kafka": settings.kafka_bootstrap_servers,
            "local": start,
            "cpus": os.cpu_count(),
            "machine": platform.platform(),
            "record_size": size,
            "replicas": replicas,
        }
        log.info("broker alone: ProducerPerformance, ConsumerPerformance")
        results["broker"] = await kafka_tools.broker_baseline(
            settings,
            topic=settings.topic(f"bench-perf-{run_id}"),
            records=profile.broker_records,
            record_size=size,
            log_dir=RUN_DIR / "bench" / "perf-logs",
        )
        async with _observers(settings, options, target) as (generator, deliveries, pool, mon):
            results["run"]["durability"] = await _durability(pool)
            bench_ = scenarios.Bench(
                settings=settings,
                profile=profile,
                target=target,
                generator=generator,
                deliveries=deliveries,
                pool=pool,
                monitor=mon,
                processes={**processes, "load generator": generator.pid} if start else {},
                broker_produce=results["broker"]["producer"]["per_second"],
                broker_consume=results["broker"]["consumer"]["per_second"],
                timelines=timelines,
            )

            async def measure_peer(b: scenarios.Bench) -> dict[str, Any]:
                async with peer.alertmanager(RUN_DIR, f"{demo.STANDIN_URL}/alertmanager") as url:
                    if url is None:
                        results["notes"].append(
                            "the peer was not measured: prometheus-alertmanager is missing "
                            "(make ops-tools unpacks it)"
                        )
                        return {"steps": [], "side_by_side": []}
                    found = await scenarios.peer(b, url)
                found["side_by_side"] = scenarios.side_by_side(results.get("end_to_end", {}), found)
                return found

            async def measure_console(b: scenarios.Bench) -> dict[str, Any]:
                triage = f"http://{settings.http_host}:{settings.triage_port}"
                return await console_queue.measure(b.pool, triage)

            # Order: the console's queue first, while triage holds no incidents of the
            # other scenarios (the promise is for 10,000 open ones, its own); the end-to-end
            # steps and the peer need an idle pipeline and a free receiver; the intake
            # scenarios leave a backlog behind that nothing after them waits for.
            for name, scenario in (
                (Scenario.console, measure_console),
                (Scenario.e2e, scenarios.end_to_end),
                (Scenario.peer, measure_peer),
                (Scenario.burst, scenarios.burst),
                (Scenario.p1, scenarios.p1_in_burst),
                (Scenario.http, scenarios.http_intake),
                (Scenario.kafka, scenarios.kafka_intake),
            ):
                if name not in skip:
                    log.info("scenario %s", name.value)
                    results[_KEYS[name]] = await scenario(bench_)
            # Last: the backlog it leaves behind is the paused pipeline's whole intake.
            if Scenario.http not in skip and bench_.processes:
                log.info("scenario http, intake alone")
                results["http_intake"] += await scenarios.intake_alone(bench_)
            for key, what in (
                ("end_to_end", "the end-to-end steps"),
                ("p1_in_burst", "the P1-in-a-burst scenario"),
            ):
                if (found := results.get(key)) and found["lag_at_start"]:
                    results["notes"].append(
                        f"the platform was not idle: consumer lag {found['lag_at_start']:,} "
                        f"when {what} began"
                    )
            if (e2e := results.get("end_to_end")) and not e2e["drained"]:
                results["notes"].append("the end-to-end backlog had not cleared at the burst")
    # With the services stopped (locally): the rebuild has the machine to itself.
    if Scenario.rebuild not in skip:
        log.info("scenario rebuild")
        results["rebuild"] = await scenarios.analytics_rebuild(
            results["broker"]["consumer"]["per_second"]
        )
    # Notify's delivery worker alone, on a backlog of its own (a schema of its own).
    if Scenario.drain not in skip:
        log.info("scenario drain")
        drained = await drain.drain(
            settings.database_url.get_secret_value(), profile.drain_deliveries, concurrency=64
        )
        results["notify_drain"] = drained.summary()
    results["run"]["wall_seconds"] = round(time.monotonic() - began, 1)
    folder = options.out / started.strftime("%Y%m%dT%H%M%SZ")
    output.write(folder, results, timelines)
    return folder


_KEYS = {
    Scenario.e2e: "end_to_end",
    Scenario.burst: "burst",
    Scenario.p1: "p1_in_burst",
    Scenario.peer: "peer",
    Scenario.http: "http_intake",
    Scenario.kafka: "kafka_intake",
    Scenario.console: "console_queue",
}


@contextlib.asynccontextmanager
async def _platform(
    settings: Settings, start: bool, replicas: int = 1
) -> AsyncIterator[dict[str, int]]:
    """The services and stand-ins under the supervisor, as `make run` has them (pids by
    name, with the local broker's and PostgreSQL's); nothing when measuring elsewhere."""
    if not start:
        yield {}
        return
    secret = standin_secret()
    supervisor = Supervisor(
        platform_programs(settings, secret, replicas), log_dir=str(RUN_DIR / "logs")
    )
    await supervisor.start()
    try:
        laggards = await supervisor.wait_ready()
        if laggards:
            raise RuntimeError(f"not ready: {', '.join(laggards)} (logs: {RUN_DIR / 'logs'})")
        await demo.point_recipients_at_standins(settings, secret)
        pids = {p.name: p.process.pid for p in supervisor.programs if p.process is not None}
        yield pids | _infrastructure()
    finally:
        await supervisor.stop()


async def _durability(pool: asyncpg.Pool) -> dict[str, str]:
    """What the figures were bought with: PostgreSQL's durability settings as the server
    reports them, and the producers' acks (all, with idempotence, in every service)."""
    found = {
        name: str(await pool.fetchval(f"SHOW {name}"))
        for name in ("fsync", "synchronous_commit", "full_page_writes")
    }
    return found | {"producer_acks": "all"}


def _infrastructure() -> dict[str, int]:
    """The local broker and PostgreSQL (postmaster: its backends are its children)."""
    found = {}
    # As root the cluster's data lives outside the run folder (deploy/local/postgres.sh).
    location = RUN_DIR / "pg.location"
    pg_home = Path(location.read_text().strip()) if location.exists() else RUN_DIR / "pg"
    for name, pid_file in (
        ("kafka", RUN_DIR / "kafka" / "kafka.pid"),
        ("postgres", pg_home / "data" / "postmaster.pid"),
    ):
        with contextlib.suppress(OSError, ValueError, IndexError):
            found[name] = int(pid_file.read_text().split()[0])
    return found


async def _partner_key(settings: Settings, options: BenchSettings) -> str:
    if options.partner_key is not None:
        return options.partner_key.get_secret_value()
    # A limit no benchmark reaches: the rate limiter must not be what is measured.
    wanted = {options.partner: {"name": "Benchmark", "kind": "other", "rate_per_minute": 10**9}}
    keys = await demo.partner_keys(settings, wanted, demo.read_keys(KEYS_FILE))
    demo.write_keys(KEYS_FILE, keys)
    return keys[options.partner]


@contextlib.asynccontextmanager
async def _observers(
    settings: Settings, options: BenchSettings, target: Target
) -> AsyncIterator[tuple[LoadGenerator, Deliveries, asyncpg.Pool, KafkaMonitor]]:
    """The load generator process, and what watches the platform in the background."""
    deliveries = (
        Deliveries(url=options.deliveries_url)
        if options.deliveries_url
        else Deliveries(file=DELIVERIES_FILE)
    )
    monitor = KafkaMonitor(settings, every=1.0)
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(deliveries.run(stopping)),
        asyncio.create_task(monitor.run(stopping)),
    ]
    generator = await asyncio.to_thread(LoadGenerator, target)
    pool = await asyncpg.create_pool(
        settings.database_url.get_secret_value(), min_size=1, max_size=2
    )
    try:
        yield generator, deliveries, pool, monitor
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
        await pool.close()
        await asyncio.to_thread(generator.close)
