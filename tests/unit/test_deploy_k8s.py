"""deploy/k8s: both overlays render, the core kinds validate (kubernetes-validate, strict), the
Strimzi and KEDA resources validate against deploy/k8s/schemas, the generated topics and users
are current and match what the code consumes and produces, and the platform's rules hold
(probes, resources, PDBs, no inlined secrets, only intake and triage reachable from outside)."""

from __future__ import annotations

import ast
import importlib.util
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import jsonschema
import kubernetes_validate
import pytest
import yaml

from schemas.topics import INCIDENT_SUBMISSIONS
from services.common.kafka_access import CONSUMERS
from services.common.settings import LANED

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSION = "1.33.0"
SERVICES = ("intake", "triage", "notify", "analytics")


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


render = load(K8S / "render.py", "veilig_k8s_render")
generate = load(K8S / "generate_topics.py", "veilig_k8s_generate_topics")
generate_lanes = load(K8S / "generate_lanes.py", "veilig_k8s_generate_lanes")


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render.render(K8S / "overlays" / request.param)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def key(doc: dict) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


# --- rendering and validation -------------------------------------------------------------


def test_the_python_renderer_equals_kubectl_kustomize(rendered) -> None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl is not installed: only the Python renderer was checked")
    overlay, docs = rendered
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True
    )
    if result.returncode != 0 and "unknown command" in result.stderr:
        pytest.skip(f"this kubectl has no kustomize: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    reference = {key(d): d for d in yaml.safe_load_all(result.stdout) if d}
    mine = {key(d): d for d in docs}
    assert set(mine) == set(reference)
    for k, doc in reference.items():
        assert mine[k] == doc, k


def test_core_kinds_validate_strictly(rendered) -> None:
    overlay, docs = rendered
    validated = 0
    for doc in docs:
        if "." in doc["apiVersion"].split("/")[0] and not doc["apiVersion"].startswith(
            ("apps/", "batch/", "policy/", "networking.k8s.io/", "autoscaling/")
        ):
            continue  # custom resources: below
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        validated += 1
    assert validated >= 20, f"{overlay}: only {validated} core resources"


@pytest.fixture(scope="module")
def crd_schemas() -> dict[tuple[str, str], dict]:
    schemas = {}
    for path in (K8S / "schemas").glob("*.json"):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        props = schema["properties"]
        schemas[(props["apiVersion"]["const"], props["kind"]["const"])] = schema
    return schemas


def test_custom_resources_validate_against_their_schemas(rendered, crd_schemas) -> None:
    overlay, docs = rendered
    custom = [d for d in docs if d["apiVersion"].startswith(("kafka.strimzi.io/", "keda.sh/"))]
    kinds = {d["kind"] for d in custom}
    assert kinds >= {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "ScaledObject"}
    for doc in custom:
        schema = crd_schemas.get((doc["apiVersion"], doc["kind"]))
        assert schema, f"no schema for {doc['apiVersion']} {doc['kind']}"
        errors = [
            f"{list(e.path)}: {e.message}"
            for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)
        ]
        assert errors == [], f"{overlay} {doc['kind']}/{doc['metadata']['name']}: {errors}"


def test_the_crd_schemas_reject_known_mistakes(crd_schemas) -> None:
    scaled = by_kind(render.render(K8S / "overlays/prod"), "ScaledObject")["veilig-triage"]
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 100  # must be a string
    schema = crd_schemas[("keda.sh/v1alpha1", "ScaledObject")]
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(scaled))
    user = yaml.safe_load_all((K8S / "base/kafka/users.yaml").read_text())
    user = next(u for u in user if u)
    user["spec"]["authorization"]["acls"][0]["operation"] = "Read"  # gone in v1
    schema = crd_schemas[("kafka.strimzi.io/v1", "KafkaUser")]
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(user))


# --- Kafka: KRaft, node pools, topics, users ----------------------------------------------


def test_kafka_is_kraft_with_node_pools_and_replication_3(rendered) -> None:
    overlay, docs = rendered
    (kafka,) = by_kind(docs, "Kafka").values()
    assert "zookeeper" not in kafka["spec"]
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    pools = by_kind(docs, "KafkaNodePool").values()
    roles = [r for p in pools for r in p["spec"]["roles"] for _ in range(p["spec"]["replicas"])]
    assert roles.count("controller") == 3 and roles.count("broker") == 3, overlay
    for pool in pools:
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    if overlay == "prod":
        for pool in pools:
            assert all(v["type"] == "persistent-claim" for v in pool["spec"]["storage"]["volumes"])


