"""Bad input, generated from the OpenAPI spec itself (schemathesis): no 5xx, and every
response matches its documented status, content type and schema."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from services.common.migrations import load_migrations, migrate
from services.common.settings import Settings
from services.intake import partners
from services.intake.service import SPEC
from tests.integration.test_service_runner import service_env, wait_ready
from tools.ports import free_port

pytestmark = pytest.mark.integration

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


async def test_the_partner_api_survives_a_fuzz_run(settings: Settings, tmp_path: Path) -> None:
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await migrate(conn, "intake", load_migrations(SPEC.migrations))
        await conn.execute("SET search_path TO intake")
        key = await partners.add_partner(
            conn, "fuzzer", name="fuzzer", kind="citizen", rate_per_minute=1_000_000
        )
    finally:
        await conn.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.intake"],
        env=service_env(settings, intake=port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/ready", proc)
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "-H",
                f"Authorization: Bearer {key}",
                "--checks",
                CHECKS,
                "--max-examples",
                "15",
                "--seed",
                "20261128",
                "--exclude-path-regex",
                "^/(health|metrics)",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,  # schemathesis writes its reports next to where it runs
            check=False,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout
