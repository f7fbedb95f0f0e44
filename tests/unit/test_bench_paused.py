"""The benchmark's measure of intake alone stops the processes downstream and always lets
them go on, also when the measure fails."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.bench.scenarios import paused


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_paused_stops_and_continues_even_on_failure() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(RuntimeError), paused([child.pid]):
            time.sleep(0.2)
            assert state(child.pid) == "T"  # stopped
            raise RuntimeError("the measure failed")
        assert state(child.pid) != "T"  # continued
    finally:
        child.kill()
        child.wait()


def test_a_process_gone_meanwhile_is_left_alone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with paused([child.pid]):
        pass
