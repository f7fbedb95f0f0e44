"""Supervised background loops and what readiness is made of.

A service's background work (outbox relay, delivery worker, escalation timers, monitors) runs
as :class:`Background` bodies under :func:`supervise`: whatever a body raises is logged with
its cause, counted, waited out with capped backoff, and the body is started again. A body
calls ``loop.beat()`` at least every ``stale_after`` seconds; a loop that stops beating (hung
on a call without a timeout, or dead) is not alive.

:class:`Health` is the one place readiness is decided: database and broker reachable, every
loop alive, and every lag check (oldest unpublished outbox row, oldest due delivery) under its
threshold. ``/health/ready`` and the metrics both read it, so what pages ops and what a load
balancer sees cannot disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from services.common.faults import Backoff, describe, is_transient

if TYPE_CHECKING:
    from services.common.runtime import Runtime

log = logging.getLogger(__name__)

LOOP_UP = Gauge(
    "veilig_background_loop_up",
    "1 while a background loop is running and beating, 0 otherwise",
    ["service", "loop"],
)
LOOP_HEARTBEAT_AGE = Gauge(
    "veilig_background_loop_heartbeat_age_seconds",
    "Seconds since a background loop last showed it is making progress",
    ["service", "loop"],
)
LOOP_RESTARTS = Counter(
    "veilig_background_loop_restarts_total",
    "Times a background loop failed and was started again",
    ["service", "loop", "transient"],
)
LAG = Gauge(
    "veilig_lag_seconds",
    "Age of the oldest piece of work a loop owes (e.g. outbox row, due delivery)",
    ["service", "check"],
)
LAG_OK = Gauge(
    "veilig_lag_ok",
    "1 while a lag check is under its threshold (part of readiness)",
    ["service", "check"],
)


@dataclass
class Loop:
    """One supervised loop's liveness, as readiness and the metrics see it."""

    service: str
    name: str
    stale_after: float
    last_beat: float = field(default_factory=time.monotonic)
    running: bool = False
    restarts: int = 0
    last_error: str | None = None

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def age(self) -> float:
        return time.monotonic() - self.last_beat

    def alive(self) -> bool:
        return self.running and self.age() <= self.stale_after

    def snapshot(self) -> dict[str, Any]:
        return {
            "alive": self.alive(),
            "heartbeat_age_seconds": round(self.age(), 1),
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


# A lag probe returns the age in seconds of the oldest work owed (0 when there is none).
LagProbe = Callable[["Runtime"], Awaitable[float]]


@dataclass(frozen=True)
class LagCheck:
    name: str
    probe: LagProbe
    threshold_seconds: float


@dataclass(frozen=True)
class Background:
    """A long-running body: started by the service, supervised, stopped with the service."""

    name: str
    body: Callable[[Runtime, Loop], Awaitable[None]]
    # A body beats at least this often while healthy (idle waits included).
    stale_after: float = 30.0


class Health:
    """The loops and lag checks of one service process."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.loops: dict[str, Loop] = {}
        self.checks: list[LagCheck] = []

    def loop(self, name: str, stale_after: float) -> Loop:
        loop = self.loops[name] = Loop(self.service, name, stale_after)
        LOOP_UP.labels(self.service, name).set_function(lambda: float(loop.alive()))
        LOOP_HEARTBEAT_AGE.labels(self.service, name).set_function(loop.age)
        return loop

    def add_check(self, check: LagCheck) -> None:
        self.checks.append(check)

    async def lags(self, rt: Runtime) -> dict[str, dict[str, Any]]:
        """Run every lag check; a probe that fails (database away) counts as not ok."""
        out: dict[str, dict[str, Any]] = {}
        for check in self.checks:
            try:
                age = await asyncio.wait_for(check.probe(rt), timeout=2.0)
            except Exception as exc:
                out[check.name] = {"ok": False, "error": describe(exc)}
                LAG_OK.labels(self.service, check.name).set(0)
                continue
            ok = age <= check.threshold_seconds
            LAG.labels(self.service, check.name).set(age)
            LAG_OK.labels(self.service, check.name).set(float(ok))
            out[check.name] = {
                "ok": ok,
                "seconds": round(age, 1),
                "threshold_seconds": check.threshold_seconds,
            }
        return out


async def supervise(rt: Runtime, background: Background) -> None:
    """Run ``background`` until the service stops, starting it again whenever it fails."""
    loop = rt.health.loop(background.name, background.stale_after)
    backoff = Backoff(first=0.5, cap=30.0)
    while not rt.stopping.is_set():
        loop.running = True
        loop.beat()
        started = time.monotonic()
        try:
            await background.body(rt, loop)
        except asyncio.CancelledError:
            loop.running = False
            raise
        except Exception as exc:
            transient = is_transient(exc)
            if transient:
                await fresh_connections(rt)
            loop.restarts += 1
            loop.last_error = describe(exc)
            LOOP_RESTARTS.labels(rt.health.service, background.name, str(transient).lower()).inc()
            if time.monotonic() - started > 60:
                backoff.reset()  # it ran well for a while: this is a new incident
            delay = backoff.next()
            log.error(
                "background loop failed; starting it again",
                exc_info=not transient,
                extra={
                    "loop": background.name,
                    "cause": loop.last_error,
                    "transient": transient,
                    "retry_in_seconds": delay,
                },
            )
            await wait_beating(rt.stopping, delay, loop)
        else:
            if not rt.stopping.is_set():
                # A body returns only when the service stops; anything else is a bug.
                loop.last_error = "returned before the service stopped"
                log.error("background loop returned early", extra={"loop": background.name})
                await wait_beating(rt.stopping, backoff.next(), loop)
    loop.running = False


async def fresh_connections(rt: Runtime) -> None:
    """After PostgreSQL restarted, every pooled connection is dead, and each would fail one
    more try (and double the backoff) before the pool replaces it: replace them all now."""
    with contextlib.suppress(Exception):
        await rt.pool.expire_connections()


async def wait_beating(stopping: asyncio.Event, seconds: float, loop: Loop) -> None:
    """Wait ``seconds`` or until the service stops, beating meanwhile: a loop waiting out a
    failure, or idle until its next run, is doing what it should and stays alive."""
    deadline = time.monotonic() + seconds
    while not stopping.is_set() and (left := deadline - time.monotonic()) > 0:
        loop.beat()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=min(left, 1.0))