def test_generated_urgent_lanes_are_current() -> None:
    path = K8S / "base/urgent-lanes.yaml"
    assert path.read_text() == generate_lanes.render(), (
        f"{path} is stale: python deploy/k8s/generate_lanes.py"
    )


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_the_urgent_lane_has_pods_of_its_own(rendered) -> None:
    """P1/P2 never wait behind bulk work in the same process or pod (decision 0006): each laned
    service's urgent lane is a Deployment of its own (LANE=urgent, Guaranteed QoS) that no
    selector of the service's main objects takes, the main pods work LANE=main, and the lane's
    consumer lag scales the lane."""
    _overlay, docs = rendered
    deployments = by_kind(docs, "Deployment")
    selectors = [
        (
            kind,
            d["metadata"]["name"],
            d["spec"]["selector"].get("matchLabels", d["spec"]["selector"]),
        )
        for kind in ("Service", "PodDisruptionBudget")
        for d in by_kind(docs, kind).values()
    ] + [
        ("NetworkPolicy", p["metadata"]["name"], p["spec"]["podSelector"].get("matchLabels", {}))
        for p in by_kind(docs, "NetworkPolicy").values()
    ]
    scaled = by_kind(docs, "ScaledObject")
    for service in LANED:
        main, lane = deployments[f"veilig-{service}"], deployments[f"veilig-{service}-urgent"]
        for deployment, value in ((main, "main"), (lane, "urgent")):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            assert {"name": "LANE", "value": value} in container["env"], deployment["metadata"]
        (container,) = lane["spec"]["template"]["spec"]["containers"]
        assert container["resources"]["requests"] == container["resources"]["limits"]
        pods = lane["spec"]["template"]["metadata"]["labels"]
        assert not selects(main["spec"]["selector"]["matchLabels"], pods)
        taken = {(k, n) for k, n, sel in selectors if sel and selects(sel, pods)}
        assert taken == {("PodDisruptionBudget", f"veilig-{service}-urgent")} | {
            ("NetworkPolicy", "veilig-prometheus-scrape")
        }, taken
        groups: dict[str, set[str]] = defaultdict(set)
        for name, obj in scaled.items():
            for trigger in obj["spec"]["triggers"]:
                groups[trigger["metadata"].get("consumerGroup", "")].add(name)
        if service in ("triage", "notify"):  # the lane's consumer lag scales the lane
            assert groups[f"veilig.{service}.urgent"] == {f"veilig-{service}-urgent"}
            assert groups[f"veilig.{service}.main"] == {f"veilig-{service}"}
        else:  # intake's lane consumes nothing: it relays the urgent outbox rows
            assert f"veilig.{service}.urgent" not in groups
            assert lane["spec"]["replicas"] >= 1


def test_generated_topics_and_users_are_current() -> None:
    for name, text in generate.render().items():
        path = K8S / "base/kafka" / name
        assert path.read_text() == text, f"{path} is stale: python deploy/k8s/generate_topics.py"


def test_every_declared_topic_is_a_kafka_topic_as_the_services_would_create_it() -> None:
    from schemas.topics import CLUSTER_TOPICS
    from services.common.settings import Settings
    from services.common.topics import topic_configs

    topics = by_kind(render.render(K8S / "overlays/prod"), "KafkaTopic")
    # A partner's own submission topic is made with its access (veilig partners add --kafka).
    assert set(topics) == {t.name for t in CLUSTER_TOPICS}
    settings = Settings(kafka_replication_factor=3, kafka_min_insync_replicas=2)
    for topic in CLUSTER_TOPICS:
        spec = topics[topic.name]["spec"]
        assert spec["partitions"] == topic.partitions and spec["replicas"] == 3
        assert spec["config"] == topic_configs(topic, settings)


