"""Any scalable target: the operator finds the resource by API discovery and scales it through
its /scale subresource: a StatefulSet, a core-group ReplicationController, a custom resource
of the test suite (an irregular plural that no guess would find) and an Argo Rollout.

The Rollout CRD is Argo Rollouts' own (Apache-2.0), read from its Go module at a pinned version
and checksum, never copied here. No Argo controller runs: the operator writes the Rollout's
replicas through /scale, and nothing turns them into pods; healing says what it cannot do.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from operator_process import OperatorProcess, watching

from conftest import Cluster, module_tag
from support import wait_until

SYNC = 2
WIDGETS = Path(__file__).resolve().parent / "fixtures" / "widgets.yaml"
ARGO_ROLLOUTS = "github.com/argoproj/argo-rollouts@v1.8.3"
ARGO_ROLLOUTS_SUM = "h1:blbtQva4IK9r6gFh+dWkCrLnFdPOWiv9ubQYu36qeaA="  # go.sum's line for it
POD = """
    metadata: {{labels: {{app: {name}}}}}
    spec: {pod}"""  # a stand-in's spec (`Cluster.stand_in`), as JSON
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
    "Rollout": """
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {{canary: {{}}}}
  template:""" + POD,
}
API_VERSIONS = {"StatefulSet": "apps/v1", "ReplicationController": "v1",
                "Widget": "e2e.adaptive.dev/v1", "Rollout": "argoproj.io/v1alpha1"}
RESOURCES = {"StatefulSet": "statefulset", "ReplicationController": "replicationcontroller",
             "Widget": "widgetries.e2e.adaptive.dev", "Rollout": "rollouts.argoproj.io"}


def service_yaml(name: str, api_version: str, kind: str, query: str) -> str:
    # Healing on (dry run): HealingLimited then says what it can and cannot do to the kind.
    return f"""
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: {api_version}, kind: {kind}, name: {name}}}
  maxReplicas: 10
  syncPeriodSeconds: {SYNC}
  metrics: [{{name: load, query: '{query}', targetPerReplica: 10}}]
  healing: {{enabled: true, mode: DryRun}}
"""


@pytest.fixture(scope="module")
def widgets(crds: Cluster) -> Cluster:
    crds.kubectl("apply", "-f", str(WIDGETS))
    crds.wait_established("widgetries.e2e.adaptive.dev")
    return crds


@pytest.fixture(scope="module")
def rollouts(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """Argo Rollouts' Rollout CRD from its Go module (through the Go module proxy, checked
    against the checksum pinned here)."""
    found = json.loads(subprocess.run(
        ["go", "mod", "download", "-json", ARGO_ROLLOUTS], cwd=tmp_path_factory.mktemp("go"),
        capture_output=True, text=True, check=True, timeout=300).stdout)
    assert found["Sum"] == ARGO_ROLLOUTS_SUM, found
    crd = Path(found["Dir"]) / "manifests" / "crds" / "rollout-crd.yaml"
    # Server-side: the CRD is too large for client-side apply's last-applied annotation.
    crds.kubectl("apply", "--server-side", "-f", str(crd))

    crds.wait_established("rollouts.argoproj.io")
    return crds


@pytest.fixture(scope="module")
def operator(widgets: Cluster, rollouts: Cluster) -> Iterator[OperatorProcess]:
    with watching("targets", f"e2e-{module_tag(__name__)}-") as process:
        yield process


# Healing rolls back and restarts only the kinds whose revisions it knows; for any other kind it
# says so (the pods through the /scale selector can still be evicted, the target scaled out).
LIMITED = {"StatefulSet": ("False", "AllRemediesAvailable"),
           "ReplicationController": ("True", "RemediesUnavailable"),
           "Widget": ("True", "RemediesUnavailable"),
           "Rollout": ("True", "RemediesUnavailable")}


def replicas(cluster: Cluster, ns: str, kind: str, name: str) -> int:
    return int(cluster.json("get", RESOURCES[kind], name, "-n", ns)["spec"]["replicas"])


def conditions(cluster: Cluster, ns: str, name: str) -> dict[str, dict[str, str]]:
    status = cluster.json("get", "adaptiveservice", name, "-n", ns).get("status") or {}
    return {c["type"]: c for c in status.get("conditions", [])}


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_a_target_found_by_discovery_is_scaled(crds: Cluster, namespace: str,
                                               operator: OperatorProcess, kind: str) -> None:
    cluster, name = crds, kind.lower()
    pod = json.dumps(cluster.stand_in())
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    stdin=TARGETS[kind].format(name=name, pod=pod))
    query = "sum(vector(27))"  # a load of 27 at 10 per replica: 3 replicas (on any cluster)
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    stdin=service_yaml(name, API_VERSIONS[kind], kind, query))
    wait_until(lambda: replicas(cluster, namespace, kind, name) == 3, 60,
               f"the {kind} scaled to 3")
    scaled = cluster.json("get", "events", "-n", namespace)["items"]
    assert any(e.get("reason") == "Scaled" and f"{kind} {name} 1 -> 3" in e["message"]
               for e in scaled)
    limited = wait_until(lambda: conditions(cluster, namespace, name).get("HealingLimited"),
                         30, "the HealingLimited condition")
    assert (limited["status"], limited["reason"]) == LIMITED[kind], limited
    if kind in ("Rollout", "Widget", "ReplicationController"):
        assert f"healing cannot RollBack or RolloutRestart a {kind}" in limited["message"]


def test_a_kind_the_api_server_does_not_serve_is_reported(
        crds: Cluster, namespace: str, operator: OperatorProcess) -> None:
    crds.kubectl("apply", "-n", namespace, "-f", "-",
                 stdin=service_yaml("ghost", "apps/v1", "Gadget", "sum(x)"))
    ready = wait_until(lambda: conditions(crds, namespace, "ghost").get("Ready"), 60,
                       "the Ready condition")
    assert ready["status"] == "False" and ready["reason"] == "UnknownKind"
    assert "serves no kind Gadget in apps/v1" in ready["message"]
