"""Which metrics exist, and which metrics a PromQL expression uses.

The alert rules (rules/*.yml) and the Grafana dashboard (../grafana/veilig-haarlem.json) may only
use series that something really exports:

- the services' own metrics: every ``Counter``/``Gauge``/``Histogram``/``Summary`` created under
  ``services/`` (found in the source, nothing is imported), with their label names;
- FastStream's Kafka metrics, which the services export through ``KafkaPrometheusMiddleware``
  (their names come from FastStream's own metrics container);
- the exporters the deployments run, declared in ``exporters.yml`` (Prometheus' ``up``, the Kafka
  exporter's ``kafka_*``).

Used by tests/unit/test_deploy_prometheus.py; ``python deploy/prometheus/metrics_catalog.py``
prints the catalogue.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXPORTERS = Path(__file__).with_name("exporters.yml")

KINDS = {"Counter", "Gauge", "Histogram", "Summary"}
# Labels that every scraped series gets from Prometheus (target labels of deploy/prometheus*.yml).
TARGET_LABELS = frozenset({"instance", "job", "service"})


@dataclass(frozen=True)
class Metric:
    name: str  # as created (a Counter's without _total)
    kind: str
    labels: frozenset[str]
    source: str

    def series(self) -> set[str]:
        """The sample names Prometheus stores for it."""
        base = self.name.removesuffix("_total") if self.kind == "Counter" else self.name
        if self.kind == "Counter":
            return {f"{base}_total", f"{base}_created"}
        if self.kind == "Histogram":
            return {base, *(f"{base}_{s}" for s in ("bucket", "sum", "count", "created"))}
        if self.kind == "Summary":
            return {base, *(f"{base}_{s}" for s in ("sum", "count", "created"))}
        return {base}


@dataclass
class Catalog:
    metrics: dict[str, Metric] = field(default_factory=dict)  # series name -> metric

    def add(self, metric: Metric) -> None:
        for series in metric.series():
            self.metrics[series] = metric

    def __contains__(self, series: str) -> bool:
        return series in self.metrics


def _strings(node: ast.expr | None) -> list[str] | None:
    if isinstance(node, ast.List | ast.Tuple):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        return values if len(values) == len(node.elts) else None
    return None


def service_metrics(root: Path = ROOT) -> list[Metric]:
    """Every prometheus_client metric created in services/ (name and label names)."""
    found: list[Metric] = []
    for path in sorted((root / "services").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if kind not in KINDS or not node.args:
                continue
            name = node.args[0]
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                continue
            labels_node = node.args[2] if len(node.args) > 2 else None
            for kw in node.keywords:
                if kw.arg == "labelnames":
                    labels_node = kw.value
            labels = _strings(labels_node) if labels_node is not None else []
            if labels is None:
                raise ValueError(f"{path}:{node.lineno}: label names of {name.value} not literal")
            found.append(Metric(name.value, kind, frozenset(labels), str(path.relative_to(root))))
    return found


def faststream_metrics(root: Path = ROOT) -> list[Metric]:
    """FastStream's Kafka metrics, which the services export through its Prometheus
    middleware (only if they do: services/common/kafka.py installs it)."""
    if "KafkaPrometheusMiddleware(" not in (root / "services/common/kafka.py").read_text():
        return []
    from faststream.prometheus.container import MetricsContainer
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    MetricsContainer(registry, metrics_prefix="faststream", custom_label_names=())
    found = []
    for collector in set(registry._names_to_collectors.values()):
        kind = {"counter": "Counter", "gauge": "Gauge", "histogram": "Histogram"}.get(
            collector._type,
            "Summary",
        )
        found.append(
            Metric(
                collector._name,
                kind,
                frozenset(collector._labelnames),
                "faststream.prometheus (KafkaPrometheusMiddleware)",
            )
        )
    return found


def exporter_metrics(path: Path = EXPORTERS) -> list[Metric]:
    declared = yaml.safe_load(path.read_text())
    return [
        Metric(name, "Gauge", frozenset(), f"exporter {exporter}")
        for exporter, spec in declared.items()
        for name in spec["metrics"]
    ]


def catalog(root: Path = ROOT, *, exporters: bool = True) -> Catalog:
    cat = Catalog()
    for metric in service_metrics(root) + faststream_metrics(root):
        cat.add(metric)
    if exporters:
        for metric in exporter_metrics():
            cat.add(metric)
    return cat


# --- PromQL --------------------------------------------------------------------------------

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan", "atan2",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _strip_templates(expr: str) -> str:
    return re.sub(r"\$\{[^}]*\}|\$__\w+|\$\w+", "1m", expr)


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched) of every series selector in a PromQL expression."""
    text = _strip_templates(expr)
    # Matchers first (before strings are removed): name{label="…", …}
    out: list[tuple[str, set[str]]] = []
    masked = _STRING.sub('""', text)
    masked = _GROUPING.sub(" ", masked)
    masked = _RANGE.sub(" ", masked)
    i = 0
    while i < len(masked):
        match = _IDENT.match(masked, i)
        if not match:
            i += 1
            continue
        word, end = match.group(), match.end()
        rest = masked[end:].lstrip()
        if word.lower() in KEYWORDS or rest.startswith("("):
            i = end  # a keyword or a function call
            continue
        labels: set[str] = set()
        if rest.startswith("{"):
            close = masked.index("}", end)
            inside = masked[masked.index("{", end) + 1 : close]
            labels = {m.group(1) for m in re.finditer(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", inside)}
            end = close + 1
        after_number = i > 0 and masked[i - 1] in ".0123456789"  # the unit of 10m, 1e3
        if not after_number:
            out.append((word, labels))
        i = end
    return out


def metric_names(expr: str) -> set[str]:
    return {name for name, _ in selectors(expr)}


if __name__ == "__main__":
    for series, metric in sorted(catalog().metrics.items()):
        print(f"{series:70} {sorted(metric.labels)} ({metric.source})")
