"""The chart installed as a user would, with its default values: two operator pods that really
run (real containers, probes really probed, the ServiceAccount token mounted by the kubelet and
used through in-cluster config), one of them leading, scaling and healing a real workload.

The cluster provides what a user's cluster would: the chart's default image present on the node
(built here from the Dockerfile and tagged as the chart names it) and a Prometheus at the
chart's default URL (`prometheus-operated.monitoring.svc:9090`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from real_pods import apply, http_deployment, scraped, wait_ready

from conftest import Cluster
from support import wait_until

CHART = Path(__file__).resolve().parent.parent / "charts" / "adaptive-operator"
RELEASE, SYSTEM = "adaptive-operator", "adaptive-system"
CRDS = ("adaptiveservices.adaptive.dev", "shardsets.adaptive.dev")


def helm(cluster: Cluster, *args: str) -> str:
    result = subprocess.run(["helm", "--kubeconfig", cluster.kubeconfig, *args],
                            capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(crds: Cluster, runs_containers: Cluster,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = crds
    # The session applied the CRDs with kubectl; these marks let Helm adopt them as a user's
    # install would own them (the chart keeps CRDs on uninstall).
    for crd in CRDS:
        cluster.kubectl("annotate", "--overwrite", f"crd/{crd}",
                        f"meta.helm.sh/release-name={RELEASE}",
                        f"meta.helm.sh/release-namespace={SYSTEM}")
        cluster.kubectl("label", "--overwrite", f"crd/{crd}", "app.kubernetes.io/managed-by=Helm")
    # Default values, but for where the pods go: the local cluster's real node is tainted so
    # that the suite's fake pods stay on KWOK (`Cluster.placement`; nothing on kind).
    placement = tmp_path_factory.mktemp("chart") / "placement.json"
    placement.write_text(json.dumps(cluster.placement))
    helm(cluster, "install", RELEASE, str(CHART), "--namespace", SYSTEM, "--create-namespace",
         "--values", str(placement), "--wait", "--timeout", "300s")
    yield cluster
    helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM, "--wait")
    cluster.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)


def operator_pods(cluster: Cluster) -> list[dict[str, Any]]:
    pods = cluster.json("get", "pods", "-n", SYSTEM, "-l",
                        f"app.kubernetes.io/instance={RELEASE}")["items"]
    assert isinstance(pods, list)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def leader(cluster: Cluster) -> str | None:
    leases = cluster.json("get", "leases", "-n", SYSTEM)["items"]
    assert isinstance(leases, list)
    holders = [lease["spec"].get("holderIdentity") for lease in leases
               if lease["metadata"]["name"].startswith("adaptive-operator")]
    return next((str(h) for h in holders if h), None)


def test_default_values_run_two_ready_operator_pods_one_leading(installed: Cluster) -> None:
    pods = operator_pods(installed)
    assert len(pods) == 2
    for pod in pods:
        (status,) = pod["status"]["containerStatuses"]
        # Ready is the kubelet's verdict from the readiness probe it ran against the pod.
        assert status["ready"] and status["started"] and status["restartCount"] == 0, status
        assert status["imageID"], "a real container runtime reports the image it ran"
        assert pod["spec"]["containers"][0]["readinessProbe"]
        volumes = {v["name"] for v in pod["spec"]["volumes"]}
        assert any(v.startswith("kube-api-access-") for v in volumes), volumes
    holder = wait_until(lambda: leader(installed), 60, "a replica to hold the Lease")
    # The holder is one of the pods: it reached the API server through in-cluster config.
    assert any(holder.startswith(p["metadata"]["name"]) for p in pods), holder


def service(namespace: str, *, healing: bool) -> str:
    load = f'sum(rate(http_requests_total{{namespace="{namespace}",app="loadgen"}}[10s]))'
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 4, "syncPeriodSeconds": 2,
        "metrics": [{"name": "load", "query": load, "targetPerReplica": 2}],
    }
    if healing:
        spec.update(mode="Paused", healing={"enabled": True, "cooldownSeconds": 10,
                                             "verifySeconds": 8,
                                             "metrics": {"load": load}})
    return json.dumps({"apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
                       "metadata": {"name": "web"}, "spec": spec})


def test_the_installed_operator_scales_a_real_workload(installed: Cluster, namespace: str) -> None:
    cluster = installed
    apply(cluster, namespace, http_deployment(cluster, "loadgen", self_load=6),
          http_deployment(cluster, "web"))
    scraped(cluster, namespace, "loadgen")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service(namespace, healing=False))
    wait_ready(cluster, namespace, "web", 3, timeout=180)
    status = cluster.json("get", "adaptiveservice", "web", "-n", namespace)["status"]
    assert status["desiredReplicas"] == 3


def test_the_installed_operator_heals_a_real_workload(installed: Cluster, namespace: str) -> None:
    cluster = installed
    apply(cluster, namespace, http_deployment(cluster, "loadgen", self_load=2),
          http_deployment(cluster, "web", startup_seconds=100_000))
    scraped(cluster, namespace, "loadgen")
    first = {p["metadata"]["name"] for p in web_pods(cluster, namespace)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service(namespace, healing=True))

    def evicted() -> bool:
        return not first & {p["metadata"]["name"] for p in web_pods(cluster, namespace)}

    wait_until(evicted, 180, "the never-ready pod to be evicted by the installed operator",
               interval=2.0)
    reasons = {e["reason"] for e in cluster.json("get", "events", "-n", namespace)["items"]}
    assert "UnhealthyPods" in reasons


def web_pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    pods = cluster.json("get", "pods", "-n", namespace, "-l", "app=web")["items"]
    assert isinstance(pods, list)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

