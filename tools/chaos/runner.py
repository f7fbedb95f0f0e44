"""`veilig chaos`: the platform as `make run` has it, a steady open-loop load, one fault at a
time, then wait for the system to settle and check the invariants from the ground truth.

The services run under :class:`tools.supervisor.Supervisor` (a killed one is restarted), the
stand-in receiver and the faulty one under a supervisor of their own (they outlive the
platform when scenario 6 moves it to the 3-broker cluster). The load is the benchmark's load
generator in its own process, retrying refused reports with the same external id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import asyncpg
import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.taxonomy import taxonomy
from services.common.kafka_access import partner_topic
from services.common.settings import ServiceName, Settings
from services.notify.registry import RegistryError, kind_code, set_channel
from tools import demo
from tools.bench.loadgen import LoadGenerator, OpenLoop, SentReports, Target
from tools.bench.reports import external_id
from tools.chaos import collect, infra
from tools.chaos.invariants import Fault, Observed, Report, Verdict, check
from tools.chaos.receiver import Mode
from tools.chaos.scenarios import Chaos, Profile, Scenario, set_receiver_mode
from tools.cli import RUN_DIR, platform_programs, replica_ports, standin_secret
from tools.supervisor import Program, Supervisor, service_program

log = logging.getLogger("veilig.chaos")
PARTNER = "chaos"
CLUSTER_DATABASE = "veilig_cluster"


class ChaosSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHAOS_", extra="ignore")

    receiver_port: int = Field(8095, description="Port of the faulty webhook receiver.")
    second_triage_port: int = Field(8091, description="HTTP port of the second triage.")
    second_notify_port: int = Field(8092, description="HTTP port of the second notify.")
    out: Path = Field(Path("chaos-results"), description="Where results go.")
    request_timeout: float = Field(10.0, description="The partner's timeout of one request.")
    cluster_bootstrap: Literal["all", "first"] = Field(
        "all",
        description="What the services get as KAFKA_BOOTSTRAP_SERVERS in scenario 6: every "
        "broker (as production would), or only the first (a workaround where a comma-separated "
        "list does not reach the client as a list).",
    )

    def receiver_url(self, settings: Settings) -> str:
        return f"http://{settings.http_host}:{self.receiver_port}"


@dataclass
class Platform:
    """The four services on one broker (or cluster) and database, and what watches them."""

    name: str
    settings: Settings
    env: dict[str, str]  # what the services get on top of the environment
    options: ChaosSettings
    secret: str
    supervisor: Supervisor
    events: collect.EventLog
    receipts: collect.Receipts
    generator: LoadGenerator | None = None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    next_index: int = 0
    second: Supervisor | None = None

    def program(self, name: str) -> Program:
        return next(p for p in self.supervisor.programs if p.name == name)

    def instances(self, service: ServiceName) -> list[Program]:
        extra = self.second.programs if self.second else []
        return [self.program(service), *(p for p in extra if p.name == f"{service}-2")]

    async def wait_live(self, program: Program, within: float) -> bool:
        """Until the program's process answers /health/live (it may be restarting)."""
        url = (program.health_url or "").replace("/health/ready", "/health/live")
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return True
                await asyncio.sleep(0.3)
        return False

    async def receiver_mode(self, mode: Mode) -> None:
        await set_receiver_mode(self.options.receiver_url(self.settings), mode)

    async def point_recipients(self, *, at_receiver: bool, email: bool = False) -> None:
        """Every recipient kind's webhook at the stand-in or at the faulty receiver (JSON, as
        the end-to-end test has it); with ``email`` an e-mail fallback at the stand-in SMTP."""
        url = self.options.receiver_url(self.settings) if at_receiver else demo.STANDIN_URL
        await demo.point_recipients_at_standins(
            self.settings, self.secret, url=url, webhook_format="json"
        )
        if email:
            conn = await asyncpg.connect(
                self.settings.database_url.get_secret_value(),
                server_settings={"search_path": "notify"},
            )
            try:
                for kind in taxonomy().recipients:
                    await set_channel(conn, kind.code, email="chaos@example.org")
            finally:
                await conn.close()

    async def start_second_instances(self) -> None:
        """A second triage and a second notify, in the same consumer groups."""
        programs = []
        for service, port in (
            ("triage", self.options.second_triage_port),
            ("notify", self.options.second_notify_port),
        ):
            program = service_program(service, port, self.settings.http_host)
            program.name = f"{service}-2"
            program.env.update(
                {
                    **self.program(service).env,
                    **replica_ports(self.settings, service, 2),
                    f"{service.upper()}_PORT": str(port),
                }
            )
            if service == "notify":
                base = f"http://{self.settings.http_host}:{port}"
                program.env["NOTIFY_PUBLIC_BASE_URL"] = base
            programs.append(program)
        self.second = Supervisor(programs, log_dir=str(self.log_dir))
        await self.second.start()
        laggards = await self.second.wait_ready(within=180)
        if laggards:
            raise RuntimeError(f"not ready: {', '.join(laggards)} (logs: {self.log_dir})")

    async def stop_second_instances(self) -> None:
        if self.second is not None:
            await self.second.stop()
            self.second = None

    @property
    def log_dir(self) -> Path:
        return RUN_DIR / "logs" / self.name

    def restarts(self) -> dict[str, int]:
        extra = self.second.programs if self.second else []
        return {p.name: p.restarts for p in [*self.supervisor.programs, *extra]}

    async def observe(
        self, reports: list[Report], faults: list[Fault], window_start: float
    ) -> Observed:
        self.receipts.refresh()
        message_incident = {n.message_id: n.incident_id for n in self.events.notification_events}
        accepted = [r.incident_id for r in reports if r.incident_id is not None]
        found = await collect.analytics(self.settings.database_url.get_secret_value(), accepted)
        events, facts = found if found is not None else ({}, set())
        return Observed(
            reports=reports,
            incident_events=list(self.events.incident_events),
            notification_events=list(self.events.notification_events),
            deliveries=self.receipts.deliveries(message_incident),
            dead_letters=self.events.dead_letters_between(window_start, time.time()),
            analytics_events=events,
            analytics_incidents=facts,
            faults=faults,
        )


