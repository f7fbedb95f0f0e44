"""A newcomer clones wherever they like: `make up` / `make down` work from a private (0700)
folder whose path holds a space, as root too (CI runs as root, and /root is 0700)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.ports import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def newcomer_env(kafka_port: int, pg_port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # This clone starts its own infrastructure, as a newcomer's would.
        if k not in {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "RUN_DIR", "VIRTUAL_ENV"}
    }
    env |= {
        "KAFKA_PORT": str(kafka_port),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "PGPORT": str(pg_port),
        # The jars this suite's broker runs on: the clone need not ask Maven Central again.
        "KAFKA_LIBS_DIR": str(ROOT / ".run/kafka-libs"),
    }
    return env


@pytest.fixture
def private_clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    parent = tmp_path_factory.mktemp("private")
    parent.chmod(0o700)
    clone = parent / "veilig haarlem"
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    # This suite's virtual environment, not a new one: installing into a path with a space is
    # what `.ci/run` does for real on every CI run (it runs `make test` from such a clone), and
    # a second install here would cost a minute of every `make test`.
    (clone / ".venv").symlink_to(ROOT / ".venv")
    # Installed already: newer than the clone's pyproject.toml, so `make` does not install
    # again (which would point this suite's editable install at the clone).
    (clone / ".venv" / ".installed").touch()
    yield clone
    # With the clone's own run folder (never this suite's RUN_DIR): removes its cluster's data.
    subprocess.run(
        ["make", "clean"],
        cwd=clone,
        env=newcomer_env(0, 0),
        capture_output=True,
        timeout=180,
        check=False,
    )


def test_make_up_and_down_from_a_private_folder_with_a_space(private_clone: Path) -> None:
    assert stat.S_IMODE(private_clone.parent.stat().st_mode) == 0o700
    kafka_port, pg_port = free_port(), free_port()
    env = newcomer_env(kafka_port, pg_port)

    def make(target: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", target],
            cwd=private_clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    up = make("up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        assert listening(kafka_port) and listening(pg_port)
        assert "postgres: up on" in up.stderr
        if os.geteuid() == 0:
            # Root's cluster runs as `postgres`, whose data cannot live in a 0700 checkout.
            location = (private_clone / ".run/pg.location").read_text().strip()
            assert not location.startswith(str(private_clone))
            assert Path(location, "data/PG_VERSION").exists()
    finally:
        down = make("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not listening(kafka_port) and not listening(pg_port)
