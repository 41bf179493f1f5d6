"""The ShardSet example as it stands, on real pods: its shards are real kv-servers and a resize
runs its real migration Jobs (kv-migrate), which complete; only where the pods go is added."""

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

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shardset.yaml"


@pytest.fixture(scope="module")
def operator(crds: Cluster, runs_containers: Cluster) -> Iterator[OperatorProcess]:
    with watching("real-examples", f"e2e-{module_tag(__name__)}-") as process:
        yield process


def placed(cluster: Cluster, shards: int) -> dict[str, Any]:
    example: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec = example["spec"]
    spec["shards"] = shards
    for pod in (spec["template"]["template"], spec["migration"]["jobTemplate"]["template"]):
        pod["spec"].update(cluster.placement)
    return example


def settled(cluster: Cluster, namespace: str, shards: int) -> bool:
    status: Any = cluster.json("get", "shardset", "kv", "-n", namespace).get("status") or {}
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
    return bool(ready.get("status") == "True" and status.get("readyShards") == shards
                and status.get("shards") == shards and status.get("migrationsInFlight") == 0)


def test_the_shardset_example_resizes_with_its_real_migration_jobs(
        crds: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster = crds
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(placed(cluster, 3)))
    wait_until(lambda: settled(cluster, namespace, 3), 240, "3 ready shards", interval=1.0)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(placed(cluster, 4)))
    seen: dict[str, Any] = {}

    def done() -> bool:
        jobs = cluster.json("get", "jobs", "-n", namespace)["items"]
        assert isinstance(jobs, list)
        seen.update({job["metadata"]["name"]: job for job in jobs})
        return settled(cluster, namespace, 4)

    wait_until(done, 240, "the ShardSet to settle at 4 ready shards", interval=1.0)
    assert seen, "a resize that moves slots runs migration Jobs"
    for job in seen.values():
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["kv-migrate"]
    status: Any = cluster.json("get", "shardset", "kv", "-n", namespace)["status"]
    degraded = [c for c in status["conditions"] if c["type"] == "Degraded"]
    assert all(c["status"] == "False" for c in degraded), degraded  # no move gave up
    cluster.kubectl("delete", "shardset", "kv", "-n", namespace, "--timeout=60s")
