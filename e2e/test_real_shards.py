"""A ShardSet whose shards are real key-value servers and whose migration Jobs really move keys.

Keys are written and counted through the routing client (`adaptive_operator.routing`), as an
application would use it: after each resize (3 -> 4 -> 2 shards, then 2 -> 3 with a migration
that fails half-way and is retried) every key is still there, exactly once, on the shard that
the routing table names for it.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from adaptive_operator import routing
from operator_process import OperatorProcess, watching
from real_pods import PORT, container, pod_template

from conftest import Cluster, module_tag
from support import wait_until

SLOTS = 64
KEYS = [f"user:{i}" for i in range(240)]
STEP_TIMEOUT = 240


@pytest.fixture(scope="module")
def operator(crds: Cluster, runs_containers: Cluster) -> Iterator[OperatorProcess]:
    with watching("real-shards", f"e2e-{module_tag(__name__)}-") as process:
        yield process


def shard_set(cluster: Cluster, shards: int, migrate_args: list[str]) -> dict[str, Any]:
    server = container("kv-server", ["--port", str(PORT), "--data-dir", "/data"])
    server["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    pod = pod_template(cluster, "kv", [server])
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    job_pod = pod_template(cluster, "kv-migrate", [container("kv-migrate", migrate_args,
                                                             probe=False)])
    job_pod["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet", "metadata": {"name": "kv"},
        "spec": {
            "shards": shards, "slots": SLOTS,
            "template": {"replicas": 1, "template": pod},
            "migration": {"jobTemplate": {"backoffLimit": 0, "template": job_pod},
                          "concurrency": 2, "backoffLimit": 3, "backoffSeconds": 1},
        },
    }


class Shards:
    """Reaches each shard's key-value server the way the cluster allows (`Cluster.pod_url`)."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def table(self) -> routing.RoutingTable:
        config_map = self.cluster.json("get", "configmap", "kv-routing", "-n", self.namespace)
        return routing.RoutingTable.from_config_map_data(config_map["data"])

    def url(self, address: str) -> str:
        service = address.split(".", 1)[0]
        pods = self.cluster.json("get", "pods", "-n", self.namespace, "-l",
                                 f"statefulset.kubernetes.io/pod-name={service}-0")["items"]
        assert isinstance(pods, list) and pods, f"no pod behind {address}"
        return self.cluster.pod_url(pods[0], PORT)

    def put(self, table: routing.RoutingTable, key: str) -> None:
        url = f"{self.url(table.address_for(key))}/keys/{urllib.parse.quote(key, safe='')}"
        request = urllib.request.Request(url, data=key.encode(), method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 201, 204)

    def keys(self, address: str) -> list[str]:
        with urllib.request.urlopen(f"{self.url(address)}/keys", timeout=10) as response:
            found: list[str] = json.load(response)
        return found

    def placement(self, table: routing.RoutingTable) -> dict[str, list[int]]:
        """The shards each key is on, as the shards' servers list them."""
        placed: dict[str, list[int]] = {}
        for shard, address in table.addresses().items():
            for key in self.keys(address):
                placed.setdefault(key, []).append(shard)
        return placed

    def check_every_key_once_where_routed(self, shards: int) -> None:
        table = self.table()
        placed = self.placement(table)
        lost, strays = set(KEYS) - set(placed), set(placed) - set(KEYS)
        assert not lost and not strays, f"lost {sorted(lost)[:5]}, strays {sorted(strays)[:5]}"
        twice = [k for k, where in placed.items() if len(where) > 1]
        assert not twice, f"keys on more than one shard: {twice[:5]}"
        wrong = [k for k, (shard,) in placed.items() if table.shard_for(k) != shard]
        assert not wrong, f"keys served by a shard the table does not name: {wrong[:5]}"
        assert set(Counter(table.owners.tolist())) == set(range(shards))


def settled(cluster: Cluster, namespace: str, shards: int) -> bool:
    status = cluster.json("get", "shardset", "kv", "-n", namespace).get("status") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions", [])
                                  if c["type"] == "Ready"), {})
    return (ready.get("status") == "True" and status.get("readyShards") == shards
            and status.get("shards") == shards and status.get("migrationsInFlight") == 0)


def resize(cluster: Cluster, namespace: str, shards: int,
           migrate_args: list[str]) -> dict[str, dict[str, Any]]:
    """Apply the size and wait until it settles; the migration Jobs seen on the way, by name."""
    manifest = shard_set(cluster, shards, migrate_args)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    seen: dict[str, dict[str, Any]] = {}

    def done() -> bool:
        jobs = cluster.json("get", "jobs", "-n", namespace)["items"]
        assert isinstance(jobs, list)
        seen.update({job["metadata"]["name"]: job for job in jobs})
        return settled(cluster, namespace, shards)

    wait_until(done, STEP_TIMEOUT, f"the ShardSet to settle at {shards} ready shards",
               interval=1.0)
    return seen


def attempt(job: dict[str, Any]) -> int:
    env = job["spec"]["template"]["spec"]["containers"][0].get("env", [])
    return int(next(e["value"] for e in env if e["name"] == "MIGRATION_ATTEMPT"))


def test_keys_survive_every_resize_and_a_migration_that_fails_half_way(
        crds: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster = crds
    shards = Shards(cluster, namespace)
    resize(cluster, namespace, 3, [])
    table = shards.table()
    for key in KEYS:
        shards.put(table, key)
    shards.check_every_key_once_where_routed(3)

    for count in (4, 2):
        assert resize(cluster, namespace, count, []), "migration Jobs moved the keys"
        shards.check_every_key_once_where_routed(count)

    # Each move's first Job stops half-way through its keys; the operator runs it again.
    jobs = resize(cluster, namespace, 3, ["--fail-half-way", "--fail-attempts", "1"])
    shards.check_every_key_once_where_routed(3)
    assert jobs and {attempt(j) for j in jobs.values()} >= {1, 2}, sorted(jobs)
