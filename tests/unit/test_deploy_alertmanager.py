"""Alertmanager's configuration is valid (amtool) and routes each severity where it belongs.

amtool comes from Debian's `prometheus-alertmanager` package; `make test` (its `ops-tools` step)
puts it in .venv/bin when it is not on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy/alertmanager/alertmanager.yml"
RULES = sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))


def amtool() -> str:
    found = shutil.which("amtool") or shutil.which("amtool", path=str(ROOT / ".venv/bin"))
    if not found:
        pytest.skip(
            "amtool is not installed: `make ops-tools` puts it in .venv/bin "
            "(from Debian's prometheus-alertmanager package)"
        )
    return found


def receivers_for(*labels: str) -> list[str]:
    result = subprocess.run(
        [amtool(), "config", "routes", "test", f"--config.file={CONFIG}", *labels],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().split(",")


def test_amtool_check_config_passes() -> None:
    result = subprocess.run([amtool(), "check-config", str(CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_critical_alerts_page_and_warnings_do_not() -> None:
    assert receivers_for("severity=critical", "alertname=VeiligOutboxStuck") == [
        "ops-pager",
        "ops-channel",
    ]
    warning = receivers_for("severity=warning", "alertname=VeiligDeadLetters")
    assert "ops-pager" not in warning and "ops-channel" in warning


def test_every_alert_of_the_rules_reaches_someone() -> None:
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                got = receivers_for(
                    f"alertname={rule['alert']}", f"severity={rule['labels']['severity']}"
                )
                assert "ops-channel" in got, rule["alert"]


def test_no_secret_is_written_in_the_configuration() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    text = CONFIG.read_text()
    assert "smtp_auth_password:" not in text, "use smtp_auth_password_file"
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            auth = hook.get("http_config", {}).get("authorization", {})
            assert "credentials" not in auth and auth.get("credentials_file"), receiver["name"]
    inhibited = {r["target_matchers"][0] for r in config["inhibit_rules"]}
    assert inhibited, "no inhibition: a service down would page three times"
