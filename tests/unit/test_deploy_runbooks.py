"""docs/runbooks: one per alert (what it means, what to check or do), the procedures the issue
asks for, an index that lists them all, and no broken links between them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs/runbooks"
PROCEDURES = [
    "scaling-a-service.md",
    "replay-a-dlq.md",
    "replaying-a-projection.md",
    "rotating-keys-and-secrets.md",
    "losing-a-broker.md",
    "postgresql-failover.md",
    "partner-flooding.md",
]


def severities() -> dict[str, str]:
    return {
        rule["alert"]: rule["labels"]["severity"]
        for path in sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }


def alert_names() -> list[str]:
    return list(severities())


def test_every_alert_has_a_runbook_that_says_what_it_means_and_what_to_do() -> None:
    for name in alert_names():
        text = (RUNBOOKS / f"{name}.md").read_text()
        assert text.startswith(f"# {name}"), name
        assert "## What it means" in text, name
        assert "## What to do" in text or "## What to check" in text, name
        assert f"**Severity**: {severities()[name]}." in text, name


def test_the_procedures_exist() -> None:
    for name in PROCEDURES:
        assert (RUNBOOKS / name).is_file(), name
    text = (RUNBOOKS / "replaying-a-projection.md").read_text()
    assert "veilig analytics rebuild" in text
    assert "veilig dlq replay" in (RUNBOOKS / "VeiligDeadLetters.md").read_text()


def test_the_index_lists_every_runbook() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for name in alert_names():
        assert f"]({name}.md)" in index, name
    for name in PROCEDURES:
        assert f"]({name})" in index, name


def test_links_between_runbooks_resolve() -> None:
    for path in RUNBOOKS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+\.md)\)", path.read_text()):
            if "://" not in target:
                assert (path.parent / target).is_file(), f"{path.name} -> {target}"
