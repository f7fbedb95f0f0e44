"""The peer `make bench` measures the platform against: Prometheus Alertmanager from Debian's
``prometheus-alertmanager`` package (the binary unpacked into ``.venv/bin`` by
``deploy/prometheus/install-tools.sh``), every alert its own notification, delivered to the
same stand-in receiver and driven by the same open-loop generator.

Alertmanager keeps alerts in memory and signs nothing; the platform is durable, exactly-once
and minimises per recipient. The comparison says what that costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

PORT = int(os.environ.get("BENCH_ALERTMANAGER_PORT", "9193"))

# group_by the alert's own label and no waiting: each alert becomes one notification at once,
# as each report is one delivery on the platform.
CONFIG = """\
route:
  receiver: standin
  group_by: [incident_id]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 24h
receivers:
  - name: standin
    webhook_configs:
      - url: {url}
        send_resolved: false
"""


def binary() -> str | None:
    """Alertmanager's executable: next to this Python (the venv), else on the PATH."""
    beside = Path(sys.executable).with_name("prometheus-alertmanager")
    if beside.exists():
        return str(beside)
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@contextlib.asynccontextmanager
async def alertmanager(run_dir: Path, receiver_url: str) -> AsyncIterator[str | None]:
    """A fresh Alertmanager posting to ``receiver_url`` (its base URL; None when the binary
    is missing), stopped afterwards."""
    exe = binary()
    if exe is None:
        yield None
        return
    folder = run_dir / "alertmanager"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    config = folder / "alertmanager.yml"
    config.write_text(CONFIG.format(url=receiver_url))
    url = f"http://127.0.0.1:{PORT}"
    with (folder / "alertmanager.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            exe,
            f"--config.file={config}",
            f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{PORT}",
            "--cluster.listen-address=",  # no gossip: a single instance
            stdout=log,
            stderr=log,
        )
    try:
        await _ready(url, process)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _ready(url: str, process: asyncio.subprocess.Process, within: float = 30.0) -> None:
    async with httpx.AsyncClient(timeout=2.0) as client:
        for _ in range(int(within * 4)):
            if process.returncode is not None:
                raise RuntimeError(f"Alertmanager exited ({process.returncode}) at start")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/-/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.25)
    raise RuntimeError(f"Alertmanager did not get ready within {within:.0f}s")