def _kind_of(code: str) -> str:
    try:
        return kind_code(code)
    except RegistryError:
        return code


@contextlib.asynccontextmanager
async def receivers(settings: Settings, options: ChaosSettings, secret: str) -> AsyncIterator[None]:
    """The stand-in receiver (as `make run` starts it) and the faulty receiver."""
    standins = [p for p in platform_programs(settings, secret) if p.name == "standins"]
    faulty = Program(
        name="chaos-receiver",
        argv=[sys.executable, "-m", "tools.chaos.receiver"],
        env={
            "CHAOS_RECEIVER_SECRET": secret,
            "CHAOS_RECEIVER_PORT": str(options.receiver_port),
            "CHAOS_RECEIVER_HOST": settings.http_host,
            "CHAOS_RECEIVER_DIR": str(RUN_DIR / "chaos-receiver"),
        },
        health_url=f"{options.receiver_url(settings)}/mode",
    )
    supervisor = Supervisor([*standins, faulty], log_dir=str(RUN_DIR / "logs"))
    await supervisor.start()
    try:
        laggards = await supervisor.wait_ready(within=60)
        if laggards:
            raise RuntimeError(f"not ready: {', '.join(laggards)} (logs: {RUN_DIR / 'logs'})")
        yield
    finally:
        await supervisor.stop()


@contextlib.asynccontextmanager
async def platform(
    name: str, settings: Settings, env: dict[str, str], options: ChaosSettings, secret: str
) -> AsyncIterator[Platform]:
    """The four services as `make run` has them (without the stand-ins, which run apart),
    with ``env`` on top, recipients at the stand-in, and a partner that sends the load."""
    programs = [p for p in platform_programs(settings, secret) if p.name != "standins"]
    for program in programs:
        program.env.update(env)
    log_dir = RUN_DIR / "logs" / name
    supervisor = Supervisor(programs, log_dir=str(log_dir))
    stopping = asyncio.Event()
    events = collect.EventLog(settings)
    receipts = collect.Receipts(
        [RUN_DIR / "standins" / "webhooks.jsonl", RUN_DIR / "chaos-receiver" / "webhooks.jsonl"],
        RUN_DIR / "standins" / "mail.jsonl",
    )
    plat = Platform(name, settings, env, options, secret, supervisor, events, receipts)
    log.info("starting the platform (%s) ...", name)
    await supervisor.start()
    watcher: asyncio.Task[None] | None = None
    try:
        laggards = await supervisor.wait_ready(within=180)
        if laggards:
            raise RuntimeError(f"not ready: {', '.join(laggards)} (logs: {log_dir})")
        await plat.point_recipients(at_receiver=False)
        key = await _partner_key(settings, RUN_DIR / "chaos" / f"keys-{name}.json")
        watcher = asyncio.create_task(events.run(stopping))
        target = Target(
            intake_url=f"http://{settings.http_host}:{settings.intake_port}",
            partner=PARTNER,
            key=key,
            kafka=settings,
            submissions_topic=partner_topic(settings, PARTNER),
            run=plat.run_id,
            timeout=options.request_timeout,
        )
        plat.generator = await asyncio.to_thread(LoadGenerator, target)
        yield plat
    finally:
        stopping.set()
        if watcher is not None:
            await watcher
        if plat.generator is not None:
            await asyncio.to_thread(plat.generator.close)
        await plat.stop_second_instances()
        await supervisor.stop()


