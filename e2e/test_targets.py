"""Any scalable target: the operator finds the resource by API discovery and scales it through
its /scale subresource: a StatefulSet, a core-group ReplicationController and a custom resource
of the test suite (an irregular plural that no guess would find)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adaptive_operator.demo.exporter import Exporter
from operator_process import OperatorProcess

from conftest import Cluster, module_tag
from support import wait_until

SYNC = 2
WIDGETS = Path(__file__).resolve().parent / "fixtures" / "widgets.yaml"
POD = """
    metadata: {{labels: {{app: {name}}}}}
    spec:
      tolerations: [{{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}}]
      containers: [{{name: app, image: registry.example/app:1}}]"""
TARGETS = {
    "StatefulSet": """
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  replicas: 1
  serviceName: {name}
  selector: {{matchLabels: {{app: {name}}}}}
  template:""" + POD,
    "ReplicationController": """
apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{app: {name}}}
  template:""" + POD,
    "Widget": """
apiVersion: e2e.adaptive.dev/v1
kind: Widget
metadata: {{name: {name}}}
spec: {{replicas: 1}}
""",
}
API_VERSIONS = {"StatefulSet": "apps/v1", "ReplicationController": "v1",
                "Widget": "e2e.adaptive.dev/v1"}
RESOURCES = {"StatefulSet": "statefulset", "ReplicationController": "replicationcontroller",
             "Widget": "widgetries.e2e.adaptive.dev"}


def service_yaml(name: str, api_version: str, kind: str, query: str) -> str:
    return f"""
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: {api_version}, kind: {kind}, name: {name}}}
  maxReplicas: 10
  syncPeriodSeconds: {SYNC}
  metrics: [{{name: load, query: '{query}', targetPerReplica: 10}}]
"""


@pytest.fixture(scope="module")
def widgets(crds: Cluster) -> Cluster:
    crds.kubectl("apply", "-f", str(WIDGETS))
    crds.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                 "crd/widgetries.e2e.adaptive.dev")
    return crds


@pytest.fixture(scope="module")
def operator(local_cluster: Cluster, widgets: Cluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess("targets",
                              args=("--namespace", f"e2e-{module_tag(__name__)}-*")).start()
    yield process
    process.stop()


@pytest.fixture
def load(local_cluster: Cluster, namespace: str) -> Iterator[Exporter]:
    with Exporter(namespace, local_cluster.targets_dir) as exporter:
        yield exporter


def replicas(cluster: Cluster, ns: str, kind: str, name: str) -> int:
    return int(cluster.json("get", RESOURCES[kind], name, "-n", ns)["spec"]["replicas"])


def conditions(cluster: Cluster, ns: str, name: str) -> dict[str, dict[str, str]]:
    status = cluster.json("get", "adaptiveservice", name, "-n", ns).get("status") or {}
    return {c["type"]: c for c in status.get("conditions", [])}


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_a_target_found_by_discovery_is_scaled(local_cluster: Cluster, namespace: str,
                                               operator: OperatorProcess, load: Exporter,
                                               kind: str) -> None:
    name = kind.lower()
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-",
                          stdin=TARGETS[kind].format(name=name))
    load.set("e2e_load", 27.0)  # 27 / 10 per replica -> 3 replicas
    query = f'sum(e2e_load{{exporter="{namespace}"}})'
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-",
                          stdin=service_yaml(name, API_VERSIONS[kind], kind, query))
    wait_until(lambda: replicas(local_cluster, namespace, kind, name) == 3, 60,
               f"the {kind} scaled to 3")
    scaled = local_cluster.json("get", "events", "-n", namespace)["items"]
    assert any(e.get("reason") == "Scaled" and f"{kind} {name} 1 -> 3" in e["message"]
               for e in scaled)


def test_a_kind_the_api_server_does_not_serve_is_reported(
        local_cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-",
                          stdin=service_yaml("ghost", "apps/v1", "Gadget", "sum(x)"))
    ready = wait_until(lambda: conditions(local_cluster, namespace, "ghost").get("Ready"), 60,
                       "the Ready condition")
    assert ready["status"] == "False" and ready["reason"] == "UnknownKind"
    assert "serves no kind Gadget in apps/v1" in ready["message"]
