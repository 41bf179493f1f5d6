"""Healing real pods: a bad rollout that really fails is rolled back, and pods that never turn
ready are evicted (a real PodDisruptionBudget holding the eviction back until it allows it),
then restarted. The health metrics are the pods' own, scraped by Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from operator_process import OperatorProcess
from real_pods import apply, events, http_deployment, ledger, ready_pods, scraped, wait_ready

from conftest import Cluster, module_tag
from support import wait_until

SYNC = 2
ROLLBACK_DEADLINE = 120  # seconds from the bad rollout to the rollback
TRAINING_ROWS = 40  # the spec's minTrainingRows: 60 rows (2 min) to the first fit, not 120
WARM_UP = 420  # seconds for the detector's first fit (60 rows of history at a 2 s step)


@pytest.fixture(scope="module")
def operator(crds: Cluster, runs_containers: Cluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess("real-healing",
                              args=("--namespace", f"e2e-{module_tag(__name__)}-*",
                                    "--leader-election", "false")).start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def services_deleted(crds: Cluster, namespace: str,
                     operator: OperatorProcess) -> Iterator[None]:
    """Delete the service while the operator still watches: it then removes its finalizer."""
    yield
    crds.kubectl("delete", "adaptiveservices", "--all", "-n", namespace, "--timeout=30s",
                 check=False)


def health_queries(namespace: str) -> dict[str, str]:
    scope = f'namespace="{namespace}",app="web"'
    window = "[10s]"
    return {
        # A healthy workload has never answered 500, so that series does not exist yet.
        "errorRatio": (f'(sum(rate(http_requests_total{{{scope},code=~"5.."}}{window})) '
                       f"or vector(0)) / sum(rate(http_requests_total{{{scope}}}{window}))"),
        "latency": (f"histogram_quantile(0.9, sum by (le) "
                    f"(rate(http_request_duration_seconds_bucket{{{scope}}}{window})))"),
    }


def service(namespace: str, *, cooldown: int = 60) -> str:
    load = f'sum(rate(http_requests_total{{namespace="{namespace}",app="web"}}[10s]))'
    return json.dumps({
        "apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 4, "mode": "Paused", "syncPeriodSeconds": SYNC,
            "metrics": [{"name": "load", "query": load, "targetPerReplica": 100}],
            "healing": {"enabled": True, "mode": "Active", "metrics": health_queries(namespace),
                        "rollbackWindowSeconds": 300, "cooldownSeconds": cooldown,
                        "verifySeconds": 16, "minTrainingRows": TRAINING_ROWS},
        },
    })


def status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    return dict(cluster.json("get", "adaptiveservice", "web", "-n", namespace))


def version(cluster: Cluster, namespace: str) -> str:
    spec: Any = cluster.json("get", "deployment", "web", "-n", namespace)["spec"]
    return str(spec["template"]["metadata"]["labels"]["version"])


def test_a_bad_rollout_that_really_fails_is_rolled_back(
        crds: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster = crds
    apply(cluster, namespace, http_deployment(cluster, "web", replicas=2, self_load=8))
    wait_ready(cluster, namespace, "web", 2)
    scraped(cluster, namespace, "web", 2)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service(namespace))
    wait_until(lambda: ((status(cluster, namespace).get("status") or {}).get("healing") or {})
               .get("lastVerdict"), WARM_UP, "the detector's first verdict", interval=2.0)

    # The new version answers half of its requests with 500: a real, failing rollout.
    apply(cluster, namespace, http_deployment(cluster, "web", replicas=2, self_load=8,
                                              version="v2", error_ratio=0.5))
    rolled_back = wait_until(
        lambda: [e for e in ledger(cluster, namespace, "web") if e["action"] == "RollBack"],
        ROLLBACK_DEADLINE, "the operator to roll the bad version back", interval=2.0)
    assert rolled_back[0]["outcome"] in ("Pending", "Helped")
    # The ledger records the intent before the write is made (nothing lost on a crash between
    # the two): the Deployment's template follows within a sync, not at the same instant (a
    # loaded machine once showed the ledger's RollBack with the template still at v2).
    wait_until(lambda: version(cluster, namespace) == "v1", 60,
               "the Deployment's template to be back at v1", interval=1.0)
    wait_until(lambda: len(pods := ready_pods(cluster, namespace, "web")) >= 2 and all(
        p["metadata"]["labels"]["version"] == "v1" for p in pods), 120,
        "every ready pod to run the good version again", interval=1.0)
    explained = events(cluster, namespace, "AnomalyAfterRollout")
    assert explained and "rolling back to revision 1" in explained[0]


def pdb(min_available: int, policy: str) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": "web"}},
                     "unhealthyPodEvictionPolicy": policy}}


def live_pod_names(cluster: Cluster, namespace: str) -> set[str]:
    pods = cluster.json("get", "pods", "-n", namespace, "-l", "app=web")["items"]
    assert isinstance(pods, list)
    return {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}


def test_pods_that_never_turn_ready_are_evicted_when_the_budget_allows_then_restarted(
        crds: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster = crds
    # The budget wants one healthy pod and there is none: it refuses evicting the unhealthy one.
    apply(cluster, namespace, pdb(1, "IfHealthyBudget"),
          http_deployment(cluster, "web", replicas=1, startup_seconds=100_000, self_load=4))
    first = wait_until(lambda: live_pod_names(cluster, namespace), 60, "the first pod")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service(namespace, cooldown=10))
    held = wait_until(lambda: events(cluster, namespace, "HealingActionFailed"), 120,
                      "an eviction that the PodDisruptionBudget holds back", interval=2.0)
    assert "PodDisruptionBudget does not allow" in held[0]
    assert first <= live_pod_names(cluster, namespace)

    # The platform team lets unhealthy pods go: the next eviction goes through.
    apply(cluster, namespace, pdb(1, "AlwaysAllow"))
    wait_until(lambda: not (first & live_pod_names(cluster, namespace)), 180,
               "the unhealthy pod to be evicted", interval=2.0)
    assert events(cluster, namespace, "UnhealthyPods")

    # Its replacement never turns ready either: eviction did not help, so the rollout restarts.
    restarted = wait_until(
        lambda: [e for e in ledger(cluster, namespace, "web") if e["action"] == "RolloutRestart"],
        180, "the rollout restart that follows an eviction that did not help", interval=2.0)
    assert restarted
    template: Any = cluster.json("get", "deployment", "web", "-n", namespace)["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"].get("annotations", {})
