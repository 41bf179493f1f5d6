"""Scaling a Deployment whose pods really start: containers on a real node, load that is real
HTTP traffic, metrics that Prometheus scrapes through Kubernetes service discovery, and the
look-ahead learned from the pods' real readiness (KWOK's fake pods are ready at once).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from operator_process import OperatorProcess, watching
from real_pods import apply, http_deployment, scraped, wait_ready

from conftest import Cluster, module_tag
from support import wait_until

SYNC = 2  # seconds, the scrape interval
STARTUP = 8  # seconds each `web` pod takes before it reports ready
LOAD_RPS = 6.0  # requests per second the load generator sends itself
TARGET = 2.0  # requests per second one `web` replica serves


@pytest.fixture(scope="module")
def operator(crds: Cluster, runs_containers: Cluster) -> Iterator[OperatorProcess]:
    with watching("real-scaling", f"e2e-{module_tag(__name__)}-") as process:
        yield process


def service(namespace: str) -> str:
    load = f'sum(rate(http_requests_total{{namespace="{namespace}",app="loadgen"}}[10s]))'
    return json.dumps({
        "apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 6, "mode": "Active", "syncPeriodSeconds": SYNC,
            "metrics": [{"name": "load", "query": load, "targetPerReplica": TARGET}],
            "predictive": {"enabled": True, "historySeconds": 600},
        },
    })


def test_real_pods_are_scaled_and_their_start_up_time_is_learned(
        crds: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster = crds
    apply(cluster, namespace,
          http_deployment(cluster, "loadgen", self_load=LOAD_RPS),
          http_deployment(cluster, "web", startup_seconds=STARTUP))
    wait_ready(cluster, namespace, "web", 1)
    scraped(cluster, namespace, "loadgen")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service(namespace))

    expected = round(LOAD_RPS / TARGET)
    pods = wait_ready(cluster, namespace, "web", expected, timeout=240)
    assert len(pods) == expected

    def learned() -> dict[str, object] | None:
        status = cluster.json("get", "adaptiveservice", "web", "-n", namespace).get("status", {})
        predictive = status.get("forecast") or {}
        source = str(predictive.get("lookAheadSource", ""))
        return predictive if source.startswith("learned") else None

    predictive = wait_until(learned, 120, "a look-ahead learned from the pods' readiness")
    # Each pod took STARTUP seconds to turn ready; one sync period is added on top.
    assert float(predictive["lookAheadSeconds"]) >= STARTUP + SYNC  # type: ignore[arg-type]
    assert float(predictive["lookAheadSeconds"]) <= 60  # type: ignore[arg-type]
