"""The `make run` process manager with real child processes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tools.supervisor import Program, Supervisor


async def test_a_program_that_exits_is_restarted_with_backoff_and_logged(
    tmp_path: Path, caplog
) -> None:
    counter = tmp_path / "starts"
    crash = Program(
        name="crashy",
        argv=[
            sys.executable,
            "-c",
            f"open({str(counter)!r}, 'a').write('x'); raise SystemExit(3)",
        ],
    )
    supervisor = Supervisor([crash], log_dir=str(tmp_path), backoff_initial=0.05)
    await supervisor.start()
    for _ in range(200):
        if crash.restarts >= 3:
            break
        await asyncio.sleep(0.05)
    await supervisor.stop()
    assert crash.restarts >= 3
    assert len(counter.read_text()) >= 3
    assert "crashy exited with 3; restart #1" in caplog.text


async def test_stop_terminates_running_programs(tmp_path: Path) -> None:
    sleeper = Program(name="sleeper", argv=[sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor = Supervisor([sleeper], log_dir=str(tmp_path), grace_seconds=5)
    await supervisor.start()
    assert sleeper.process is not None and sleeper.process.returncode is None
    await supervisor.stop()
    assert sleeper.process.returncode is not None
    assert sleeper.restarts == 0


async def test_a_bulk_program_runs_in_the_idle_scheduling_class(tmp_path: Path) -> None:
    script = "import os, time; print(os.sched_getscheduler(0), flush=True); time.sleep(60)"
    programs = [
        Program(name=name, argv=[sys.executable, "-c", script], bulk=bulk)
        for name, bulk in (("bulk", True), ("urgent", False))
    ]
    supervisor = Supervisor(programs, log_dir=str(tmp_path), grace_seconds=5)
    await supervisor.start()
    try:
        for _ in range(200):
            logs = [tmp_path / f"{p.name}.log" for p in programs]
            if all(log.exists() and log.read_text().strip() for log in logs):
                break
            await asyncio.sleep(0.05)
    finally:
        await supervisor.stop()
    policies = {p.name: int((tmp_path / f"{p.name}.log").read_text().split()[0]) for p in programs}
    assert policies == {"bulk": os.SCHED_IDLE, "urgent": os.SCHED_OTHER}
