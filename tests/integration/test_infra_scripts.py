"""The local infrastructure scripts behind `make up` / `make down`: harmless when repeated,
and a broker that cannot start says why."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KAFKA = ROOT / "deploy/local/kafka.sh"
POSTGRES = ROOT / "deploy/local/postgres.sh"


def script(path: Path, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(path), command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def local_infra() -> dict[str, str]:
    """The run folder and ports that run-tests.sh started the infrastructure with."""
    if "RUN_DIR" not in os.environ or "KAFKA_PORT" not in os.environ:
        pytest.skip("the infrastructure is external (not started by deploy/local scripts)")
    return {k: os.environ[k] for k in ("RUN_DIR", "KAFKA_PORT", "PGPORT")}


def test_up_twice_is_harmless(local_infra: dict[str, str]) -> None:
    kafka = script(KAFKA, "up", **local_infra)
    assert kafka.returncode == 0 and "already running" in kafka.stderr
    pg = script(POSTGRES, "up", **local_infra)
    assert pg.returncode == 0 and "already running" in pg.stderr


def test_down_when_nothing_runs_is_harmless(tmp_path: Path) -> None:
    for path in (KAFKA, POSTGRES):
        result = script(path, "down", RUN_DIR=str(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "not running" in result.stderr


def test_a_taken_port_is_named(local_infra: dict[str, str], tmp_path: Path) -> None:
    result = script(KAFKA, "up", RUN_DIR=str(tmp_path), KAFKA_PORT=local_infra["KAFKA_PORT"])
    assert result.returncode == 1
    assert f"port {local_infra['KAFKA_PORT']} is already taken" in result.stderr


def test_a_broker_that_dies_on_start_names_the_cause(
    local_infra: dict[str, str], tmp_path: Path
) -> None:
    # Data left by another node: Kafka refuses to start, and the script must say why.
    data = tmp_path / "kafka/data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text(
        "cluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\nversion=1\n"
        "directory.id=AAAAAAAAAAAAAAAAAAAAAA\n"
    )
    # ... made with authentication (data without an administrator credential predates SASL,
    # and the script would start it afresh instead).
    (tmp_path / "kafka/credentials").mkdir(parents=True)
    (tmp_path / "kafka/credentials/veilig-admin").write_text("secret")
    result = script(
        KAFKA, "up", RUN_DIR=str(tmp_path), KAFKA_PORT="19492", KAFKA_CONTROLLER_PORT="19493"
    )
    assert result.returncode == 1
    assert "Kafka did not start" in result.stderr
    assert "Stored node id 7 doesn't match previous node id 1" in result.stderr
    assert not (tmp_path / "kafka/kafka.pid").exists()
