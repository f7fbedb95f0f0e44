"""`veilig run` (what `make run` calls) and `veilig demo` (what `make demo` calls)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console

from services.common.kafka_access import service_principal
from services.common.settings import LANED, SERVICES, ServiceName, Settings, get_settings
from services.common.staff import StaffError
from services.notify.webhooks import generate_secret
from tools import demo as demo_scenario
from tools import demo_programme
from tools.supervisor import Program, Supervisor, service_program

console = Console(soft_wrap=True)  # long URLs and tokens stay on one line
T = TypeVar("T")
RUN_DIR = Path(os.environ.get("RUN_DIR", ".run"))
STANDIN_SECRET = RUN_DIR / "standins" / "secret"


def standin_secret() -> str:
    """The whsec_ secret the local stand-in receiver verifies with (made once per run dir)."""
    if not STANDIN_SECRET.exists():
        STANDIN_SECRET.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(STANDIN_SECRET, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(generate_secret())
    return STANDIN_SECRET.read_text().strip()


def base_url(settings: Settings) -> str:
    return f"http://{settings.http_host}:{settings.intake_port}"


SCALED_OUT: tuple[ServiceName, ...] = ("triage", "notify")
"""What ``replicas`` multiplies: the consumers of incident-events, whose partitions the
instances of one consumer group share. Their main lanes do the bulk work (``Program.bulk``)."""
REPLICA_PORT_STEP = 100  # instance n listens on the service's ports + (n - 1) * 100
URGENT_PORT_STEP = 50  # the urgent lane's process listens on the service's ports + 50


def replica_ports(settings: Settings, service: ServiceName, n: int) -> dict[str, str]:
    """The port settings of instance ``n`` (from 2) of ``service``: HTTP and metrics."""
    step = (n - 1) * REPLICA_PORT_STEP
    return {
        f"{service.upper()}_PORT": str(settings.port_of(service) + step),
        f"{service.upper()}_METRICS_PORT": str(settings.metrics_port_of(service) + step),
    }


def urgent_lane(program: Program, service: ServiceName, port: int, metrics_port: int) -> Program:
    """The urgent lane's own process beside ``program`` (the service), on ``port`` and
    ``metrics_port``. From now on ``program`` works the main lane: P1/P2 get a process of
    their own that no bulk batch in the same event loop can hold up."""
    program.env["LANE"] = "main"
    host = urlsplit(program.health_url or "http://127.0.0.1").hostname or "127.0.0.1"
    return dataclasses.replace(
        service_program(service, port, host),
        name=f"{service}-urgent",
        env={
            **program.env,
            "LANE": "urgent",
            f"{service.upper()}_PORT": str(port),
            f"{service.upper()}_METRICS_PORT": str(metrics_port),
        },
    )


def service_credentials(settings: Settings, service: ServiceName) -> dict[str, str]:
    """Each service signs in to the local broker as its own principal, with only its own ACLs
    (`make up` made them: veilig kafka principals), when KAFKA_CREDENTIALS_DIR says where."""
    if settings.kafka_credentials_dir is None:
        return {}
    principal = service_principal(service)
    return {
        "KAFKA_SASL_USERNAME": principal,
        "KAFKA_SASL_PASSWORD_FILE": str(settings.kafka_credentials_dir / principal),
    }


def platform_programs(settings: Settings, secret: str, replicas: int = 1) -> list[Program]:
    """The four services and the stand-ins, as `make run` (and `make bench`) supervise them:
    triage and notify each with a process of their own for the urgent lane; with
    ``replicas`` > 1, that many instances of their main lane in the same groups."""
    programs = []
    for service in SERVICES:
        for n in range(1, (replicas if service in SCALED_OUT else 1) + 1):
            port = settings.port_of(service) + (n - 1) * REPLICA_PORT_STEP
            program = service_program(service, port, settings.http_host)
            program.env.update(service_credentials(settings, service))
            if n > 1:
                program.name = f"{service}-{n}"
                program.env.update(replica_ports(settings, service, n))
            if service == "notify":
                # Notify mails the stand-in SMTP server and links acknowledgements to its API.
                program.env.update(
                    {
                        "NOTIFY_SMTP_HOST": "127.0.0.1",
                        "NOTIFY_SMTP_PORT": os.environ.get("STANDIN_SMTP_PORT", "8025"),
                        "NOTIFY_SMTP_STARTTLS": "false",  # the stand-in relay, on loopback
                        "NOTIFY_PUBLIC_BASE_URL": f"http://{settings.http_host}:{port}",
                    }
                )
            if service in (*SCALED_OUT, "analytics"):
                program.bulk = True  # dashboards and P4s may lag a burst; fires may not
            programs.append(program)
            if service in LANED and n == 1:
                programs.append(
                    urgent_lane(
                        program,
                        service,
                        settings.port_of(service) + URGENT_PORT_STEP,
                        settings.metrics_port_of(service) + URGENT_PORT_STEP,
                    )
                )
            elif service in LANED:
                program.env["LANE"] = "main"
    programs.append(
        Program(
            name="standins",
            argv=[sys.executable, "-m", "tools.standins"],
            env={"STANDIN_SECRET": secret},
            health_url=f"{demo_scenario.STANDIN_URL}/deliveries",
        )
    )
    return programs


def run_platform(
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Replay the demo.")] = True,
    pace: Annotated[float, typer.Option(help="Seconds between demo reports.")] = 1.5,
) -> None:
    """Run all four services and the stand-ins under a supervisor until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    log_dir = RUN_DIR / "logs"
    secret = standin_secret()
    programs = platform_programs(settings, secret)

    async def main() -> None:
        supervisor = Supervisor(programs, log_dir=str(log_dir))
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await supervisor.start()
        try:
            laggards = await until_done(supervisor.wait_ready(), done)
            if done.is_set():
                return
            if laggards:
                console.print(f"[yellow]not ready yet:[/yellow] {', '.join(laggards)} ({log_dir})")
            await demo_scenario.point_recipients_at_standins(settings, secret)
            host = f"http://{settings.http_host}"
            console.print("\n[bold]Veilig Haarlem is running[/bold]")
            for service in SERVICES:
                port = settings.port_of(service)
                metrics = f"http://{settings.metrics_host}:{settings.metrics_port_of(service)}"
                console.print(f"  {service:<10} {host}:{port}/docs   metrics {metrics}/metrics")
            token = await demo_scenario.ops_token(settings, RUN_DIR / "demo" / "ops-token")
            console.print(f"  logs       {log_dir}/")
            console.print(
                f"  [bold]dashboard[/bold]  {host}:{settings.analytics_port}/login?token={token}"
                "  (an ops account of this local run)"
            )
            try:
                link = await demo_scenario.console_link(settings)
                console.print(
                    f"  [bold]console[/bold]    {link}  (triage account "
                    f"{demo_scenario.LOCAL_TRIAGE}; works once, for "
                    f"{settings.console_link_minutes:g} minutes; `veilig staff link "
                    f"{demo_scenario.LOCAL_TRIAGE}` makes another)"
                )
            except StaffError as exc:
                console.print(f"  console    [yellow]{exc}[/yellow]")
            console.print(f"  receiver   {demo_scenario.STANDIN_URL}/  (what notify delivered)")
            if demo:
                await until_done(run_demo(settings, pace), done)
            console.print("Press Ctrl-C to stop.\n")
            await done.wait()
        finally:
            console.print("stopping ...")
            await supervisor.stop()

    asyncio.run(main())


async def until_done(work: Coroutine[Any, Any, T], done: asyncio.Event) -> T | None:
    """Run ``work`` unless Ctrl-C comes first (then it is cancelled and None returned)."""
    task = asyncio.create_task(work)
    stop = asyncio.create_task(done.wait())
    await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if not task.done():
        task.cancel()
        return None
    return task.result()


async def run_demo(settings: Settings, pace: float) -> None:
    started = asyncio.get_running_loop().time()
    await demo_programme.add_plan(console)
    results = await demo_scenario.replay(
        settings, pace=pace, base_url=base_url(settings), keys_file=RUN_DIR / "demo" / "keys.json"
    )
    demo_scenario.summary(results, settings, started)
    token = await demo_scenario.ops_token(settings, RUN_DIR / "demo" / "ops-token")
    await demo_programme.show(console, settings, results, token)


def demo(
    pace: Annotated[float, typer.Option(help="Seconds between reports.")] = 1.5,
) -> None:
    """Replay the demo scenario against a running platform."""
    asyncio.run(run_demo(get_settings(), pace))
