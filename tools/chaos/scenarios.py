"""The faults of `make chaos`, each injected while the open-loop load runs.

A scenario's ``inject`` gets a :class:`Chaos` (the running platform, the clock of the load
window, a seeded random source) and returns the faults it made, each with when it started and
ended: recovery is measured from those ends. ``prepare`` and ``restore`` set up and undo what
a scenario needs around its window (a second instance, receivers pointed elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from services.common.settings import SERVICES
from tools.chaos import infra
from tools.chaos.invariants import Fault
from tools.chaos.receiver import Mode

if TYPE_CHECKING:
    from tools.chaos.runner import Platform
    from tools.supervisor import Program

log = logging.getLogger("veilig.chaos")


@dataclass(frozen=True, slots=True)
class Profile:
    """How long things take; QUICK runs scenarios 1 and 2 in a few minutes."""

    name: str
    load_seconds: dict[str, float]  # per scenario: the open-loop window
    settle_seconds: float  # after the load: how long the system may take to deliver it all
    quiet_seconds: float  # after settling: look a little longer for late duplicates
    # Settling gives up early when nothing at all moved for this long (no event, no
    # delivery): what is missing then stays missing. Longer than notify's retry backoff
    # after these faults (5 s doubling, a few attempts).
    stall_seconds: float
    retry_for: float  # how long the partner retries a report before giving up
    postgres_down: float = 10.0
    broker_down: float = 20.0
    receiver_fault: float = 25.0  # how long a receiver misbehaves
    cluster_down: float = 15.0  # how long a killed cluster node stays down

    def window(self, scenario: str) -> float:
        return self.load_seconds.get(scenario, 60.0)


QUICK = Profile(
    name="quick",
    load_seconds={"kill": 60, "postgres": 50, "broker": 50, "scale": 60, "cluster": 120},
    settle_seconds=240,
    quiet_seconds=5,
    stall_seconds=120,
    retry_for=120,
)
FULL = Profile(
    name="full",
    load_seconds={
        "kill": 120,
        "postgres": 60,
        "broker": 60,
        "receiver-5xx": 40,
        "receiver-timeout": 40,
        "receiver-slow": 40,
        "receiver-410": 40,
        "scale": 90,
        "cluster": 150,
    },
    settle_seconds=600,
    quiet_seconds=15,
    stall_seconds=180,
    retry_for=180,
)


@dataclass
class Chaos:
    """What a fault works with."""

    platform: Platform
    profile: Profile
    seconds: float  # the load window
    began: float  # monotonic start of the load window
    rng: random.Random
    notes: list[str] = field(default_factory=list)

    async def at(self, fraction: float) -> None:
        """Sleep until ``fraction`` of the load window has passed."""
        delay = self.began + fraction * self.seconds - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def note(self, text: str) -> None:
        log.info("%s", text)
        self.notes.append(f"{time.strftime('%H:%M:%S')} {text}")


Inject = Callable[[Chaos], Awaitable[list[Fault]]]
Hook = Callable[["Platform"], Awaitable[None]]


async def _nothing(platform: Platform) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    inject: Inject
    prepare: Hook = _nothing
    restore: Hook = _nothing
    cluster: bool = False  # runs against the 3-broker cluster


async def kill(chaos: Chaos, program: Program) -> bool:
    """SIGKILL a service once it is up (live); False when it never came up to be killed."""
    if not await chaos.platform.wait_live(program, 60):
        chaos.note(f"{program.name} was not live within 60 s: not killed")
        return False
    process = program.process
    assert process is not None
    try:
        process.send_signal(signal.SIGKILL)
    except ProcessLookupError:  # it died on its own meanwhile
        chaos.note(f"{program.name} (pid {process.pid}) was gone before the SIGKILL")
        return False
    chaos.note(f"SIGKILL {program.name} (pid {process.pid})")
    return True


# --- 1. SIGKILL --------------------------------------------------------------------------------


async def kill_services(chaos: Chaos) -> list[Fault]:
    """Each service SIGKILLed three times at random moments, and each urgent lane's process
    once; the supervisor restarts it. A service is killed again only once it is back (live),
    so every kill hits a working process mid-stream."""
    lanes = [p.name for p in chaos.platform.supervisor.programs if p.name.endswith("-urgent")]
    victims = [s for s in SERVICES for _ in range(3)] + lanes
    chaos.rng.shuffle(victims)
    moments = sorted(chaos.rng.uniform(0.08, 0.85) for _ in victims)
    faults = []
    for moment, victim in zip(moments, victims, strict=True):
        await chaos.at(moment)
        program = chaos.platform.program(victim)
        if await kill(chaos, program):
            now = time.time()
            faults.append(Fault(now, now, f"SIGKILL {victim}"))
    return faults


# --- 2. PostgreSQL away ---------------------------------------------------------------------


async def stop_postgres(chaos: Chaos) -> list[Fault]:
    faults = []
    for moment in (0.12, 0.55):
        await chaos.at(moment)
        start = time.time()
        await infra.postgres("down")
        chaos.note(f"PostgreSQL stopped for {chaos.profile.postgres_down:.0f}s")
        await asyncio.sleep(chaos.profile.postgres_down)
        await infra.postgres("up")
        chaos.note("PostgreSQL started")
        faults.append(Fault(start, time.time(), "PostgreSQL stopped"))
    return faults


# --- 3. The broker away -----------------------------------------------------------------------


async def stop_broker(chaos: Chaos) -> list[Fault]:
    await chaos.at(0.15)
    start = time.time()
    await infra.kafka("down")
    chaos.note(f"broker stopped for {chaos.profile.broker_down:.0f}s")
    await asyncio.sleep(chaos.profile.broker_down)
    await infra.kafka("up")
    chaos.note("broker started")
    return [Fault(start, time.time(), "broker stopped")]


# --- 4. Receivers misbehaving -----------------------------------------------------------------


def receiver_fault(mode: Mode) -> Inject:
    """Every recipient's webhook answers ``mode`` for a while, then works again. After a 410
    the platform disables the webhook and falls back to e-mail; an operator then sets the
    channel again, which enables it."""

    async def inject(chaos: Chaos) -> list[Fault]:
        await chaos.at(0.1)
        start = time.time()
        await chaos.platform.receiver_mode(mode)
        chaos.note(f"receiver answers {mode} for {chaos.profile.receiver_fault:.0f}s")
        await asyncio.sleep(chaos.profile.receiver_fault)
        await chaos.platform.receiver_mode("ok")
        if mode == "gone":
            await chaos.platform.point_recipients(at_receiver=True)
            chaos.note("operator set the webhooks again")
        chaos.note("receiver answers ok")
        return [Fault(start, time.time(), f"receiver {mode}")]

    return inject


async def _to_receiver(platform: Platform) -> None:
    await platform.point_recipients(at_receiver=True)


async def _to_receiver_with_mail(platform: Platform) -> None:
    await platform.point_recipients(at_receiver=True, email=True)


async def _to_standins(platform: Platform) -> None:
    await platform.receiver_mode("ok")
    await platform.point_recipients(at_receiver=False)


# --- 5. Two instances in one group ------------------------------------------------------------


async def _scale_out(platform: Platform) -> None:
    await platform.start_second_instances()


async def _scale_in(platform: Platform) -> None:
    await platform.stop_second_instances()


async def kill_one_of_two(chaos: Chaos) -> list[Fault]:
    """Triage and notify run twice in their consumer groups; one of each is SIGKILLed (and
    restarted): the group rebalances twice per kill."""
    faults = []
    for moment, service in ((0.3, "triage"), (0.6, "notify")):
        await chaos.at(moment)
        program = chaos.rng.choice(chaos.platform.instances(service))
        if await kill(chaos, program):
            now = time.time()
            faults.append(Fault(now, now, f"SIGKILL {program.name} (one of two)"))
    return faults


# --- 6. The 3-broker cluster ------------------------------------------------------------------


async def kill_cluster_nodes(chaos: Chaos) -> list[Fault]:
    """One broker SIGKILLed under load and brought back; then the active controller."""
    faults = []
    await chaos.at(0.1)
    leader = await infra.cluster_leader()
    victim = chaos.rng.choice([n for n in (1, 2, 3) if n != leader])
    start = time.time()
    await infra.cluster("kill", str(victim))
    chaos.note(f"SIGKILL broker {victim} (controller leader is {leader})")
    await asyncio.sleep(chaos.profile.cluster_down)
    await infra.cluster("start", str(victim))
    chaos.note(f"broker {victim} started")
    faults.append(Fault(start, time.time(), f"broker {victim} killed"))
    await asyncio.sleep(10)  # its replicas catch up and rejoin the ISR
    leader = await infra.cluster_leader()
    start = time.time()
    await infra.cluster("kill", str(leader))
    chaos.note(f"SIGKILL active controller {leader}")
    await asyncio.sleep(chaos.profile.cluster_down)
    await infra.cluster("start", str(leader))
    chaos.note(f"node {leader} started; controller is now {await infra.cluster_leader()}")
    faults.append(Fault(start, time.time(), f"active controller {leader} killed"))
    return faults


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("kill", "1 SIGKILL each service 3 times", kill_services),
    Scenario("postgres", "2 PostgreSQL stopped 10 s, twice", stop_postgres),
    Scenario("broker", "3 broker stopped 20 s", stop_broker),
    Scenario(
        "receiver-5xx",
        "4 receivers answer 50 % 5xx",
        receiver_fault("flaky"),
        _to_receiver,
        _to_standins,
    ),
    Scenario(
        "receiver-timeout",
        "4 receivers time out",
        receiver_fault("timeout"),
        _to_receiver,
        _to_standins,
    ),
    Scenario(
        "receiver-slow",
        "4 receivers answer in 5 s",
        receiver_fault("slow"),
        _to_receiver,
        _to_standins,
    ),
    Scenario(
        "receiver-410",
        "4 receiver answers 410 (mail fallback)",
        receiver_fault("gone"),
        _to_receiver_with_mail,
        _to_standins,
    ),
    Scenario(
        "scale",
        "5 two triage + two notify, one of each killed",
        kill_one_of_two,
        _scale_out,
        _scale_in,
    ),
    Scenario(
        "cluster",
        "6 3-broker cluster: broker, then controller killed",
        kill_cluster_nodes,
        cluster=True,
    ),
)
QUICK_SCENARIOS = ("kill", "postgres")
GROUPS = {"receivers": ("receiver-5xx", "receiver-timeout", "receiver-slow", "receiver-410")}


def select(only: list[str] | None, quick: bool) -> list[Scenario]:
    """The scenarios to run, in order; ``only`` names scenarios (or ``receivers``)."""
    by_name = {s.name: s for s in SCENARIOS}
    if not only:
        wanted = set(QUICK_SCENARIOS if quick else by_name)
    else:
        wanted = set()
        for name in only:
            for part in name.split(","):
                if part in GROUPS:
                    wanted.update(GROUPS[part])
                elif part in by_name:
                    wanted.add(part)
                else:
                    known = ", ".join([*by_name, *GROUPS])
                    raise ValueError(f"no scenario {part!r} (known: {known})")
    return [s for s in SCENARIOS if s.name in wanted]


async def set_receiver_mode(url: str, mode: Mode) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        (await client.put(f"{url}/mode/{mode}")).raise_for_status()
