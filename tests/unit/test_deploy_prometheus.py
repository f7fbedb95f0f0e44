"""The alert rules: valid, unit-tested with promtool, documented, and only on real metrics.

promtool comes from Debian's `prometheus` package; `make test` (its `ops-tools` step) puts it in
.venv/bin when it is not on PATH. The dashboard's queries are held to the same metric catalogue
(deploy/prometheus/metrics_catalog.py) as the rules.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy/prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
CONFIGS = [ROOT / "deploy/prometheus.yml", PROM / "prometheus.compose.yml"]
DASHBOARD = ROOT / "deploy/grafana/veilig-haarlem.json"
SEVERITIES = {"critical", "warning"}


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


catalog_module = load(PROM / "metrics_catalog.py", "veilig_metrics_catalog")


def ops_tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(ROOT / ".venv/bin"))
    if not found:
        pytest.skip(
            f"{name} is not installed: `make ops-tools` puts it in .venv/bin "
            "(from Debian's prometheus / prometheus-alertmanager packages)"
        )
    return found


def alerts() -> list[dict]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


@pytest.fixture(scope="module")
def catalog():
    return catalog_module.catalog()


def test_rule_files_exist_and_prometheus_configs_load_them() -> None:
    assert RULES, "no rule files in deploy/prometheus/rules"
    for config in CONFIGS:
        loaded = yaml.safe_load(config.read_text())
        globs = loaded["rule_files"]
        matched = {p for g in globs for p in config.parent.glob(g)}
        assert set(RULES) <= matched, f"{config.name} does not load every rule file"
        assert loaded["alerting"]["alertmanagers"], f"{config.name} sends alerts nowhere"


def test_promtool_checks_the_rules_and_the_configs() -> None:
    promtool = ops_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for config in CONFIGS:
        result = subprocess.run(
            [promtool, "check", "config", str(config)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = ops_tool("promtool")
    assert RULE_TESTS, "no promtool tests in deploy/prometheus/tests"
    result = subprocess.run(
        [promtool, "test", "rules", *map(str, RULE_TESTS)],
        capture_output=True,
        text=True,
        cwd=PROM / "tests",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert {str(PROM / "rules" / Path(f).name) for f in doc["rule_files"]} <= set(
            map(str, RULES)
        )
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), f"alerts never tested firing: {sorted(names - fired)}"
    assert names - quiet == set(), f"alerts never tested quiet: {sorted(names - quiet)}"


def test_every_alert_has_a_severity_a_summary_and_a_runbook() -> None:
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)), "two alerts share a name"
    for alert in alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert annotations["summary"].strip() and len(annotations["summary"]) <= 120, name
        assert annotations["description"].strip(), name
        assert annotations["runbook_url"] == f"docs/runbooks/{name}.md", name
        assert (ROOT / annotations["runbook_url"]).is_file(), f"{name}: runbook missing"


def test_the_issues_alerts_are_all_there() -> None:
    names = {a["alert"] for a in alerts()}
    wanted = {
        "VeiligConsumerLagGrowing",  # consumer lag growing per group
        "VeiligOutboxStuck",  # oldest unpublished outbox row
        "VeiligDeadLetters",  # DLQ records arriving
        "VeiligDeliveryFailureRate",  # delivery failure rate per recipient
        "VeiligRecipientDisabled",  # a recipient disabled (410)
        "VeiligEscalationExhausted",  # escalation chains exhausted
        "VeiligBackgroundLoopDown",  # a background loop not alive
        "VeiligServiceNotReady",  # readiness failing
        "VeiligPiiKeyMissing",  # PII key missing
        "VeiligKafkaUnderReplicated",  # Kafka under-replicated partitions
    }
    assert wanted <= names, sorted(wanted - names)


def test_rules_use_only_exported_metrics_and_labels(catalog) -> None:
    for alert in alerts():
        for name, labels in catalog_module.selectors(alert["expr"]):
            assert name in catalog, f"{alert['alert']}: {name} is exported by nothing"
            metric = catalog.metrics[name]
            if metric.labels:  # the services' metrics: their label names are known
                unknown = labels - metric.labels - catalog_module.TARGET_LABELS
                assert not unknown, f"{alert['alert']}: {name} has no label {sorted(unknown)}"


def test_the_catalogue_knows_the_services_metrics_and_rejects_others(catalog) -> None:
    assert "veilig_dead_lettered_total" in catalog
    assert catalog.metrics["veilig_notify_attempts_total"].labels == {
        "channel",
        "recipient",
        "outcome",
    }
    assert "veilig_triage_confidence_bucket" in catalog
    assert "faststream_received_processed_messages_total" in catalog
    assert "veilig_no_such_thing_total" not in catalog
    used = catalog_module.selectors(
        'sum by (a) (rate(x_total{b="c}"}[5m] offset 10m)) / on (d) y > 0.5 and z{e=~"f"}'
    )
    assert used == [("x_total", {"b"}), ("y", set()), ("z", {"e"})]


def test_dashboard_panels_use_only_exported_metrics(catalog) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for e in exprs for name in catalog_module.metric_names(e)}
    assert used - set(catalog.metrics) == set(), f"exported by nothing: {sorted(used)}"
    # Lag per group and the dead-letter topics have panels (issue #16).
    assert "veilig_kafka_consumer_lag_messages" in used
    assert {"veilig_dead_lettered_total", "kafka_topic_partition_oldest_offset"} <= used
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "two panels share an id"


def test_declared_exporters_are_deployed() -> None:
    exporters = yaml.safe_load((PROM / "exporters.yml").read_text())
    compose = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
    kafka = yaml.safe_load((ROOT / "deploy/k8s/base/kafka/kafka.yaml").read_text())
    for name, spec in exporters.items():
        if "compose_service" in spec:
            assert spec["compose_service"] in compose["services"], name
        if spec.get("k8s") == "Kafka.spec.kafkaExporter":
            assert "kafkaExporter" in kafka["spec"], name
    scraped = yaml.safe_load((PROM / "prometheus.compose.yml").read_text())
    targets = {
        t
        for job in scraped["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    assert "kafka-exporter:9308" in targets


def test_the_kubernetes_scrape_config_gives_the_labels_the_rules_expect() -> None:
    # Debian's promtool has no Kubernetes discovery: checked by shape instead.
    config = yaml.safe_load((PROM / "prometheus.k8s.yml").read_text())
    assert {p for g in config["rule_files"] for p in PROM.glob(g)} >= set(RULES)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"veilig-haarlem", "kafka-exporter"}
    relabel = jobs["veilig-haarlem"]["relabel_configs"]
    assert any(r.get("target_label") == "service" for r in relabel)
    assert jobs["veilig-haarlem"]["honor_labels"] is True
