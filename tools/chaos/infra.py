"""The local infrastructure's own scripts, called as an operator would call them.

``deploy/local/postgres.sh``, ``kafka.sh`` and ``kafka-cluster.sh`` take the run folder and
ports from the environment (``RUN_DIR``, ``PGPORT``, ``KAFKA_PORT``, ``KAFKA_CLUSTER_PORT``),
which `make chaos` sets, so the faults hit this run's PostgreSQL and broker and nothing else.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "deploy" / "local"


class InfraError(RuntimeError):
    """A script failed; the message ends with its output."""


async def script(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``deploy/local/<name> args``; its stdout and stderr, or InfraError."""
    process = await asyncio.create_subprocess_exec(
        str(SCRIPTS / name),
        *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise InfraError(f"{name} {' '.join(args)} exited {process.returncode}: {text[-1500:]}")
    return text


async def postgres(command: str) -> str:
    return await script("postgres.sh", command)


async def kafka(command: str) -> str:
    return await script("kafka.sh", command)


async def cluster(*args: str) -> str:
    return await script("kafka-cluster.sh", *args)


async def cluster_leader() -> int:
    """The node id of the cluster's active controller."""
    return int((await cluster("leader")).strip().splitlines()[-1])


async def cluster_bootstrap() -> str:
    return (await cluster("bootstrap")).strip().splitlines()[-1]
