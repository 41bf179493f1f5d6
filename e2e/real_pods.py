"""Builders for workloads that run as real containers: the e2e workload image, scraped by
Prometheus through Kubernetes service discovery, as on a user's cluster.

Where they run is the cluster's business (`Cluster.placement`): on the local cluster, the real
node (tainted, so that the suite's fake pods stay on KWOK); on kind, any node.
"""

from __future__ import annotations

import json
from typing import Any

from conftest import WORKLOAD_IMAGE, Cluster
from support import wait_until

PORT = 8080
Manifest = dict[str, Any]


def container(command: str, args: list[str], *, probe: bool = True) -> Manifest:
    spec: Manifest = {
        "name": "app", "image": WORKLOAD_IMAGE, "imagePullPolicy": "Never",
        "command": [command], "args": args,
        "ports": [{"name": "http", "containerPort": PORT}],
        "resources": {"requests": {"cpu": "10m", "memory": "24Mi"},
                      "limits": {"memory": "128Mi"}},
    }
    if probe:
        spec["readinessProbe"] = {"httpGet": {"path": "/ready", "port": PORT},
                                  "periodSeconds": 1, "failureThreshold": 1}
    return spec


def pod_template(cluster: Cluster, app: str, containers: list[Manifest],
                 version: str = "v1") -> Manifest:
    return {
        "metadata": {
            "labels": {"app": app, "version": version},
            # How the e2e workloads announce their metrics on both kinds of cluster.
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT)},
        },
        "spec": {**cluster.placement, "terminationGracePeriodSeconds": 1,
                 "enableServiceLinks": False, "containers": containers},
    }


def http_args(version: str = "v1", error_ratio: float = 0.0, latency_ms: float = 5.0,
              startup_seconds: float = 0.0, self_load: float = 0.0) -> list[str]:
    return [f"--error-ratio={error_ratio}", f"--latency-ms={latency_ms}",
            f"--startup-seconds={startup_seconds}", f"--self-load={self_load}",
            f"--version-label={version}"]


def http_deployment(cluster: Cluster, name: str, *, replicas: int = 1, version: str = "v1",
                    error_ratio: float = 0.0, latency_ms: float = 5.0,
                    startup_seconds: float = 0.0, self_load: float = 0.0) -> Manifest:
    """workload-http with its health set by arguments; `version` names the rollout."""
    args = http_args(version, error_ratio, latency_ms, startup_seconds, self_load)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": pod_template(cluster, name, [container("workload-http", args)], version),
        },
    }


def apply(cluster: Cluster, namespace: str, *manifests: Manifest) -> None:
    documents = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(documents))


def ready_pods(cluster: Cluster, namespace: str, app: str) -> list[Manifest]:
    pods = cluster.json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
    assert isinstance(pods, list)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in p.get("status", {}).get("conditions", []))]


def wait_ready(cluster: Cluster, namespace: str, app: str, count: int,
               timeout: float = 180) -> list[Manifest]:
    return wait_until(lambda: (pods if len(pods := ready_pods(cluster, namespace, app)) >= count
                               else None),
                      timeout, f"{count} ready pods of {namespace}/{app}", interval=1.0)


def scraped(cluster: Cluster, namespace: str, app: str, count: int = 1) -> None:
    """Prometheus scrapes `count` of the app's pods (the operator reads nothing before that)."""
    from support import prom_query

    assert cluster.prometheus_url, "the cluster has no Prometheus URL"
    url = cluster.prometheus_url
    query = f'count(up{{namespace="{namespace}",app="{app}"}} == 1)'
    wait_until(lambda: (r := prom_query(url, query)) and float(r[0]["value"][1]) >= count,  # type: ignore[index]
               120, f"Prometheus to scrape {count} pods of {namespace}/{app}", interval=1.0)


LEDGER = "adaptive.dev/healing-ledger"


def ledger(cluster: Cluster, namespace: str, name: str) -> list[Manifest]:
    """The healing ledger of an AdaptiveService (its annotation)."""
    found: Any = cluster.json("get", "adaptiveservice", name, "-n", namespace)
    annotations = found["metadata"].get("annotations") or {}
    entries: list[Manifest] = json.loads(annotations.get(LEDGER, "[]"))
    return entries


def events(cluster: Cluster, namespace: str, reason: str) -> list[str]:
    """The messages of the namespace's Events with this reason."""
    items = cluster.json("get", "events", "-n", namespace)["items"]
    assert isinstance(items, list)
    return [e["message"] for e in items if e.get("reason") == reason]
