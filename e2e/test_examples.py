"""Every file in examples/ is accepted by the API server as it stands, and each AdaptiveService
example, applied beside the workloads it names (stand-in pods), is reconciled by the operator: its
status says what the example is about (CouplingTrusted for coupling, HealingLimited for healing
and the StatefulSet target). The ShardSet example runs on real pods in test_real_examples.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from operator_process import OperatorProcess, watching

from conftest import Cluster, module_tag
from support import wait_until

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))
# What each example's status must show once reconciled: (service, condition type, status).
SHOWS = {
    "adaptiveservice.yaml": ("web", "Ready", None),
    "coupling.yaml": ("api", "CouplingTrusted", "False"),  # no shared history yet
    "healing.yaml": ("checkout", "HealingLimited", "False"),  # a Deployment: every remedy
    "statefulset.yaml": ("cache", "HealingLimited", "False"),  # a StatefulSet: every remedy
}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted(crds: Cluster, namespace: str, example: Path) -> None:
    out = crds.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(example))
    assert "created (server dry run)" in out


def test_every_service_example_is_checked_here() -> None:
    services = {p.name for p in EXAMPLES
                if any(d and d.get("kind") == "AdaptiveService"
                       for d in yaml.safe_load_all(p.read_text()))}
    assert services == set(SHOWS)


@pytest.fixture(scope="module")
def operator(crds: Cluster) -> Iterator[OperatorProcess]:
    with watching("examples", f"e2e-{module_tag(__name__)}-") as process:
        yield process


def workload(cluster: Cluster, kind: str, name: str) -> dict[str, Any]:
    """The workload an example scales, of stand-ins (`Cluster.stand_in`)."""
    labels = {"app": name}
    spec: dict[str, Any] = {
        "replicas": 1, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": cluster.stand_in()}}
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize("name", sorted(SHOWS))
def test_a_service_example_is_reconciled(crds: Cluster, namespace: str,
                                         operator: OperatorProcess, name: str) -> None:
    cluster = crds
    documents = [d for d in yaml.safe_load_all((EXAMPLES[0].parent / name).read_text()) if d]
    targets = [d["spec"]["scaleTargetRef"] for d in documents]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List",
         "items": [workload(cluster, t["kind"], t["name"]) for t in targets]}))
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES[0].parent / name))
    service, kind, status = SHOWS[name]

    def shown() -> dict[str, Any] | None:
        found = cluster.json("get", "adaptiveservice", service, "-n", namespace)
        conditions = (found.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), None)

    condition = wait_until(shown, 60, f"{service}'s {kind} condition")
    assert status is None or condition["status"] == status, condition
    cluster.kubectl("delete", "adaptiveservices", "--all", "-n", namespace, "--timeout=30s")