def consumers_in_code() -> set[tuple[str, str, str]]:
    """(service, group purpose, topic) of every batch_consumer(...) call under services/."""
    import schemas.topics as declared

    found = set()
    for path in (ROOT / "services").rglob("*.py"):
        tree = ast.parse(path.read_text())
        module_name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call) and getattr(node.func, "id", None) == "batch_consumer"
            ):
                continue
            service = node.args[2].value
            topic_arg = node.args[3]
            purpose_kw = next((k.value for k in node.keywords if k.arg == "purpose"), None)
            if isinstance(topic_arg, ast.Name) and hasattr(declared, topic_arg.id):
                topics = [getattr(declared, topic_arg.id)]
            else:  # a loop over the module's TOPICS (analytics: purpose=topic.name)
                topics = list(importlib.import_module(module_name).TOPICS)
            for topic in topics:
                if purpose_kw is None:
                    purpose = "main"
                elif isinstance(purpose_kw, ast.Constant):
                    purpose = purpose_kw.value
                else:
                    purpose = topic.name
                found.add((service, purpose, topic.name))
    return found


def test_the_generators_consumers_are_the_codes() -> None:
    declared = {(s, p, t) for s, pairs in CONSUMERS.items() for p, t in pairs}
    assert declared == consumers_in_code()


def acls_of(user: dict, permission: str = "allow") -> list[tuple[str, str, str, str]]:
    return [
        (
            a["resource"]["type"],
            a["resource"].get("name", ""),
            a["resource"].get("patternType", ""),
            op,
        )
        for a in user["spec"]["authorization"]["acls"]
        if a.get("type", "allow") == permission
        for op in a["operations"]
    ]


def _matches(acls: list[tuple[str, str, str, str]], kind: str, name: str, op: str) -> bool:
    for rtype, rname, pattern, rop in acls:
        if rtype != kind or rop not in (op, "All"):
            continue
        if (pattern == "literal" and rname in (name, "*")) or (
            pattern == "prefix" and name.startswith(rname)
        ):
            return True
    return False


def allowed(user: dict, kind: str, name: str, op: str) -> bool:
    """As Kafka's authorizer decides: a matching deny wins over any allow."""
    if _matches(acls_of(user, "deny"), kind, name, op):
        return False
    return _matches(acls_of(user), kind, name, op)


