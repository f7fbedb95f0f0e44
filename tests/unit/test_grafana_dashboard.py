"""The Grafana dashboard only charts metrics the services really export."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_dashboard_metric_is_defined_in_the_code() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/veilig-haarlem.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(veilig_[a-z_]+?)(?:_bucket)?\b", e)}
    source = "".join(p.read_text() for p in (ROOT / "services").rglob("*.py"))
    defined = set(re.findall(r'"(veilig_[a-z_]+)"', source))
    assert used, "the dashboard charts no domain metric"
    assert used <= defined, f"not exported by any service: {sorted(used - defined)}"
