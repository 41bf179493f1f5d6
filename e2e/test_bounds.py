"""Bounds on the real API server: objects at every bound are accepted (so the CRDs' CEL rules fit
the API server's cost budget, which it checks when the CRDs are applied and at each write), one
step past a bound is refused naming the field, and the chart's optional ValidatingAdmissionPolicy
refuses ShardSet pod templates that reach beyond the namespace's own pods."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adaptive_operator.api.base import MAX_LOOK_AHEAD_ROWS, MAX_METRICS, MAX_QUERY_LENGTH

from conftest import Cluster
from support import helm_binary

CHART = Path(__file__).resolve().parent.parent / "charts" / "adaptive-operator"
QUERY = "sum(rate(x[1m]))" + " " * (MAX_QUERY_LENGTH - len("sum(rate(x[1m]))"))


def service(name: str = "a" * 253, **spec: object) -> str:
    body = {"scaleTargetRef": {"name": name}, "maxReplicas": 100_000, "syncPeriodSeconds": 1,
            "metrics": [{"name": f"m{i}", "query": QUERY, "targetPerReplica": 1e15}
                        for i in range(MAX_METRICS)],
            "predictive": {"lookAheadSeconds": MAX_LOOK_AHEAD_ROWS,
                           "historySeconds": 90 * 86400},
            "healing": {"metrics": {f"{i:063d}": QUERY for i in range(MAX_METRICS)}}}
    body.update(spec)
    return json.dumps({"apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
                       "metadata": {"name": "edge"}, "spec": body})


def apply(cluster: Cluster, namespace: str, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, "apply", "-n", namespace, "-f", "-"],
        input=text, capture_output=True, text=True, timeout=60)


def test_a_service_at_every_bound_is_accepted(crds: Cluster, namespace: str) -> None:
    result = apply(crds, namespace, service())
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("changes", "expected"), [
    pytest.param({"maxReplicas": 100_001}, "spec.maxReplicas", id="max-replicas"),
    pytest.param({"scaleTargetRef": {"name": "Web_App"}}, "spec.scaleTargetRef.name",
                 id="target-name-not-dns-1123"),
    pytest.param({"syncPeriodSeconds": 2,
                  "predictive": {"lookAheadSeconds": 2 * MAX_LOOK_AHEAD_ROWS + 1}},
                 "lookAheadSeconds must be at most", id="look-ahead-over-its-rows-cel"),
    pytest.param({"healing": {"metrics": {"x" * 64: "up"}}}, "health metric names must be",
                 id="health-metric-name-cel"),
    pytest.param({"metrics": [{"name": f"m{i}", "query": "x", "targetPerReplica": 1}
                              for i in range(MAX_METRICS + 1)]}, "spec.metrics",
                 id="too-many-metrics"),
])
def test_one_step_past_a_bound_is_refused(
        crds: Cluster, namespace: str, changes: dict[str, object], expected: str) -> None:
    result = apply(crds, namespace, service(**changes))  # type: ignore[arg-type]
    assert result.returncode != 0 and expected in result.stderr, result.stderr


@pytest.fixture
def admission_policy(crds: Cluster) -> Iterator[Cluster]:
    rendered = subprocess.run(
        [helm_binary(), "template", "ao", str(CHART), "--set", "admissionPolicy.enabled=true",
         "--show-only", "templates/admissionpolicy.yaml"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    crds.kubectl("apply", "-f", "-", stdin=rendered)
    try:
        yield crds
    finally:
        crds.kubectl("delete", "-f", "-", "--ignore-not-found", stdin=rendered)


def shard_set(pod_spec: dict[str, object]) -> str:
    return json.dumps({
        "apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet", "metadata": {"name": "db"},
        "spec": {"shards": 1, "slots": 16, "template": {"template": {"spec": pod_spec}},
                 "migration": {"jobTemplate": {"template": {"spec": {"containers": []}}}}}})


# No pod is made from these templates (no operator runs in this module): they need no stand-in.
PLAIN: dict[str, object] = {"containers": [{"name": "db", "image": "db"}]}


def refused_once_active(cluster: Cluster, namespace: str, text: str) -> str:
    """The policy takes effect a moment after it is created: retry until it refuses."""
    deadline = time.monotonic() + 60
    while True:
        result = apply(cluster, namespace, text)
        if result.returncode != 0 or time.monotonic() > deadline:
            cluster.kubectl("delete", "-n", namespace, "shardset/db", "--ignore-not-found")
            return result.stderr
        cluster.kubectl("delete", "-n", namespace, "shardset/db", "--wait=true")
        time.sleep(1)


@pytest.mark.parametrize(("pod_spec", "expected"), [
    pytest.param({**PLAIN, "serviceAccountName": "admin"}, "may not set serviceAccountName",
                 id="service-account"),
    pytest.param({"containers": [{"name": "db", "image": "db",
                                  "securityContext": {"privileged": True}}]},
                 "may not be privileged", id="privileged"),
    pytest.param({**PLAIN, "volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
                 "may not mount hostPath", id="host-path"),
    pytest.param({**PLAIN, "hostNetwork": True}, "host's network", id="host-network"),
])
def test_the_admission_policy_refuses_pods_reaching_beyond_the_namespace(
        admission_policy: Cluster, namespace: str, pod_spec: dict[str, object],
        expected: str) -> None:
    assert expected in refused_once_active(admission_policy, namespace, shard_set(pod_spec))


def test_the_admission_policy_admits_a_plain_shard_set(
        admission_policy: Cluster, namespace: str) -> None:
    result = apply(admission_policy, namespace, shard_set(PLAIN))
    assert result.returncode == 0, result.stderr
