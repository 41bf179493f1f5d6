"""Kubernetes API calls for ShardSets (official `kubernetes` client, synchronous).

Every function here blocks: the handler calls them through `asyncio.to_thread` so kopf's event
loop never waits on the API server. Objects go in and come out as plain dicts (manifests), so the
domain never sees client classes. Creating what exists and deleting what is gone are not errors:
a reconcile step may be repeated after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator.domain.sharding.manifests import ROLE_LABEL, SHARDSET_LABEL

# Kind -> (API group class, method) for what a ShardSet owns; each takes (namespace, body) to
# create and (name, namespace, ...) to delete.
CREATORS: dict[str, tuple[str, str]] = {
    "StatefulSet": ("apps", "create_namespaced_stateful_set"),
    "Service": ("core", "create_namespaced_service"),
    "Job": ("batch", "create_namespaced_job"),
}
READERS: dict[str, tuple[str, str]] = {
    "StatefulSet": ("apps", "read_namespaced_stateful_set"),
    "Service": ("core", "read_namespaced_service"),
}
DELETERS: dict[str, tuple[str, str]] = {
    "StatefulSet": ("apps", "delete_namespaced_stateful_set"),
    "Service": ("core", "delete_namespaced_service"),
    "Job": ("batch", "delete_namespaced_job"),
}


class RoutingConflict(Exception):
    """The routing ConfigMap changed since it was read: another writer (a new leader) moved on,
    so this write, made from an older table, must not land."""


@dataclass(frozen=True)
class ShardSetObjects:
    stateful_sets: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    routing_data: dict[str, str] | None
    routing_version: str | None = None  # the ConfigMap's resourceVersion as read


def shard_selector(name: str) -> str:
    """Everything a ShardSet made carries its name in a label."""
    return f"{SHARDSET_LABEL}={name}"


def migration_selector(name: str) -> str:
    return f"{shard_selector(name)},{ROLE_LABEL}=migration"


def config_map_data(config_map: Any) -> dict[str, str]:
    """A ConfigMap's data; a ConfigMap with none has an empty table (refused downstream)."""
    return dict(config_map.data or {})


def ignoring(status: int, call: Callable[[], Any]) -> None:
    """Run `call`; an API error with `status` (409 on create, 404 on delete) is success."""
    try:
        call()
    except ApiException as err:
        if err.status != status:
            raise


class ShardCluster:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = api_client  # run's: fenced by the leadership
        self._groups: Mapping[str, Any] = {
            "core": client.CoreV1Api(self._api),
            "apps": client.AppsV1Api(self._api),
            "batch": client.BatchV1Api(self._api),
        }
        self._core = self._groups["core"]

    def _plain(self, obj: Any) -> Any:
        return self._api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    def _method(self, table: Mapping[str, tuple[str, str]], kind: str) -> Callable[..., Any]:
        group, method = table[kind]
        found: Callable[..., Any] = getattr(self._groups[group], method)
        return found

    def observe(self, namespace: str, name: str, config_map: str) -> ShardSetObjects:
        sets = self._groups["apps"].list_namespaced_stateful_set(
            namespace, label_selector=shard_selector(name))
        jobs = self._groups["batch"].list_namespaced_job(
            namespace, label_selector=migration_selector(name))
        data, version = self._routing(namespace, config_map)
        return ShardSetObjects(
            stateful_sets=[self._plain(item) for item in sets.items],
            jobs=[self._plain(item) for item in jobs.items],
            routing_data=data,
            routing_version=version,
        )

    def _routing(self, namespace: str, config_map: str) -> tuple[dict[str, str] | None,
                                                                 str | None]:
        try:
            found = self._core.read_namespaced_config_map(config_map, namespace)
        except ApiException as err:
            if err.status == 404:
                return None, None
            raise
        return config_map_data(found), found.metadata.resource_version

    def write_routing(self, namespace: str, manifest: Any, version: str | None) -> str:
        """Write the table only over the version it was made from (create it when it was
        absent); returns the new version. A deposed leader's table, made from an older read,
        is refused (RoutingConflict), so the epoch never goes backwards."""
        name = manifest["metadata"]["name"]
        body = {**manifest, "metadata": {**manifest["metadata"], "resourceVersion": version}}
        try:
            if version is None:
                written = self._core.create_namespaced_config_map(namespace, manifest)
            else:
                written = self._core.replace_namespaced_config_map(name, namespace, body)
        except ApiException as err:
            if err.status in (404, 409):
                raise RoutingConflict(f"routing ConfigMap {name} changed since it was read "
                                      f"({err.status} {err.reason})") from None
            raise
        return str(written.metadata.resource_version)

    def create(self, namespace: str, manifest: Any) -> None:
        creator = self._method(CREATORS, manifest["kind"])
        ignoring(409, lambda: creator(namespace, manifest))  # an earlier step created it

    def patch_stateful_set(self, namespace: str, name: str, json_patch: list[Any]) -> None:
        self._groups["apps"].patch_namespaced_stateful_set(
            name, namespace, json_patch, _content_type="application/json-patch+json"
        )

    def delete(self, namespace: str, kind: str, name: str) -> None:
        deleter = self._method(DELETERS, kind)
        ignoring(404, lambda: deleter(name, namespace, propagation_policy="Background"))

    def delete_owned(self, namespace: str, kind: str, name: str, owner_uid: str) -> bool:
        """Delete the object only if `owner_uid` owns it (a Service of the same name made by
        someone else is left alone), and only that very object (uid precondition)."""
        try:
            found = self._method(READERS, kind)(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        owners = found.metadata.owner_references or []
        if all(ref.uid != owner_uid for ref in owners):
            return False
        options = client.V1DeleteOptions(
            propagation_policy="Background",
            preconditions=client.V1Preconditions(uid=found.metadata.uid))
        deleter = self._method(DELETERS, kind)
        ignoring(404, lambda: deleter(name, namespace, body=options))
        return True
