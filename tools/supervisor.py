"""A small process manager for `make run`: the four services as separate processes,
restarted with exponential backoff when one exits or is killed, every restart logged, and
all of them stopped cleanly (SIGTERM, then SIGKILL after a grace period) on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

log = logging.getLogger("veilig.supervisor")


@dataclass
class Program:
    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    health_url: str | None = None
    bulk: bool = False
    """Bulk work: runs under ``SCHED_IDLE``, so it gets a core only when nothing else wants it
    (decision 0006: the urgent lane, intake, the broker and PostgreSQL come first)."""
    restarts: int = 0
    process: asyncio.subprocess.Process | None = None


def _idle() -> None:
    """In a bulk program's process, before it starts: the lowest scheduling class."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


class Supervisor:
    def __init__(
        self,
        programs: Sequence[Program],
        *,
        log_dir: str,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        grace_seconds: float = 20.0,
    ) -> None:
        self.programs = list(programs)
        self.log_dir = log_dir
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.grace_seconds = grace_seconds
        self.stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        for program in self.programs:
            await self._spawn(program)
            self._watchers.append(asyncio.create_task(self._watch(program)))

    async def _spawn(self, program: Program) -> None:
        out = open(os.path.join(self.log_dir, f"{program.name}.log"), "ab")  # noqa: SIM115, ASYNC230 (a local log file)
        try:
            program.process = await asyncio.create_subprocess_exec(
                *program.argv,
                env={**os.environ, **program.env},
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                # Own process group: Ctrl-C reaches the supervisor, which stops the children
                # in order instead of all of them dying mid-message at once.
                start_new_session=True,
                preexec_fn=_idle if program.bulk else None,
            )
        finally:
            out.close()
        log.info("started %s (pid %s)", program.name, program.process.pid)

    async def _watch(self, program: Program) -> None:
        backoff = self.backoff_initial
        while not self.stopping.is_set():
            assert program.process is not None
            started = time.monotonic()
            code = await program.process.wait()
            if self.stopping.is_set():
                return
            if time.monotonic() - started > 60:
                backoff = self.backoff_initial  # it ran fine for a while: start over
            program.restarts += 1
            log.warning(
                "%s exited with %s; restart #%d in %.1fs (log: %s/%s.log)",
                program.name,
                code,
                program.restarts,
                backoff,
                self.log_dir,
                program.name,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), backoff)
            if self.stopping.is_set():
                return
            backoff = min(backoff * 2, self.backoff_max)
            await self._spawn(program)

    async def wait_ready(self, within: float = 120.0) -> list[str]:
        """Wait until every program with a health URL answers ready; returns the laggards."""
        deadline = time.monotonic() + within
        pending = [p for p in self.programs if p.health_url]
        async with httpx.AsyncClient(timeout=2.0) as client:
            while pending and time.monotonic() < deadline:
                still: list[Program] = []
                for program in pending:
                    try:
                        ok = (await client.get(program.health_url or "")).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if not ok:
                        still.append(program)
                pending = still
                if pending:
                    await asyncio.sleep(0.5)
        return [p.name for p in pending]

    async def stop(self) -> None:
        self.stopping.set()
        running = [p for p in self.programs if p.process and p.process.returncode is None]
        for program in running:
            assert program.process is not None
            with contextlib.suppress(ProcessLookupError):
                program.process.send_signal(signal.SIGTERM)
        for program in running:
            assert program.process is not None
            try:
                await asyncio.wait_for(program.process.wait(), self.grace_seconds)
            except TimeoutError:
                log.warning(
                    "%s did not stop in %.0fs, killing it", program.name, self.grace_seconds
                )
                with contextlib.suppress(ProcessLookupError):
                    program.process.kill()
                await program.process.wait()
            log.info("stopped %s", program.name)
        for watcher in self._watchers:
            watcher.cancel()


def service_program(name: str, port: int, host: str) -> Program:
    return Program(
        name=name,
        argv=[sys.executable, "-m", f"services.{name}"],
        health_url=f"http://{host}:{port}/health/ready",
    )