async def _partner_key(settings: Settings, store: Path) -> str:
    # A limit no chaos run reaches: the rate limiter must not be what refuses reports.
    wanted = {PARTNER: {"name": "Chaos", "kind": "other", "rate_per_minute": 10**9}}
    keys = await demo.partner_keys(settings, wanted, demo.read_keys(store))
    demo.write_keys(store, keys)
    return keys[PARTNER]


async def run_scenario(
    plat: Platform, scenario: Scenario, profile: Profile, rate: float, rng: random.Random
) -> dict[str, Any]:
    """Load, fault, settle, check: one row of the table."""
    assert plat.generator is not None
    seconds = profile.window(scenario.name)
    row: dict[str, Any] = {
        "scenario": scenario.name,
        "title": scenario.title,
        "rate": rate,
        "kafka": plat.settings.kafka_bootstrap_servers,
    }
    restarts = plat.restarts()
    await scenario.prepare(plat)
    window_start = time.time()
    chaos = Chaos(plat, profile, seconds, time.monotonic(), rng)
    job = OpenLoop(rate, seconds, plat.next_index, retry_for=profile.retry_for)
    log.info("scenario %s: %s/s for %.0fs", scenario.name, rate, seconds)
    load = asyncio.create_task(asyncio.to_thread(plat.generator.run, job))
    faults: list[Fault] = []
    errors: list[str] = []
    try:
        faults = await scenario.inject(chaos)
    except Exception as exc:  # the fault itself failed: the row says so
        log.exception("injecting the fault failed")
        errors.append(f"fault injection failed: {exc}")
    result = await load
    assert isinstance(result, SentReports)
    plat.next_index += result.used
    reports = [
        Report(external_id(plat.run_id, s.index), s.status, s.incident_id, s.attempts, s.answered)
        for s in result.sent
    ]
    log.info(
        "scenario %s: %d sent, %d accepted; settling ...",
        scenario.name,
        len(reports),
        sum(r.incident_id is not None for r in reports),
    )
    verdict, settle_seconds = await settle(plat, reports, faults, window_start, profile)
    try:
        await scenario.restore(plat)
    except Exception as exc:
        errors.append(f"restoring after the scenario failed: {exc}")
    after = plat.restarts()
    row.update(
        {
            "window_seconds": seconds,
            "sent": verdict.sent,
            "accepted": verdict.accepted,
            "lost": verdict.lost,
            "duplicated": verdict.duplicated,
            "dead_lettered": verdict.dead_lettered,
            "redelivered": verdict.redelivered,
            "analytics_off": verdict.analytics_off,
            "recovery_seconds": None
            if verdict.recovery_seconds is None
            else round(verdict.recovery_seconds, 1),
            "settle_seconds": round(settle_seconds, 1),
            "ok": verdict.ok and not errors,
            "problems": [*errors, *verdict.problems],
            "faults": [
                {
                    "what": f.what,
                    "start": f.start,
                    "end": f.end,
                    "seconds": round(f.end - f.start, 1),
                }
                for f in faults
            ],
            "restarts": {
                n: after[n] - restarts.get(n, 0) for n in after if after[n] > restarts.get(n, 0)
            },
            "notes": chaos.notes,
            "generator_lag_seconds": round(result.lag, 3),
            "details": verdict.details,
        }
    )
    return row


async def settle(
    plat: Platform,
    reports: list[Report],
    faults: list[Fault],
    window_start: float,
    profile: Profile,
) -> tuple[Verdict, float]:
    """Check again and again until nothing is missing (or time is up), then look a little
    longer for what must NOT be there (late duplicates, redeliveries)."""
    began = time.monotonic()
    deadline = began + profile.settle_seconds
    fault_end = max((f.end for f in faults), default=time.time())
    progress: tuple[int, ...] = ()
    moved = began
    while True:
        asked = time.time()
        observed = await plat.observe(reports, faults, window_start)
        verdict = check(observed, _kind_of)
        complete = verdict.lost == 0 and verdict.analytics_off == 0
        if complete and plat.events.read_at > asked:
            break
        now = progress_of(observed, verdict)
        if now != progress:
            progress, moved = now, time.monotonic()
        if time.monotonic() - moved >= profile.stall_seconds:
            log.warning(
                "nothing moved for %.0fs, not settled: %s", profile.stall_seconds, verdict.problems
            )
            break
        if time.monotonic() >= deadline:
            log.warning("not settled after %.0fs: %s", profile.settle_seconds, verdict.problems)
            break
        await asyncio.sleep(2)
    settled = time.monotonic() - began
    await asyncio.sleep(profile.quiet_seconds)
    asked = time.time()
    for _ in range(30):  # the event log has read everything that is there now
        if plat.events.read_at > asked:
            break
        await asyncio.sleep(1)
    verdict = check(await plat.observe(reports, faults, window_start), _kind_of)
    verdict.details["settled_after_fault_seconds"] = round(time.time() - fault_end, 1)
    return verdict, settled


