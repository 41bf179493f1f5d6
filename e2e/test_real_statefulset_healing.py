"""Healing a StatefulSet's real pods: a bad version is rolled back through the StatefulSet's
ControllerRevisions, and a pod that never turns ready is evicted, while a pod that its selector
matches but that it does not own (pod -> StatefulSet, by UID) is never touched. The health
metrics are the pods' own, scraped by Prometheus.

The rollback's workload starts with the module (in a namespace of its own): the detector's first
fit needs minutes of history, which then pass while the eviction test runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest

from operator_process import OperatorProcess
from real_pods import (
    Manifest,
    apply,
    container,
    events,
    http_args,
    ledger,
    pod_template,
    ready_pods,
    scraped,
)

from conftest import Cluster, module_tag
from support import wait_until

SYNC = 2
TRAINING_ROWS = 40  # the spec's minTrainingRows: 60 rows (2 min) to the first fit, not 120
WARM_UP = 480  # seconds for the detector's first fit (60 rows of history at a 2 s step)


@pytest.fixture(scope="module")
def operator(crds: Cluster, runs_containers: Cluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess("real-sts-healing",
                              args=("--namespace", f"e2e-{module_tag(__name__)}-*",
                                    "--leader-election", "false")).start()
    yield process
    process.stop()


def statefulset(cluster: Cluster, name: str, *, version: str = "v1", error_ratio: float = 0.0,
                startup_seconds: float = 0.0, self_load: float = 8.0) -> Manifest:
    args = http_args(version, error_ratio, startup_seconds=startup_seconds, self_load=self_load)
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2 if startup_seconds == 0 else 1, "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": pod_template(cluster, name, [container("workload-http", args)], version),
        },
    }


def service(namespace: str, name: str, *, cooldown: int) -> str:
    scope = f'namespace="{namespace}",app="{name}"'
    requests = f"sum(rate(http_requests_total{{{scope}}}[10s]))"
    errors = f'(sum(rate(http_requests_total{{{scope},code=~"5.."}}[10s])) or vector(0))'
    return json.dumps({
        "apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name},
            "minReplicas": 1, "maxReplicas": 4, "mode": "Paused", "syncPeriodSeconds": SYNC,
            "metrics": [{"name": "load", "query": requests, "targetPerReplica": 100}],
            "healing": {"enabled": True, "mode": "Active", "cooldownSeconds": cooldown,
                        "rollbackWindowSeconds": 300, "verifySeconds": 16,
                        "minTrainingRows": TRAINING_ROWS,
                        "metrics": {"errorRatio": f"{errors} / {requests}"}},
        },
    })


@pytest.fixture(scope="module")
def warming(crds: Cluster, operator: OperatorProcess) -> Iterator[str]:
    """A namespace where a healthy StatefulSet and its service warm up from the module's start."""
    cluster = crds
    namespace = f"e2e-{module_tag(__name__)}-rollback-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", namespace)
    apply(cluster, namespace, statefulset(cluster, "db"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service(namespace, "db",
                                                                      cooldown=60))
    yield namespace
    cluster.kubectl("delete", "adaptiveservices", "--all", "-n", namespace, "--timeout=30s",
                    check=False)
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def pod_uids(cluster: Cluster, namespace: str, selector: str) -> dict[str, str]:
    pods = cluster.json("get", "pods", "-n", namespace, "-l", selector)["items"]
    assert isinstance(pods, list)
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods
            if not p["metadata"].get("deletionTimestamp")}


def check_owned_pod_evicted(cluster: Cluster, namespace: str, first: dict[str, str]) -> None:
    # Evicted: the StatefulSet re-creates the pod under the same name, with another UID.
    wait_until(lambda: pod_uids(cluster, namespace, "app=cache").get("cache-0")
               not in (None, first["cache-0"]), 180, "cache-0 evicted (and re-created)",
               interval=2.0)
    assert events(cluster, namespace, "UnhealthyPods")
    evicted = [e for e in ledger(cluster, namespace, "cache") if e["action"] == "EvictPods"]
    assert evicted and all(e.get("pods") == ["cache-0"] for e in evicted), evicted


def check_escalated_instead_of_evicting_again(cluster: Cluster, namespace: str) -> None:
    # The re-created cache-0 (same name) never turns ready either: once out of its start-up
    # grace the eviction is judged not to have helped, and healing escalates rather than evict
    # the same pod again every cooldown.
    restarted = wait_until(lambda: [e for e in ledger(cluster, namespace, "cache")
                                    if e["action"] == "RolloutRestart"], 180,
                           "the escalation to a rollout restart", interval=2.0)
    assert restarted
    judged = [e["outcome"] for e in ledger(cluster, namespace, "cache")
              if e["action"] == "EvictPods"]
    assert judged and "Helped" not in judged, judged


def test_a_never_ready_pod_is_evicted_and_one_it_does_not_own_is_left(
        crds: Cluster, namespace: str, warming: str) -> None:
    cluster = crds
    impostor = {"apiVersion": "v1", "kind": "Pod",  # matched by the selector, not owned
                "metadata": {"name": "cache-impostor", "labels": {"app": "cache",
                                                                 "version": "v1"}},
                "spec": pod_template(cluster, "cache", [container(
                    "workload-http", ["--startup-seconds=100000"])])["spec"]}
    apply(cluster, namespace, statefulset(cluster, "cache", startup_seconds=100_000), impostor)
    # The check gives the UIDs or something falsy; wait_until returns only the former.
    first = cast(dict[str, str], wait_until(
        lambda: (u := pod_uids(cluster, namespace, "app=cache")) and len(u) == 2 and u, 60,
        "the StatefulSet's pod and the impostor"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service(namespace, "cache",
                                                                      cooldown=10))
    check_owned_pod_evicted(cluster, namespace, first)
    check_escalated_instead_of_evicting_again(cluster, namespace)
    # Never-ready too, but not the StatefulSet's: never judged, never evicted.
    assert pod_uids(cluster, namespace, "app=cache")["cache-impostor"] == first["cache-impostor"]
    cluster.kubectl("delete", "adaptiveservices", "--all", "-n", namespace, "--timeout=30s")


def test_a_bad_statefulset_version_is_rolled_back_through_its_controller_revisions(
        crds: Cluster, warming: str) -> None:
    cluster, namespace = crds, warming
    scraped(cluster, namespace, "db", 2)

    def verdict() -> Any:
        found: Any = cluster.json("get", "adaptiveservice", "db", "-n", namespace)
        return ((found.get("status") or {}).get("healing") or {}).get("lastVerdict")

    wait_until(verdict, WARM_UP, "the detector's first verdict", interval=2.0)
    # The new version answers half of its requests with 500: a real, failing rollout.
    apply(cluster, namespace, statefulset(cluster, "db", version="v2", error_ratio=0.5))
    rolled_back = wait_until(
        lambda: [e for e in ledger(cluster, namespace, "db") if e["action"] == "RollBack"],
        150, "the operator to roll the bad version back", interval=2.0)
    assert rolled_back[0]["outcome"] in ("Pending", "Helped")
    spec: Any = cluster.json("get", "statefulset", "db", "-n", namespace)["spec"]
    assert spec["template"]["metadata"]["labels"]["version"] == "v1"
    wait_until(lambda: len(pods := ready_pods(cluster, namespace, "db")) >= 2 and all(
        p["metadata"]["labels"]["version"] == "v1" for p in pods), 180,
        "every ready pod to run the good version again", interval=1.0)
    explained = events(cluster, namespace, "AnomalyAfterRollout")
    assert explained and "rolling back to revision 1" in explained[0], explained
