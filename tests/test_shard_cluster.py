"""The pure parts of the ShardSet adapter; its API calls run against the real cluster in e2e/."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator.adapters import shard_cluster as adapter
from adaptive_operator.domain.sharding import manifests as m
from adaptive_operator.domain.sharding.slots import Move

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
