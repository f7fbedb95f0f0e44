"""What the benchmark watches besides the load generator's own answers.

- Deliveries: the first arrival of each incident at the stand-in webhook receiver, read in
  the background from its JSON-lines file (local run) or its ``/deliveries`` endpoint.
- Counted: when analytics projected a report. ``analytics.inbox.processed_at`` is the start
  of the transaction that projected the ``incident.reported`` event; one query after a step
  gives the exact times, so nothing needs polling while the load runs.
- CPU seconds and peak memory of a process and its children, from ``/proc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

log = logging.getLogger("veilig.bench")


class Deliveries:
    """Incident id -> when its first delivery reached the receiver (wall clock)."""

    def __init__(self, *, file: Path | None = None, url: str | None = None) -> None:
        if (file is None) == (url is None):
            raise ValueError("give the receiver's file or its /deliveries URL")
        self.first: dict[str, float] = {}
        self._file = file
        self._url = url
        # Only what arrives from now on: the file and the receiver keep earlier runs too.
        self._offset = file.stat().st_size if file is not None and file.exists() else 0
        self._partial = b""
        self._since = time.time()

    async def run(self, stopping: asyncio.Event, every: float = 0.25) -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            while not stopping.is_set():
                try:
                    self._add(self._read_file() if self._url is None else await self._get(client))
                except (OSError, httpx.HTTPError, ValueError) as exc:
                    log.warning("reading deliveries failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), every)

    def _read_file(self) -> list[dict[str, Any]]:
        assert self._file is not None
        if not self._file.exists():
            return []
        with self._file.open("rb") as f:
            f.seek(self._offset)
            data = self._partial + f.read()
        self._offset += len(data) - len(self._partial)
        *lines, self._partial = data.split(b"\n")
        return [json.loads(line) for line in lines if line]

    async def _get(self, client: httpx.AsyncClient) -> list[dict[str, Any]]:
        response = await client.get(str(self._url), params={"since": self._since})
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        self._since = max([self._since, *(i["received_at"] for i in items)])
        return items

    def _add(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            if item.get("incident_id"):
                self.first.setdefault(item["incident_id"], item["received_at"])


_COUNTED = """
SELECT e.incident_id::text, extract(epoch FROM i.processed_at)::float8
FROM analytics.events e JOIN analytics.inbox i ON i.event_id = e.event_id
WHERE e.incident_id = ANY($1::uuid[]) AND e.type = 'incident.reported'
"""


async def counted(pool: asyncpg.Pool, ids: Collection[str]) -> dict[str, float]:
    """Incident id -> when analytics counted its report, for those of ``ids`` it has."""
    if not ids:
        return {}
    return {row[0]: row[1] for row in await pool.fetch(_COUNTED, list(ids))}


_HOPS = """
SELECT incident_id::text, extract(epoch FROM received_at)::float8,
       extract(epoch FROM triaged_at)::float8
FROM analytics.incident_facts WHERE incident_id = ANY($1::uuid[])
"""


async def hops(pool: asyncpg.Pool, ids: Collection[str]) -> dict[str, tuple[float, ...]]:
    """Incident id -> when intake recorded it and triage decided it (the events' own times, as
    analytics projected them): where a report waited."""
    return {row[0]: tuple(row[1:]) for row in await pool.fetch(_HOPS, list(ids))}


@dataclass
class Arrivals:
    delivered: dict[str, float]
    counted: dict[str, float]


async def wait_for(
    ids: Collection[str], deliveries: Deliveries, pool: asyncpg.Pool, seconds: float
) -> Arrivals:
    """When each of ``ids`` was delivered and counted, waiting up to ``seconds`` for all."""
    deadline = time.monotonic() + seconds
    found: dict[str, float] = {}
    while True:
        found |= await counted(pool, [i for i in ids if i not in found])
        delivered = {i: deliveries.first[i] for i in ids if i in deliveries.first}
        if (len(found) == len(delivered) == len(ids)) or time.monotonic() >= deadline:
            return Arrivals(delivered=delivered, counted=found)
        await asyncio.sleep(0.5)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_stat(text: str) -> tuple[int, int]:
    """(parent pid, CPU ticks) from ``/proc/<pid>/stat``: user + system time of the process
    and of its children it has waited for. The name in parentheses may hold spaces."""
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def parse_peak_kb(status: str) -> int:
    """VmHWM (peak resident memory, kB) from ``/proc/<pid>/status``; 0 for a zombie."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _tree(root: int) -> list[int]:
    """``root`` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid, _ = parse_stat((entry / "stat").read_text())
                parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_seconds: float
    peak_kb: int  # of the largest process of the tree (a sum would count shared memory twice)


def usage(pid: int) -> Usage:
    """CPU seconds so far of ``pid`` with its children, and peak memory."""
    ticks = peak = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError):  # it ended meanwhile
            ticks += parse_stat(Path(f"/proc/{member}/stat").read_text())[1]
            peak = max(peak, parse_peak_kb(Path(f"/proc/{member}/status").read_text()))
    return Usage(cpu_seconds=ticks / CLOCK_TICKS, peak_kb=peak)


def reset_peaks(pid: int) -> bool:
    """Reset VmHWM of ``pid``'s tree (``clear_refs`` 5), so that the peak is the scenario's;
    False where the kernel or the permissions don't allow it."""
    try:
        for member in _tree(pid):
            Path(f"/proc/{member}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
