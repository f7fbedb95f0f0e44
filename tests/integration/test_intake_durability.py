"""A 202 is a promise: the report survives a Kafka outage and a kill -9 of intake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from schemas.topics import INCIDENT_EVENTS
from services.common.settings import Settings
from services.intake import partners
from services.intake.service import SPEC
from tests.integration.test_intake import report
from tests.integration.test_service_runner import service_env, wait_ready
from tests.support import header, read_topic, running
from tools.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KAFKA = str(ROOT / "deploy/local/kafka.sh")


class OwnBroker:
    """A broker of this test alone, so that stopping it disturbs no other test."""

    def __init__(self, run_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "RUN_DIR": str(run_dir),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def admin_password_file(self) -> Path:
        return Path(self.env["RUN_DIR"]) / "kafka" / "credentials" / "veilig-admin"

    def up(self) -> None:
        subprocess.run([KAFKA, "up"], env=self.env, check=True, capture_output=True, timeout=120)

    def down(self) -> None:
        subprocess.run([KAFKA, "down"], env=self.env, check=True, capture_output=True, timeout=60)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    broker = OwnBroker(tmp_path)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


async def partner_key(settings: Settings) -> str:
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), server_settings={"search_path": "intake"}
    )
    try:
        return await partners.add_partner(
            conn, "brandweer-vrk", name="Brandweer", kind="fire", rate_per_minute=100_000
        )
    finally:
        await conn.close()


def one_event_each(records: list, incident_ids: set[str]) -> dict[str, set[str]]:
    """incident id -> the distinct event ids published for it (a relay crash may publish a
    row twice; consumers drop the copy by its id, so distinct ids are what must be one)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for record in records:
        subject = header(record, "ce_subject")
        if subject in incident_ids:
            seen[subject].add(header(record, "ce_id") or "")
    return seen


@pytest.mark.fault  # the broker stopped and started: make chaos, with its broker scenario
async def test_reports_accepted_while_kafka_is_down_are_published_once_it_returns(
    own_broker: OwnBroker, database_url: str, topic_prefix: str
) -> None:
    settings = Settings(
        kafka_bootstrap_servers=own_broker.bootstrap,
        kafka_sasl_password_file=own_broker.admin_password_file,
        database_url=database_url,
        topic_prefix=topic_prefix,
        consumer_group_prefix=f"test-{topic_prefix}",
    )
    async with running(SPEC, settings) as (_app, client):
        key = await partner_key(settings)
        own_broker.down()
        accepted = []
        for n in range(5):
            response = await client.post(
                "/v1/incidents",
                json=report(f"OUTAGE-{n}"),
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json()["incident_id"])
        own_broker.up()
        ids = set(accepted)
        records = await read_topic(
            settings,
            settings.topic(INCIDENT_EVENTS.name),
            until=lambda rs: set(one_event_each(rs, ids)) == ids,
            within=90,
            settle=2,
        )
    seen = one_event_each(records, ids)
    assert set(seen) == ids
    assert all(len(event_ids) == 1 for event_ids in seen.values()), seen


async def test_a_kill_9_right_after_the_202s_loses_nothing(settings: Settings) -> None:
    key = None
    port = free_port()
    env = service_env(settings, intake=port)
    proc = subprocess.Popen([sys.executable, "-m", "services.intake"], env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/ready", proc)
        key = await partner_key(settings)
        batch = [report(f"KILL-{n}") for n in range(300)]
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"http://127.0.0.1:{port}/v1/incidents:batch",
                json={"reports": batch},
                headers={"Authorization": f"Bearer {key}"},
            )
        proc.send_signal(signal.SIGKILL)  # no chance to relay the backlog
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert response.status_code == 200
    ids = {r["incident_id"] for r in response.json()["results"]}
    assert len(ids) == 300

    restarted = subprocess.Popen([sys.executable, "-m", "services.intake"], env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/ready", restarted)
        records = await read_topic(
            settings,
            settings.topic(INCIDENT_EVENTS.name),
            until=lambda rs: set(one_event_each(rs, ids)) == ids,
            within=60,
            settle=2,
        )
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    seen = one_event_each(records, ids)
    assert set(seen) == ids
    assert all(len(event_ids) == 1 for event_ids in seen.values())
    bodies = {json.loads(r.value)["external_id"] for r in records if header(r, "ce_subject") in ids}
    assert bodies == {f"KILL-{n}" for n in range(300)}
