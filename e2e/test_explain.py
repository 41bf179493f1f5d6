"""`adaptive-operator explain` as a user who may only `get` AdaptiveServices: a ServiceAccount
token with one Role on the real API server, and the test Prometheus."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from operator_process import ROOT, OperatorProcess, watching

from conftest import Cluster, module_tag
from support import deployment_yaml, wait_until

VIEWER = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: viewer}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: adaptiveservice-getter}
rules: [{apiGroups: [adaptive.dev], resources: [adaptiveservices], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewer-gets-adaptiveservices}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: adaptiveservice-getter}
subjects: [{kind: ServiceAccount, name: viewer}]
"""


def service_yaml(query: str) -> str:
    return f"""
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: web}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  maxReplicas: 10
  syncPeriodSeconds: 2
  metrics: [{{name: load, query: '{query}', targetPerReplica: 10}}]
"""


@pytest.fixture(scope="module")
def operator(crds: Cluster) -> Iterator[OperatorProcess]:
    with watching("explain", f"e2e-{module_tag(__name__)}-") as process:
        yield process


def viewer_kubeconfig(cluster: Cluster, namespace: str, path: Path) -> Path:
    """A kubeconfig holding only the viewer's token (the admin's server and CA)."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=VIEWER)
    token = cluster.kubectl("create", "token", "viewer", "-n", namespace).strip()
    admin = cluster.json("config", "view", "--raw", "--minify")
    entry = admin["clusters"][0]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "clusters": [entry],
        "users": [{"name": "viewer", "user": {"token": token}}],
        "contexts": [{"name": "viewer", "context": {"cluster": entry["name"], "user": "viewer",
                                                    "namespace": namespace}}],
        "current-context": "viewer"}))
    return path


def can_i(kubeconfig: Path, verb: str, namespace: str) -> str:
    result = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "auth", "can-i", verb,
                             "adaptiveservices.adaptive.dev", "-n", namespace],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip()


def check_viewer_may_only_get(viewer: Path, namespace: str) -> None:
    assert can_i(viewer, "get", namespace) == "yes"
    assert can_i(viewer, "list", namespace) == "no"
    assert can_i(viewer, "get", "default") == "no"


def check_explained(viewer: Path, namespace: str, prometheus_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "adaptive_operator", "explain", f"{namespace}/web",
         "--kubeconfig", str(viewer), "--prometheus-url", prometheus_url,
         "--rows", "20"], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in (f"AdaptiveService {namespace}/web -> Deployment web", "Last decision",
                 "-> 3 replicas", "input load: value 27 at 10 per replica",
                 "predictive scaling is off", "Healing: off", "Ready=True", "* load"):
        assert text in out, (text, out)


def test_explain_works_with_only_get(crds: Cluster, namespace: str,
                                     operator: OperatorProcess, tmp_path: Path) -> None:
    cluster = crds
    assert cluster.prometheus_url, "explain reads the cluster's Prometheus"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=deployment_yaml(cluster, "web"))
    # A constant load of 27 (any cluster's Prometheus answers it): 3 replicas.
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service_yaml("sum(vector(27))"))
    wait_until(lambda: (cluster.json("get", "adaptiveservice", "web", "-n", namespace)
                        .get("status") or {}).get("desiredReplicas") == 3, 60,
               "a decision on the load (3 replicas)")
    viewer = viewer_kubeconfig(cluster, namespace, tmp_path / "viewer.json")
    check_viewer_may_only_get(viewer, namespace)
    check_explained(viewer, namespace, cluster.prometheus_url)
    denied = subprocess.run(
        [sys.executable, "-m", "adaptive_operator", "explain", "default/web", "--kubeconfig",
         str(viewer)], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert denied.returncode == 2 and "403" in denied.stderr
