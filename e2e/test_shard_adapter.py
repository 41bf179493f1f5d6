"""The ShardSet adapter's guarded writes on the real API server: a Service someone else made with
a shard's name survives a shrink, and a routing table made from an older read is refused."""

from __future__ import annotations

import json

import pytest
from kubernetes import config

from adaptive_operator.adapters.shard_cluster import RoutingConflict, ShardCluster
from adaptive_operator.domain.sharding import manifests

from conftest import Cluster


@pytest.fixture
def api(crds: Cluster) -> ShardCluster:
    return ShardCluster(config.new_client_from_config(crds.kubeconfig))  # type: ignore[no-untyped-call]


def owner(cluster: Cluster, namespace: str) -> dict[str, object]:
    shard_set = {"apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet",
                 "metadata": {"name": "db"},
                 "spec": {"shards": 1, "slots": 16, "template": {"template": {}},
                          "migration": {"jobTemplate": {}}}}
    cluster.kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps(shard_set))
    return cluster.json("get", "-n", namespace, "shardset/db")


def test_only_the_owners_service_is_deleted(crds: Cluster, namespace: str,
                                            api: ShardCluster) -> None:
    body = owner(crds, namespace)
    uid = str(body["metadata"]["uid"])  # type: ignore[index]
    theirs = manifests.headless_service("db", 1)
    ours = manifests.headless_service("db", 2)
    ours["metadata"]["ownerReferences"] = [{
        "apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet", "name": "db", "uid": uid}]
    api.create(namespace, theirs)
    api.create(namespace, ours)
    assert api.delete_owned(namespace, "Service", "db-1", uid) is False
    assert api.delete_owned(namespace, "Service", "db-2", uid) is True
    assert api.delete_owned(namespace, "Service", "db-9", uid) is False  # absent: nothing to do
    left = crds.kubectl("get", "-n", namespace, "services", "-o", "name").split()
    assert "service/db-1" in left


def test_a_routing_table_from_an_older_read_is_refused(crds: Cluster, namespace: str,
                                                       api: ShardCluster) -> None:
    table = manifests.routing_config_map("db", {"epoch": "1"})
    first = api.write_routing(namespace, table, None)
    second = api.write_routing(namespace, manifests.routing_config_map("db", {"epoch": "2"}),
                               first)
    with pytest.raises(RoutingConflict):  # a deposed leader, still holding the first read
        api.write_routing(namespace, manifests.routing_config_map("db", {"epoch": "1"}), first)
    with pytest.raises(RoutingConflict):  # or believing there was no table yet
        api.write_routing(namespace, table, None)
    objects = api.observe(namespace, "db", manifests.routing_config_map_name("db"))
    assert objects.routing_data == {"epoch": "2"} and objects.routing_version == second
