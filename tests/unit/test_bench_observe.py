"""What the benchmark reads: /proc figures, the stand-in receiver's file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tools.bench.observe import Deliveries, parse_peak_kb, parse_stat, usage

# /proc/<pid>/stat of a process whose name has a space and a parenthesis in it.
STAT = (
    "4242 (python (x) y) S 17 4242 4242 0 -1 4194560 1234 0 0 0 "
    "150 30 7 3 20 0 5 0 100 400000000 30000 18446744073709551615"
)


def test_stat_gives_the_parent_and_user_plus_system_time_with_waited_children() -> None:
    assert parse_stat(STAT) == (17, 150 + 30 + 7 + 3)


def test_peak_memory_is_vmhwm() -> None:
    status = "Name:\tpython\nVmPeak:\t  500000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n"
    assert parse_peak_kb(status) == 123456
    assert parse_peak_kb("Name:\tzombie\nState:\tZ (zombie)\n") == 0


def test_usage_of_this_process() -> None:
    mine = usage(os.getpid())
    assert mine.cpu_seconds > 0 and mine.peak_kb > 1000


def test_deliveries_are_read_from_where_the_file_was_and_lines_may_be_half_written(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "webhooks.jsonl"
    inbox.write_text(json.dumps({"received_at": 1.0, "incident_id": "old"}) + "\n")
    deliveries = Deliveries(file=inbox)

    line = json.dumps({"received_at": 2.0, "incident_id": "a", "body": "x" * 100}) + "\n"
    with inbox.open("a") as out:
        out.write(line + line[:40])  # the receiver is in the middle of its next line
    deliveries._add(deliveries._read_file())
    assert deliveries.first == {"a": 2.0}

    with inbox.open("a") as out:
        out.write(line[40:])
        out.write(json.dumps({"received_at": 4.0, "incident_id": "c"}) + "\n")
        out.write(json.dumps({"received_at": 5.0, "incident_id": None}) + "\n")  # mail-like
    deliveries._add(deliveries._read_file())
    # "a" arrived twice (a retry): its first arrival counts.
    assert deliveries.first == {"a": 2.0, "c": 4.0}


def test_deliveries_need_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file or its /deliveries URL"):
        Deliveries()
    with pytest.raises(ValueError, match="file or its /deliveries URL"):
        Deliveries(file=tmp_path / "x", url="http://127.0.0.1:8090/deliveries")
