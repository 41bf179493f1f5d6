"""Kubernetes API calls for ShardSets (official `kubernetes` client, synchronous).

Every function here blocks: the handler calls them through `asyncio.to_thread` so kopf's event
loop never waits on the API server. Objects go in and come out as plain dicts (manifests), so the
domain never sees client classes. Creating what exists and deleting what is gone are not errors:
a reconcile step may be repeated after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator.domain.shard_manifests import ROLE_LABEL, SHARDSET_LABEL


@dataclass(frozen=True)
class ShardSetObjects:
    stateful_sets: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    routing_data: dict[str, str] | None


class ShardCluster:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self._api = api_client or client.ApiClient()
        self._core = client.CoreV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)
        self._batch = client.BatchV1Api(self._api)

    def _plain(self, obj: Any) -> Any:
        return self._api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    def observe(self, namespace: str, name: str, config_map: str) -> ShardSetObjects:
        selector = f"{SHARDSET_LABEL}={name}"
        sets = self._apps.list_namespaced_stateful_set(namespace, label_selector=selector)
        jobs = self._batch.list_namespaced_job(
            namespace, label_selector=f"{selector},{ROLE_LABEL}=migration"
        )
        return ShardSetObjects(
            stateful_sets=[self._plain(item) for item in sets.items],
            jobs=[self._plain(item) for item in jobs.items],
            routing_data=self._routing_data(namespace, config_map),
        )

    def _routing_data(self, namespace: str, config_map: str) -> dict[str, str] | None:
        try:
            found = self._core.read_namespaced_config_map(config_map, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return dict(found.data or {})

    def write_routing(self, namespace: str, manifest: Any) -> None:
        name = manifest["metadata"]["name"]
        try:
            self._core.replace_namespaced_config_map(name, namespace, manifest)
        except ApiException as err:
            if err.status != 404:
                raise
            self._core.create_namespaced_config_map(namespace, manifest)

    def create(self, namespace: str, manifest: Any) -> None:
        creators: dict[str, Callable[..., Any]] = {
            "StatefulSet": self._apps.create_namespaced_stateful_set,
            "Service": self._core.create_namespaced_service,
            "Job": self._batch.create_namespaced_job,
        }
        try:
            creators[manifest["kind"]](namespace, manifest)
        except ApiException as err:
            if err.status != 409:  # already there: an earlier step created it
                raise

    def patch_stateful_set(self, namespace: str, name: str, json_patch: list[Any]) -> None:
        self._apps.patch_namespaced_stateful_set(
            name, namespace, json_patch, _content_type="application/json-patch+json"
        )

    def delete(self, namespace: str, kind: str, name: str) -> None:
        deleters: dict[str, Callable[..., Any]] = {
            "StatefulSet": self._apps.delete_namespaced_stateful_set,
            "Service": self._core.delete_namespaced_service,
            "Job": self._batch.delete_namespaced_job,
        }
        try:
            deleters[kind](name, namespace, propagation_policy="Background")
        except ApiException as err:
            if err.status != 404:
                raise
