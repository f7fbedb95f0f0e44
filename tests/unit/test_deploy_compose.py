"""deploy/compose.yaml: valid against the Compose Specification's JSON schema (vendored in
deploy/compose-spec/), and the environment the issue asks for."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from services.common.settings import LANED

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((DEPLOY / "compose-spec/compose-spec.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_compose_file_is_valid_against_the_compose_spec(validator) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []


def test_the_schema_would_catch_a_mistake(validator) -> None:
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["intake"]["restart_policy"] = "always"  # not a Compose key
    broken["services"]["triage"]["depends_on"] = "kafka-1"  # a list or a map
    assert len(list(validator.iter_errors(broken))) >= 2


def kafka_env(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[name]["environment"].items()}


def test_three_kraft_brokers_replication_3_min_isr_2() -> None:
    brokers = [n for n in SERVICES if re.fullmatch(r"kafka-\d", n)]
    assert len(brokers) == 3
    ids = set()
    for name in brokers:
        env = kafka_env(name)
        assert SERVICES[name]["image"].startswith("apache/kafka:4.0.")
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        ids.add(env["KAFKA_NODE_ID"])
    assert len(ids) == 3
    assert not any("zookeeper" in str(s.get("image", "")) for s in SERVICES.values())


def test_the_services_two_replicas_of_triage_and_notify() -> None:
    for name in ("intake", "triage", "notify", "analytics"):
        service = SERVICES[name]
        assert service["command"] == [f"services.{name}"]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        env = service["environment"]
        assert env["KAFKA_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector:")
    assert SERVICES["triage"]["deploy"]["replicas"] == 2
    assert SERVICES["notify"]["deploy"]["replicas"] == 2


def test_the_urgent_lane_has_containers_of_its_own() -> None:
    """As `make run` and Kubernetes: intake, triage and notify work LANE=main, and each has an
    urgent lane (LANE=urgent) that publishes no port, so no partner or staff request reaches it."""
    for name in LANED:
        assert SERVICES[name]["environment"]["LANE"] == "main"
        lane = SERVICES[f"{name}-urgent"]
        assert lane["command"] == [f"services.{name}"]
        assert lane["environment"]["LANE"] == "urgent"
        assert "ports" not in lane
        same = {k: v for k, v in lane["environment"].items() if k != "LANE"}
        assert same == {k: v for k, v in SERVICES[name]["environment"].items() if k != "LANE"}
    assert "LANE" not in SERVICES["analytics"]["environment"]
    assert SERVICES["migrate"]["entrypoint"] == ["python", "/app/deploy/migrate.py"]


def test_observability_stack_is_wired() -> None:
    for name in (
        "postgres",
        "otel-collector",
        "prometheus",
        "alertmanager",
        "grafana",
        "kafka-exporter",
    ):
        assert name in SERVICES, name
    prometheus = " ".join(SERVICES["prometheus"]["command"])
    assert "--config.file=/etc/prometheus/veilig/prometheus.compose.yml" in prometheus
    alertmanager = " ".join(SERVICES["alertmanager"]["command"])
    assert "--config.file=/etc/alertmanager/veilig/alertmanager.yml" in alertmanager
    provisioning = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/veilig-haarlem.yaml").read_text()
    )
    dashboards_dir = provisioning["providers"][0]["options"]["path"]
    assert any(
        v.endswith(f"{dashboards_dir}/veilig-haarlem.json:ro")
        for v in SERVICES["grafana"]["volumes"]
    )
    otel = yaml.safe_load((DEPLOY / "otel/collector.yaml").read_text())
    assert otel["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def test_every_mounted_file_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), name


def test_no_secret_is_written_in_the_file() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    for key in ("PII_KEYS", "SECRETS_KEYS", "POSTGRES_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"):
        for value in re.findall(rf"^\s*{key}[A-Z_]*:\s*(\S+)", text, re.M):
            assert value.startswith("${") or value.startswith("/run/secrets/"), (key, value)
    assert re.search(r"postgresql://veilig:\$\{POSTGRES_PASSWORD", text)
    for secret in COMPOSE["secrets"].values():
        assert set(secret) == {"environment"}, "secrets come from the environment"


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        assert image and ":" in image and not image.endswith(":latest"), name
        tag = image.rsplit(":", 1)[1]
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not an exact version"