def progress_of(observed: Observed, verdict: Verdict) -> tuple[int, ...]:
    """What changes while the platform still works on the backlog."""
    return (
        len(observed.incident_events),
        len(observed.notification_events),
        len(observed.deliveries),
        verdict.lost,
        verdict.analytics_off,
    )


def _failed_row(scenario: Scenario, error: str) -> dict[str, Any]:
    return {
        "scenario": scenario.name,
        "title": scenario.title,
        "ok": False,
        "problems": [error],
        "not_run": True,
    }


async def run(
    settings: Settings,
    options: ChaosSettings,
    profile: Profile,
    chosen: list[Scenario],
    rate: float,
    seed: int,
) -> dict[str, Any]:
    started = datetime.now(UTC)
    began = time.monotonic()
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    secret = standin_secret()
    single = [s for s in chosen if not s.cluster]
    on_cluster = [s for s in chosen if s.cluster]
    async with receivers(settings, options, secret):
        if single:
            try:
                async with platform("single", settings, {}, options, secret) as plat:
                    for scenario in single:
                        rows.append(await _guarded(plat, scenario, profile, rate, rng))
            except Exception as exc:
                log.exception("the platform failed")
                done = {r["scenario"] for r in rows}
                rows += [
                    _failed_row(s, f"platform failed: {exc}") for s in single if s.name not in done
                ]
        if on_cluster:
            rows += await _on_cluster(settings, options, secret, on_cluster, profile, rate, rng)
    return {
        "run": {
            "started": started.isoformat(timespec="seconds"),
            "profile": profile.name,
            "rate": rate,
            "seed": seed,
            "kafka": settings.kafka_bootstrap_servers,
            "cpus": os.cpu_count(),
            "wall_seconds": round(time.monotonic() - began, 1),
        },
        "scenarios": rows,
    }


async def _guarded(
    plat: Platform, scenario: Scenario, profile: Profile, rate: float, rng: random.Random
) -> dict[str, Any]:
    try:
        return await run_scenario(plat, scenario, profile, rate, rng)
    except Exception as exc:
        log.exception("scenario %s failed", scenario.name)
        return _failed_row(scenario, f"scenario failed: {exc}")


async def _on_cluster(
    settings: Settings,
    options: ChaosSettings,
    secret: str,
    chosen: list[Scenario],
    profile: Profile,
    rate: float,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Scenario 6: the services moved to a 3-broker cluster (replication 3, min ISR 2) and
    a database of their own, so that nothing of the single broker's run carries over."""
    rows: list[dict[str, Any]] = []
    try:
        log.info("starting the 3-broker cluster ...")
        await infra.cluster("up")
        bootstrap = await infra.cluster_bootstrap()
        if options.cluster_bootstrap == "first":
            bootstrap = bootstrap.split(",")[0]
        dsn = await _database(settings, CLUSTER_DATABASE)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            # The 3-broker fault cluster (kafka-cluster.sh) listens on loopback without
            # authentication: it tests replication, not access.
            "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "DATABASE_URL": dsn,
            "KAFKA_REPLICATION_FACTOR": "3",
            "KAFKA_MIN_INSYNC_REPLICAS": "2",
        }
        clustered = settings.model_copy(
            update={
                "kafka_bootstrap_servers": bootstrap,
                "kafka_security_protocol": "PLAINTEXT",
                "database_url": SecretStr(dsn),
                "kafka_replication_factor": 3,
                "kafka_min_insync_replicas": 2,
            }
        )
        async with platform("cluster", clustered, env, options, secret) as plat:
            for scenario in chosen:
                rows.append(await _guarded(plat, scenario, profile, rate, rng))
        if options.cluster_bootstrap == "first":
            for row in rows:
                row.setdefault("notes", []).insert(
                    0,
                    f"workaround: the services were given only {bootstrap} as bootstrap "
                    "server (CHAOS_CLUSTER_BOOTSTRAP=first)",
                )
    except Exception as exc:
        log.exception("the cluster platform failed")
        done = {r["scenario"] for r in rows}
        rows += [
            _failed_row(s, f"cluster platform failed: {exc}") for s in chosen if s.name not in done
        ]
    finally:
        with contextlib.suppress(infra.InfraError):
            await infra.cluster("down")
    return rows


async def _database(settings: Settings, name: str) -> str:
    """A fresh database ``name`` on the same server; its DSN."""
    dsn = settings.database_url.get_secret_value()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlsplit(dsn)._replace(path=f"/{name}").geturl()
