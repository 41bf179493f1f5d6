"""The Grafana dashboard: every panel's PromQL names only metrics the operator exports (the
e2e test e2e/test_dashboard.py runs them against a live Prometheus)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import adaptive_operator.adapters.telemetry  # noqa: F401 (registers the operator's metrics)

DASHBOARD = Path(__file__).resolve().parents[1] / "charts" / "adaptive-operator" / "files" / (
    "dashboard.json")
PANELS = {"Load against capacity", "Forecast and its band, at the time it is for",
          "Desired and ready replicas", "Decisions by reason",
          "Anomaly score and healing actions", "ShardSet slot balance and migrations"}


def exported() -> set[str]:
    names: set[str] = set()
    for collector in REGISTRY.collect():
        names.update(sample.name for sample in collector.samples)
        names.add(collector.name + ("_total" if collector.type == "counter" else ""))
    return names


def test_the_dashboard_has_the_panels_operators_look_at() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert {p["title"] for p in dashboard["panels"]} == PANELS
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace", "service", "lookahead", "shardset"}


def test_every_query_names_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    names = exported()
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"]["query"] for v in dashboard["templating"]["list"] if "query" in v
                and isinstance(v["query"], dict)]
    for query in queries:
        used = set(re.findall(r"\b(adaptive_[a-z_]+)", query))
        assert used and used <= names, (query, used - names)
