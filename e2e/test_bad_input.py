"""Bad input on the real cluster: objects the API server refuses (each message names the field
and the rule), and hostile metric values served through real Prometheus (NaN, +Inf, negative),
which the operator ignores, says so, and never acts on.

Already covered elsewhere, not repeated here: minReplicas > maxReplicas and maxReplicas 0
(test_adaptive_service.py), a changed ShardSet slot count (test_shard_set.py), a PromQL parse
error (test_adaptive_service.py).
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from adaptive_operator.adapters.prometheus import (
    MetricError,
    PrometheusError,
    RangeSeries,
    query_range,
    query_total,
)
from metrics_source import Exporters, MetricsSource
from operator_process import OperatorProcess

from conftest import Cluster, module_tag
from support import deployment_yaml, wait_until

SYNC = 2

SERVICE = """
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{name: {name}}}
  minReplicas: 1
  maxReplicas: 6
  syncPeriodSeconds: 2
  metrics: [{{name: load, query: '{query}', targetPerReplica: {target}}}]
  behavior: {{scaleDown: {{stabilizationWindowSeconds: 0}}}}
{extra}"""

SHARD_SET = """
apiVersion: adaptive.dev/v1alpha1
kind: ShardSet
metadata: {{name: db}}
spec:
  shards: {shards}
  slots: {slots}
  template: {{template: {{metadata: {metadata}, spec: {{containers: []}}}}}}
  migration: {{jobTemplate: {{template: {{spec: {{containers: []}}}}}}}}
{extra}"""



def service(
    extra: str = "", *, name: str = "web", query: str = "sum(x)", target: str = "10"
) -> str:
    return SERVICE.format(name=name, query=query, target=target, extra=extra)


def shard_set(shards: int = 2, slots: int = 16, metadata: str = "{}", extra: str = "") -> str:
    return SHARD_SET.format(shards=shards, slots=slots, metadata=metadata, extra=extra)


REFUSED = [
    pytest.param(
        service("  healing: {enabled: true, persistence: {k: 3, 'n': 2}}"),
        ["spec.healing.persistence", "persistence k must be less than or equal to n"],
        id="healing-persistence-k-above-n",
    ),
    pytest.param(
        service(target="0"),
        ["spec.metrics[0].targetPerReplica", "should be greater than 0"],
        id="zero-target-per-replica",
    ),
    pytest.param(
        service(name="web").replace("name: load", "name: Load Metric"),
        ["spec.metrics[0].name", "should match"],
        id="metric-name-pattern",
    ),
    pytest.param(
        service("  healing: {enabled: true, mode: Sometimes}"),
        ["spec.healing.mode", "Unsupported value", '"Active", "DryRun"'],
        id="healing-mode-not-in-enum",
    ),
    pytest.param(
        service().replace("maxReplicas: 6", "maxReplicas: six"),
        ["spec.maxReplicas", "must be of type integer"],
        id="replicas-not-a-number",
    ),
    pytest.param(
        service().replace("  metrics: [{name: load, query: 'sum(x)', targetPerReplica: 10}]\n", ""),
        ["spec.metrics", "Required value"],
        id="no-metrics",
    ),
    pytest.param(
        service("  healing: {enabled: true, sensitivity: 0}"),
        ["spec.healing.sensitivity", "should be greater than 0"],
        id="healing-sensitivity-zero",
    ),
    pytest.param(
        service("  predictive: {enabled: true, quantile: 1.5}"),
        ["spec.predictive.quantile", "should be less than"],
        id="forecast-quantile-above-one",
    ),
    pytest.param(
        shard_set(shards=5, slots=4),
        ["spec", "shards must not exceed slots"],
        id="shards-above-slots",
    ),
    pytest.param(
        shard_set(
            extra="  rebalance: {loadQuery: 'sum by (shard) (x)', "
            "imbalanceThreshold: 0.1, hysteresis: 0.3}"
        ),
        ["spec.rebalance", "hysteresis must not exceed imbalanceThreshold"],
        id="rebalance-hysteresis-above-threshold",
    ),
    pytest.param(
        shard_set(metadata="0"),
        ["spec.template.template.metadata", "must be of type object"],
        id="pod-template-metadata-not-an-object",
    ),
    pytest.param(
        shard_set(metadata="{labels: {tier: [a, b]}}"),
        ["spec.template.template.metadata.labels.tier", "must be of type string"],
        id="pod-label-not-a-string",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REFUSED)
def test_kubectl_apply_refuses_naming_the_field_and_the_rule(
    crds: Cluster, namespace: str, text: str, expected: list[str]
) -> None:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", crds.kubeconfig, "apply", "-n", namespace, "-f", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, result.stdout
    for words in expected:
        assert words in result.stderr, result.stderr


# --- hostile metric values through real Prometheus ----------------------------------------


@pytest.fixture
def hostile(exporters: Exporters, namespace: str) -> Iterator[MetricsSource]:
    """An exporter serving NaN, +Inf and a negative value; real Prometheus scrapes them."""
    with exporters(namespace) as exporter:
        for kind, value in (
            ("nan", math.nan),
            ("inf", math.inf),
            ("negative", -5.0),
            ("fine", 12.0),
        ):
            exporter.set("e2e_hostile", value, {"kind": kind})
        yield exporter


def query(namespace: str, kind: str) -> str:
    return f'sum(e2e_hostile{{exporter="{namespace}",kind="{kind}"}})'


def scraped(cluster: Cluster, namespace: str) -> None:
    assert cluster.prometheus_url is not None
    url = cluster.prometheus_url

    def seen() -> bool:
        try:
            return query_total_sync(url, query(namespace, "fine")) == 12.0
        except MetricError:
            return False

    wait_until(seen, 60, "Prometheus to scrape the hostile exporter")


def query_total_sync(url: str, promql: str) -> float:
    import asyncio

    return asyncio.run(query_total(url, promql)).value


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        pytest.param("nan", "NaN; ignored", id="nan"),
        pytest.param("inf", "+Inf; ignored", id="plus-inf"),
        pytest.param("negative", "negative; ignored", id="negative"),
    ],
)
def test_real_prometheus_hostile_values_are_refused_by_the_adapter(
    cluster: Cluster, namespace: str, hostile: MetricsSource, kind: str, says: str
) -> None:
    scraped(cluster, namespace)
    assert cluster.prometheus_url is not None
    with pytest.raises(MetricError) as caught:
        query_total_sync(cluster.prometheus_url, query(namespace, kind))
    assert caught.value.reason == "InvalidValue" and says in caught.value.message
    url = cluster.prometheus_url

    def ranged() -> RangeSeries | None:
        # The range's end is whole seconds: the first scrape may lie just past it.
        now = time.time()
        try:
            return query_range(url, query(namespace, kind), now - 10, now, 2)
        except PrometheusError:
            return None

    series = wait_until(ranged, 30, "a range answer over the hostile series")
    assert all(value is None for value in series.values)
    assert set(series.ignored) == {says.split(";")[0]}  # every sample was of that kind
    assert series.ignored_text().startswith("ignored ")


@pytest.fixture(scope="module")
def operator(cluster: Cluster, crds: Cluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        "bad-input", args=("--namespace", f"e2e-{module_tag(__name__)}-*")
    ).start()
    yield process
    process.stop()


def condition(cluster: Cluster, ns: str, name: str, kind: str) -> dict[str, Any]:
    found = cluster.json("get", "adaptiveservice", name, "-n", ns).get("status") or {}
    assert isinstance(found, dict)
    return next((dict(c) for c in found.get("conditions", []) if c["type"] == kind), {})


def replicas(cluster: Cluster, ns: str, name: str) -> int:
    spec = cluster.json("get", "deployment", name, "-n", ns)["spec"]
    assert isinstance(spec, dict)
    return int(spec["replicas"])


def test_the_operator_ignores_nan_load_says_so_and_resumes(
    cluster: Cluster, namespace: str, hostile: MetricsSource, operator: OperatorProcess
) -> None:
    scraped(cluster, namespace)
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=deployment_yaml(cluster, "web", 3)
    )
    # Its health metric (for healing) is +Inf: healing must not act on it, and say so.
    healing = f"  healing: {{enabled: true, metrics: {{latency: '{query(namespace, 'inf')}'}}}}"
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=service(healing, query=query(namespace, "nan")),
    )

    def unreadable() -> dict[str, Any] | None:
        found = condition(cluster, namespace, "web", "MetricsAvailable")
        return found if found.get("status") == "False" else None

    found = wait_until(unreadable, 90, "MetricsAvailable=False on the NaN load")
    assert found["reason"] == "InvalidValue"
    assert "NaN; ignored, not acted on" in found["message"]
    # A NaN load is no reason to scale down: the 3 replicas stay.
    assert replicas(cluster, namespace, "web") == 3
    said = wait_until(
        lambda: events(cluster, namespace, "HealingMetricsIgnored"),
        60,
        "the healing Event on the +Inf health metric",
    )
    assert "not acting on data that could not be read" in said[0]
    assert "metric latency" in said[0] and "+Inf; ignored" in said[0]

    hostile.set("e2e_hostile", 12.0, {"kind": "nan"})  # readable again: 12 / 10 -> 2
    wait_until(
        lambda: replicas(cluster, namespace, "web") == 2,
        90,
        "the service to scale on the readable load",
    )
    assert condition(cluster, namespace, "web", "MetricsAvailable")["status"] == "True"
    assert len(events(cluster, namespace, "HealingMetricsIgnored")) == 1  # said once
    cluster.kubectl("delete", "adaptiveservice", "web", "-n", namespace, "--timeout=30s")


def events(cluster: Cluster, ns: str, reason: str) -> list[str]:
    items = cluster.json("get", "events", "-n", ns)["items"]
    assert isinstance(items, list)
    return [e["message"] for e in items if e.get("reason") == reason]
