"""A service runs as its own process: ready only with broker and database, metrics served,
migrations applied on start, and a clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.settings import SERVICES, Settings
from tools.ports import free_port

pytestmark = pytest.mark.integration


def service_env(settings: Settings, **ports: int) -> dict[str, str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "TOPIC_PREFIX": settings.topic_prefix,
        "CONSUMER_GROUP_PREFIX": settings.consumer_group_prefix,
    }
    env.update({f"{name.upper()}_PORT": str(port) for name, port in ports.items()})
    # /metrics has a port of its own per service: free ones, not the defaults `make run` uses.
    env.update({f"{name.upper()}_METRICS_PORT": str(free_port()) for name in SERVICES})
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes], within: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"service exited early with {proc.returncode}")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready within {within}s")


RELAYS = {"outbox-relay", "outbox-relay-urgent"}
LOOPS = {
    ("intake", "all"): RELAYS | {"key-cache", "status-callbacks"},
    ("triage", "all"): RELAYS | {"safety-plans", "privacy-purge", "workflow-timers"},
    ("notify", "all"): RELAYS
    | {"channel-cache", "delivery-worker", "escalation-timers", "nightlife-summary"},
    ("analytics", "all"): {"kafka-monitor"},
    # A process of the urgent lane alone: its relay, its deliveries, nothing of the bulk.
    ("intake", "urgent"): {"outbox-relay-urgent", "key-cache"},
    ("triage", "urgent"): {"outbox-relay-urgent", "safety-plans"},
    ("notify", "urgent"): {"outbox-relay-urgent", "channel-cache", "delivery-worker"},
}


@pytest.mark.parametrize(("service", "lane"), list(LOOPS))
async def test_service_starts_serves_health_and_metrics_and_stops_on_sigterm(
    service: str, lane: str, settings: Settings
) -> None:
    port = free_port()
    env = service_env(settings, **{service: port}) | {"LANE": lane}
    proc = subprocess.Popen(
        [sys.executable, "-m", f"services.{service}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ready = wait_ready(f"http://127.0.0.1:{port}/health/ready", proc).json()
        assert ready["status"] == "ready"
        assert ready["checks"] == dict.fromkeys(
            ("started", "database", "kafka", "loops", "lag"), True
        )
        # Every background loop is supervised and reported, every lag check under threshold.
        assert set(ready["loops"]) == LOOPS[(service, lane)]
        assert all(loop["alive"] for loop in ready["loops"].values())
        assert all(lag["ok"] for lag in ready["lag"].values())
        # Metrics on a port of their own, bound to loopback; not on the API's port.
        metrics_port = env[f"{service.upper()}_METRICS_PORT"]
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "python_info" in metrics
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 404
        conn = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            versions = await conn.fetch(f"SELECT version FROM {service}.schema_migrations")
        finally:
            await conn.close()
        assert versions, "migrations were not applied on start"
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    log = output.decode()
    # uvicorn re-raises the signal it handled after a clean shutdown, so a process manager
    # sees "terminated by SIGTERM"; the log shows that the graceful path ran to its end.
    assert proc.returncode in (0, -signal.SIGTERM), log
    assert '"msg": "stopped"' in log


async def test_production_settings_serve_no_api_docs(settings: Settings) -> None:
    port = free_port()
    env = service_env(settings, analytics=port) | {"LOCAL_DEVELOPMENT": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.analytics"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/ready", proc)
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 404
        metrics_port = env["ANALYTICS_METRICS_PORT"]
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).is_success
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


@pytest.mark.parametrize(
    ("service", "ring"),
    [
        *((service, "PII") for service in SERVICES),  # each seals what it dead-letters
        ("intake", "SECRETS"),  # callback secrets
        ("notify", "SECRETS"),  # channel secrets
    ],
)
def test_without_its_keys_a_service_does_not_start(
    service: str, ring: str, settings: Settings, tmp_path: Path
) -> None:
    env = service_env(settings, **{service: free_port()}) | {
        "LOCAL_DEVELOPMENT": "false",
        f"{ring}_KEY_FILE": str(tmp_path / "no-such.keys"),
    }
    env.pop(f"{ring}_KEYS")
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 1
    message = done.stderr.decode()
    what = "PII" if ring == "PII" else "secrets"
    assert f"{service} does not start: no {what} key: set {ring}_KEYS" in message, message
    assert not (tmp_path / "no-such.keys").exists()  # no key of its own outside development