def test_each_service_may_do_exactly_what_it_does() -> None:
    from schemas.topics import CLUSTER_TOPICS

    users = by_kind(render.render(K8S / "overlays/prod"), "KafkaUser")
    for service in SERVICES:
        user = users[f"veilig-{service}"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        consumed = {(p, t) for p, t in CONSUMERS[service]}
        for purpose, topic in consumed:
            # A per-partner family: a partner's topic of it.
            one = f"{topic}.politie" if topic == INCIDENT_SUBMISSIONS.name else topic
            assert allowed(user, "topic", one, "Read"), (service, topic)
            assert allowed(user, "topic", one, "Describe"), (service, topic)
            assert allowed(user, "group", f"veilig.{service}.{purpose}", "Read"), (service, purpose)
            assert allowed(user, "topic", f"{topic}.dlq", "Write"), (service, topic)
        for topic in CLUSTER_TOPICS:
            assert allowed(user, "topic", topic.name, "Describe"), (service, topic.name)
            if service in topic.publishers:
                assert allowed(user, "topic", topic.name, "Write"), (service, topic.name)
            reads = {t for _, t in consumed} | (
                {topic.name} if service in topic.subscribers else set()
            )
            if topic.name not in reads:
                assert not allowed(user, "topic", topic.name, "Read"), (service, topic.name)
        # Nobody else's groups, and no topic administration (the Topic Operator owns topics).
        for other in SERVICES:
            if other != service:
                assert not allowed(user, "group", f"veilig.{other}.main", "Read")
        assert not any(
            op in {"Create", "Delete", "Alter", "AlterConfigs", "All"} for *_, op in acls_of(user)
        )
    partner = users["veilig-partner-example"]
    assert allowed(partner, "topic", "incident-submissions.example", "Write")
    assert not allowed(partner, "topic", "incident-submissions.politie", "Write")
    assert not allowed(partner, "topic", "incident-events", "Write")
    assert not allowed(partner, "topic", "incident-submissions.example", "Read")


# --- workloads ----------------------------------------------------------------------------


def test_deployments_have_probes_resources_and_a_pdb(rendered) -> None:
    _overlay, docs = rendered
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {f"veilig-{s}" for s in SERVICES} | {
        f"veilig-{s}-urgent" for s in LANED
    }
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        assert container["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        service = name.removeprefix("veilig-").removesuffix("-urgent")
        assert container["args"] == [f"services.{service}"]
        assert container["image"].startswith("registry.veilig-haarlem.invalid/veilig-haarlem")
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert any(p["spec"]["selector"]["matchLabels"] == selector for p in pdbs.values()), name


def test_secrets_are_referenced_never_inlined(rendered) -> None:
    _overlay, docs = rendered
    assert not by_kind(docs, "Secret"), "no Secret objects in the manifests"
    sensitive = ("PASSWORD", "KEY", "TOKEN", "SECRET", "DATABASE_URL", "DSN")
    for doc in docs:
        for container in render._containers(doc):
            for env in container.get("env", []):
                if any(word in env["name"] for word in sensitive):
                    assert "valueFrom" in env and "value" not in env, (
                        doc["metadata"]["name"],
                        env["name"],
                    )
    for config in by_kind(docs, "ConfigMap").values():
        assert not any(any(w in k for w in sensitive) for k in config["data"]), config["data"]
    # Every service seals what it dead-letters with the PII keys; intake and notify seal
    # channel secrets with their own key.
    for keys, secret, services in (
        ("PII_KEYS", "veilig-pii", ["analytics", "intake", "notify", "triage"]),
        ("SECRETS_KEYS", "veilig-secrets-key", ["intake", "notify"]),
    ):
        users = [
            d["metadata"]["name"]
            for d in by_kind(docs, "Deployment").values()
            for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
            if e["name"] == keys and e["valueFrom"]["secretKeyRef"]["name"] == secret
        ]
        expected = [f"veilig-{s}" for s in services]
        expected += [f"veilig-{s}-urgent" for s in services if s in LANED]
        assert sorted(users) == sorted(expected), keys


def test_autoscaling_on_consumer_lag(rendered) -> None:
    _overlay, docs = rendered
    scaled = by_kind(docs, "ScaledObject")
    assert set(scaled) == {"veilig-intake", "veilig-triage", "veilig-notify"} | {
        f"veilig-{s}-urgent" for s in ("triage", "notify")
    }
    groups = {f"veilig.{s}.{p}": t for s, pairs in CONSUMERS.items() for p, t in pairs}
    namespace = by_kind(docs, "Namespace")
    (ns,) = namespace
    partitions = {
        d["metadata"]["name"]: d["spec"]["partitions"] for d in by_kind(docs, "KafkaTopic").values()
    }
    for name, obj in scaled.items():
        assert obj["spec"]["scaleTargetRef"]["name"] == name
        kafka = [t for t in obj["spec"]["triggers"] if t["type"] == "kafka"]
        assert kafka, name
        for trigger in kafka:
            meta = trigger["metadata"]
            if groups[meta["consumerGroup"]] == INCIDENT_SUBMISSIONS.name:
                assert "topic" not in meta, meta  # every partner's topic: the group's own lag
                continue
            assert groups[meta["consumerGroup"]] == meta["topic"], meta
            assert meta["bootstrapServers"] == f"veilig-kafka-bootstrap.{ns}.svc:9093"
            assert trigger["authenticationRef"]["name"] in by_kind(docs, "TriggerAuthentication")
            assert obj["spec"]["maxReplicaCount"] <= partitions[meta["topic"]]


def test_only_the_partner_api_and_the_console_are_reachable_from_outside(rendered) -> None:
    _overlay, docs = rendered
    policies = by_kind(docs, "NetworkPolicy").values()
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress"]
    outside = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                ns = peer.get("namespaceSelector", {}).get("matchLabels", {})
                if ns.get("kubernetes.io/metadata.name") == "ingress-nginx":
                    outside.add(
                        policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                    )
    assert outside == {"intake", "triage"}
    backends = {
        path["backend"]["service"]["name"]
        for ingress in by_kind(docs, "Ingress").values()
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {"veilig-intake", "veilig-triage"}


def test_migrations_run_as_a_job_with_the_image(rendered) -> None:
    _overlay, docs = rendered
    job = by_kind(docs, "Job")["veilig-migrate"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "/app/deploy/migrate.py"]
    deployment_image = by_kind(docs, "Deployment")["veilig-intake"]["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert container["image"] == deployment_image
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
