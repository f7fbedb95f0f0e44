"""The consumer-lag alert against the running services, with a real Prometheus (issue #16).

    make up && .venv/bin/python deploy/prometheus/try_lag_alert.py

Starts the four services and the stand-in receiver on the local infrastructure, a Prometheus
(Debian's binary, unpacked into .venv/bin by `make ops-tools`) scraping them with the rules of
deploy/prometheus/rules/, and a partner posting 20 reports a second. Then notify is stopped for a
while and started again. Every few seconds it prints the value of VeiligConsumerLagGrowing's
expression and the state Prometheus gives the alert. The real rule waits 10 minutes (`for: 10m`,
growth over `[10m]`); so that a run takes minutes, the same expression is also evaluated as
`VeiligConsumerLagGrowingDemo` with `for: 30s` and growth over `[1m]`. Both appear in the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from services.common.settings import SERVICES, get_settings
from services.notify.webhooks import generate_secret
from tools import demo

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules/veilig.rules.yml"
RUN = Path(os.environ.get("RUN_DIR", ROOT / ".run")) / "try-lag-alert"
PROMETHEUS_PORT = 9190
RATE = 20.0  # reports a second
PHASES = (("notify running", 40.0), ("notify stopped", 200.0), ("notify started again", 90.0))
LAG = 'sum by (consumergroup) (veilig_kafka_consumer_lag_messages{consumergroup=~"veilig\\\\..+"})'


def demo_rules() -> dict[str, object]:
    """The real rule, and a copy that fires within minutes (shorter for and growth window)."""
    rules = yaml.safe_load(RULES.read_text())
    real = next(
        r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == "VeiligConsumerLagGrowing"
    )
    fast = dict(real)
    fast["alert"] = "VeiligConsumerLagGrowingDemo"
    fast["expr"] = re.sub(r"\[10m\]", "[1m]", real["expr"])
    fast["for"] = "30s"
    return {"groups": [{"name": "demo", "interval": "5s", "rules": [fast]}]}


def config() -> str:
    targets = [f"127.0.0.1:{get_settings().port_of(s)}" for s in SERVICES]
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "2s", "evaluation_interval": "5s"},
            "rule_files": [str(RULES), str(RUN / "demo.rules.yml")],
            "scrape_configs": [
                {"job_name": "veilig-haarlem", "static_configs": [{"targets": targets}]}
            ],
        }
    )


def start(argv: list[str], log: str, **env: str) -> subprocess.Popen[bytes]:
    out = (RUN / log).open("wb")
    return subprocess.Popen(argv, stdout=out, stderr=out, env={**os.environ, **env})


async def wait_ready(client: httpx.AsyncClient, url: str, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(url)).status_code == 200:
                return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} not ready within {within:.0f}s")


async def main() -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    (RUN / "demo.rules.yml").write_text(yaml.safe_dump(demo_rules()))
    (RUN / "prometheus.yml").write_text(config())
    settings = get_settings()
    secret = generate_secret()
    python = sys.executable
    services = {s: start([python, "-m", f"services.{s}"], f"{s}.log") for s in SERVICES}
    standins = start(
        [python, "-m", "tools.standins"], "standins.log", STANDIN_SECRET=secret, RUN_DIR=str(RUN)
    )
    prometheus = start(
        [
            str(Path(python).with_name("prometheus")),
            f"--config.file={RUN / 'prometheus.yml'}",
            f"--storage.tsdb.path={RUN / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
        ],
        "prometheus.log",
    )
    api = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for s in SERVICES:
                await wait_ready(client, f"http://127.0.0.1:{settings.port_of(s)}/health/ready")
            await wait_ready(client, f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready")
            await demo.point_recipients_at_standins(settings, secret)
            keys = await demo.partner_keys(
                settings,
                {"lagdemo": {"name": "lag demo", "kind": "other", "rate_per_minute": 10**6}},
                {},
            )
            load = asyncio.create_task(post_reports(client, keys["lagdemo"]))
            print("| t (s) | phase | lag of notify.main | real rule | demo rule (for 30s) |")
            print("| --- | --- | --- | --- | --- |")
            began = time.monotonic()
            for phase, seconds in PHASES:
                if phase == "notify stopped":
                    services["notify"].send_signal(signal.SIGTERM)
                    services["notify"].wait(30)
                elif phase == "notify started again":
                    services["notify"] = start([python, "-m", "services.notify"], "notify.log")
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    await asyncio.sleep(10)
                    lag = await query(client, api, LAG)
                    states = await alert_states(client, api)
                    print(
                        f"| {time.monotonic() - began:.0f} | {phase} | "
                        f"{lag.get('veilig.notify.main', 0):.0f} | "
                        f"{states.get('VeiligConsumerLagGrowing', 'inactive')} | "
                        f"{states.get('VeiligConsumerLagGrowingDemo', 'inactive')} |",
                        flush=True,
                    )
            load.cancel()
    finally:
        for process in (*services.values(), standins, prometheus):
            process.terminate()
        for process in (*services.values(), standins, prometheus):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(20)


async def post_reports(client: httpx.AsyncClient, key: str) -> None:
    url = f"http://127.0.0.1:{get_settings().intake_port}/v1/incidents"
    n = 0
    while True:
        body = {
            "external_id": f"lagdemo-{time.time_ns()}-{n}",
            "description": "Graffiti op de gevel van het buurthuis gespoten",
            "location": {"buurt_code": "BU03920102"},
        }
        with contextlib.suppress(httpx.HTTPError):
            await client.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
        n += 1
        await asyncio.sleep(1 / RATE)


async def query(client: httpx.AsyncClient, api: str, expr: str) -> dict[str, float]:
    body = (await client.get(f"{api}/query", params={"query": expr})).json()
    return {
        r["metric"].get("consumergroup", ""): float(r["value"][1]) for r in body["data"]["result"]
    }


async def alert_states(client: httpx.AsyncClient, api: str) -> dict[str, str]:
    body = (await client.get(f"{api}/alerts")).json()
    return {a["labels"]["alertname"]: a["state"] for a in body["data"]["alerts"]}


if __name__ == "__main__":
    asyncio.run(main())
