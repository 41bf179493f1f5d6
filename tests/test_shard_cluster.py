"""The ShardSet adapter: its pure parts, and its guarded writes where the client meets HTTP (the
real API server's answers to them are checked in e2e/test_shard_adapter.py)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator.adapters import shard_cluster as adapter
from adaptive_operator.domain.sharding import manifests as m
from adaptive_operator.domain.sharding.slots import Move

from fakes import KubeHttp, fenced_client

GROUPS = {"core": client.CoreV1Api, "apps": client.AppsV1Api, "batch": client.BatchV1Api}


def owned_manifests() -> list[dict[str, Any]]:
    return [m.stateful_set("cache", 0, {"template": {}}), m.headless_service("cache", 0),
            m.migration_job("cache", "prod", 12, {}, Move(0, 3, 0, 1), 1)]


@pytest.mark.parametrize("table", [adapter.CREATORS, adapter.DELETERS], ids=["create", "delete"])
def test_every_owned_kind_has_a_real_client_method(table: dict[str, tuple[str, str]]) -> None:
    assert {manifest["kind"] for manifest in owned_manifests()} == set(table)
    for group, method in table.values():
        assert callable(getattr(GROUPS[group], method))


def test_selectors_find_what_the_manifests_label() -> None:
    job = m.migration_job("cache", "prod", 12, {}, Move(0, 3, 0, 1), 1)
    labels = job["metadata"]["labels"]
    for selector in (adapter.shard_selector("cache"), adapter.migration_selector("cache")):
        pairs = dict(part.split("=") for part in selector.split(","))
        assert pairs.items() <= labels.items()
    sts_labels = m.stateful_set("cache", 0, {"template": {}})["metadata"]["labels"]
    assert m.ROLE_LABEL not in sts_labels  # so the migration selector never lists StatefulSets


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param({"epoch": "3"}, {"epoch": "3"}, id="data-as-is"),
    pytest.param(None, {}, id="config-map-without-data"),
])
def test_config_map_data(data: dict[str, str] | None, expected: dict[str, str]) -> None:
    assert adapter.config_map_data(client.V1ConfigMap(data=data)) == expected


def failing(status: int) -> Any:
    def call() -> None:
        raise ApiException(status=status)
    return call


@pytest.mark.parametrize("status", [409, 404])
def test_the_expected_conflict_is_success(status: int) -> None:
    adapter.ignoring(status, failing(status))


def test_any_other_api_error_is_raised() -> None:
    with pytest.raises(ApiException):
        adapter.ignoring(409, failing(403))


CONFIG_MAPS = "/api/v1/namespaces/prod/configmaps"
SERVICES = "/api/v1/namespaces/prod/services"


def adapter_over(server: KubeHttp) -> adapter.ShardCluster:
    return adapter.ShardCluster(fenced_client(server, lambda: True))


def routing(epoch: str) -> dict[str, Any]:
    return m.routing_config_map("db", {"epoch": epoch})


def test_the_routing_table_is_written_over_the_version_it_was_read_at() -> None:
    def reply(method: str, path: str, body: Any) -> tuple[int, Any]:
        return 200, {"metadata": {"name": "db-routing", "resourceVersion": "8"}}

    server = KubeHttp(reply)
    assert adapter_over(server).write_routing("prod", routing("2"), "7") == "8"
    ((method, path, body),) = server.sent
    name = routing("2")["metadata"]["name"]
    assert (method, path) == ("PUT", f"{CONFIG_MAPS}/{name}")
    assert body["metadata"]["resourceVersion"] == "7" and body["data"] == {"epoch": "2"}


def test_the_routing_table_is_created_only_when_none_was_read() -> None:
    server = KubeHttp(lambda *_: (201, {"metadata": {"resourceVersion": "1"}}))
    assert adapter_over(server).write_routing("prod", routing("1"), None) == "1"
    ((method, path, body),) = server.sent
    assert (method, path) == ("POST", CONFIG_MAPS)
    assert "resourceVersion" not in body["metadata"]


@pytest.mark.parametrize(("version", "status"), [("7", 409), ("7", 404), (None, 409)],
                         ids=["changed-since", "deleted-since", "created-since"])
def test_a_routing_table_from_an_older_read_is_refused(version: str | None,
                                                       status: int) -> None:
    server = KubeHttp(lambda *_: (status, {"kind": "Status", "code": status}))
    with pytest.raises(adapter.RoutingConflict):
        adapter_over(server).write_routing("prod", routing("1"), version)


def service(owner_uid: str) -> dict[str, Any]:
    return {"kind": "Service", "apiVersion": "v1", "metadata": {
        "name": "db-1", "namespace": "prod", "uid": "svc-uid",
        "ownerReferences": [{"apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet",
                             "name": "db", "uid": owner_uid}]}}


@pytest.mark.parametrize(("found", "deleted"), [
    pytest.param((200, service("u-1")), True, id="ours"),
    pytest.param((200, service("someone-else")), False, id="someone-elses"),
    pytest.param((404, {"kind": "Status", "code": 404}), False, id="absent"),
])
def test_a_shards_service_is_deleted_only_when_this_shard_set_owns_it(
        found: tuple[int, Any], deleted: bool) -> None:
    server = KubeHttp(lambda method, *_: found if method == "GET" else (200, {}))
    assert adapter_over(server).delete_owned("prod", "Service", "db-1", "u-1") is deleted
    assert server.sent[0][:2] == ("GET", f"{SERVICES}/db-1")
    if not deleted:
        assert server.writes() == []
        return
    ((method, path, body),) = server.writes()
    assert (method, path) == ("DELETE", f"{SERVICES}/db-1")
    # Only that very object: the one read, by its UID, not a new one of the same name.
    assert body["preconditions"] == {"uid": "svc-uid"}
    assert body["propagationPolicy"] == "Background"
