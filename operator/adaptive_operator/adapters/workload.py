"""The workload as healing sees it and touches it: pods, ReplicaSets, rollbacks, evictions.

Thin and blocking inside, awaited outside (`asyncio.to_thread`). Manifests come back as plain
dicts (the API's JSON), so the pure code in `domain/healing/inputs.py` reads them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator.adapters import discovery
from adaptive_operator.adapters.kube import OwnObjects, request
from adaptive_operator.adapters.telemetry import API_REQUESTS
from adaptive_operator.domain.common.label_selector import to_text
from adaptive_operator.domain.healing.inputs import RESTARTED_AT
from adaptive_operator.domain.healing.ownership import owned_by_target
from adaptive_operator.domain.healing.targets import revisions_as_replica_sets


class WorkloadError(Exception):
    """A read or write of the workload failed; `reason` is CamelCase, for an Event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


Api = client.ApiClient  # every call takes the client it goes through (run's, fenced)


def _plain(api: Api, obj: Any) -> Any:
    return api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]


def _describe(err: ApiException) -> str:
    return f"{err.status} {err.reason}"


def _annotate(api: Api, plural: str, namespace: str, name: str, key: str, value: str) -> None:
    try:
        OwnObjects(api).annotate(plural, namespace, name, {key: value})
    except ApiException as err:
        raise WorkloadError("FailedRecord", f"cannot write the annotation {key} of {plural} "
                                            f"{name}: {_describe(err)}") from err


async def annotate(api: Api, plural: str, namespace: str, name: str, key: str,
                   value: str) -> None:
    await asyncio.to_thread(_annotate, api, plural, namespace, name, key, value)


def _deployment(api: Api, namespace: str, name: str) -> dict[str, Any]:
    try:
        API_REQUESTS.labels("get", "deployments").inc()
        found = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    except ApiException as err:
        raise WorkloadError("FailedRead", f"cannot read Deployment {name}: "
                                          f"{_describe(err)}") from err
    return dict(_plain(api, found))


def list_pods(api: Api, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods a label selector (query-parameter form) selects, as the API's JSON."""
    API_REQUESTS.labels("list", "pods").inc()
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector)
    return list(_plain(api, pods)["items"])


def owned_by(objects: list[dict[str, Any]], *uids: str) -> list[dict[str, Any]]:
    """The objects owned (ownerReferences) by one of `uids`: a selector may also match someone
    else's ReplicaSets and pods."""
    wanted = set(uids)
    return [item for item in objects
            if any(ref.get("uid") in wanted
                   for ref in item["metadata"].get("ownerReferences") or [])]


def owned_pods(pods: list[dict[str, Any]], sets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods of the Deployment whose own ReplicaSets are `sets` (pod -> ReplicaSet ->
    Deployment, by UID): only these may be judged, evicted or restarted."""
    return owned_by(pods, *(str(rs["metadata"].get("uid", "")) for rs in sets))


def selector_text(workload: dict[str, Any], kind: str = "Deployment") -> str:
    """The workload's whole selector (matchLabels and matchExpressions) as a query parameter;
    never empty, which would select every pod of the namespace."""
    text = to_text(workload["spec"].get("selector") or {})
    if not text:
        name = workload["metadata"].get("name")
        raise WorkloadError("FailedRead", f"{kind} {name} has an empty selector")
    return text


def _pods_and_replica_sets(api: Api, namespace: str, name: str) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    deployment = _deployment(api, namespace, name)
    selector = selector_text(deployment)
    try:
        API_REQUESTS.labels("list", "pods").inc()
        pods = client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=selector)
        API_REQUESTS.labels("list", "replicasets").inc()
        sets = client.AppsV1Api(api).list_namespaced_replica_set(
            namespace, label_selector=selector)
    except ApiException as err:
        raise WorkloadError("FailedRead", f"cannot list the pods or ReplicaSets of Deployment "
                                          f"{name}: {_describe(err)}") from err
    owned = owned_by(_plain(api, sets)["items"], deployment["metadata"]["uid"])
    return owned_pods(_plain(api, pods)["items"], owned), owned


async def pods_and_replica_sets(api: Api, namespace: str, name: str) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    return await asyncio.to_thread(_pods_and_replica_sets, api, namespace, name)


def _patch_template(api: Api, namespace: str, name: str, patch: list[dict[str, Any]],
                    what: str) -> None:
    try:
        API_REQUESTS.labels("patch", "deployments").inc()
        client.AppsV1Api(api).patch_namespaced_deployment(name, namespace, patch)
    except ApiException as err:
        raise WorkloadError("FailedHealing", f"cannot {what} Deployment {name}: "
                                             f"{_describe(err)}") from err


async def roll_back(api: Api, namespace: str, name: str, template: dict[str, Any]) -> None:
    """`kubectl rollout undo`: the Deployment's template becomes the earlier revision's."""
    patch = [{"op": "replace", "path": "/spec/template", "value": template}]
    await asyncio.to_thread(_patch_template, api, namespace, name, patch, "roll back")


async def restart(api: Api, namespace: str, name: str, stamp: str) -> None:
    """`kubectl rollout restart`: a changed template annotation rolls every pod."""
    deployment = await asyncio.to_thread(_deployment, api, namespace, name)
    annotations = deployment["spec"]["template"]["metadata"].get("annotations")
    patch: list[dict[str, Any]] = (
        [{"op": "add", "path": "/spec/template/metadata/annotations", "value": {}}]
        if annotations is None else [])
    patch.append({"op": "add", "path": "/spec/template/metadata/annotations/"
                  + RESTARTED_AT.replace("/", "~1"), "value": stamp})
    await asyncio.to_thread(_patch_template, api, namespace, name, patch, "restart")


@dataclass(frozen=True)
class Refusal:
    """A pod the Eviction API did not evict, and whether a PodDisruptionBudget said no; or a
    pod left alone because it is not shown to be the target's (`not_owned`, naming it)."""

    message: str
    by_budget: bool
    not_owned: str = ""


def eviction_body(namespace: str, pod: str, uid: str) -> Any:
    """A policy/v1 Eviction of `pod`, only while it is still the pod of `uid` (when known): a
    StatefulSet re-creates a pod under the same name, and a stale decision must not evict the
    new one."""
    preconditions = client.V1Preconditions(uid=uid) if uid else None
    return client.V1Eviction(
        api_version="policy/v1", kind="Eviction",
        metadata=client.V1ObjectMeta(name=pod, namespace=namespace),
        delete_options=client.V1DeleteOptions(preconditions=preconditions))


def _evict(api: Api, namespace: str, pod: str, uid: str = "") -> Refusal | None:
    body = eviction_body(namespace, pod, uid)
    try:
        API_REQUESTS.labels("create", "evictions").inc()
        client.CoreV1Api(api).create_namespaced_pod_eviction(pod, namespace, body)
    except ApiException as err:
        if err.status == 404:
            return None  # already gone: what eviction wanted
        if err.status == 429:
            return Refusal(f"{pod}: a PodDisruptionBudget does not allow evicting it now", True)
        if err.status == 409 and uid:
            return Refusal(f"{pod}: no longer the pod decided on (UID {uid}): re-created "
                           f"since; left alone", False)
        return Refusal(f"{pod}: {_describe(err)}", False)
    return None


# The kinds whose pods' ownership is checked (pod -> ReplicaSet -> Deployment, pod ->
# StatefulSet, by UID) before any of them is evicted.
OWNING_KINDS = ("Deployment", "StatefulSet")


async def _owned_pod_names(api: Api, namespace: str, kind: str, name: str) -> set[str]:
    if kind == "StatefulSet":
        owned, _ = await statefulset_pods_and_revisions(api, namespace, name)
    else:
        owned, _ = await pods_and_replica_sets(api, namespace, name)
    return {str(pod["metadata"].get("name")) for pod in owned}


def _read_object(api: Api, namespace: str, api_version: str, kind: str, name: str,
                 resolve: discovery.Resolve) -> dict[str, Any] | None:
    try:
        resource = resolve(api_version, kind)
        API_REQUESTS.labels("get", resource.plural).inc()
        found = request(api, resource.path(namespace, name), "GET")
    except (ApiException, discovery.DiscoveryError):
        return None
    return dict(found) if isinstance(found, dict) else None


def _read_pod(api: Api, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        API_REQUESTS.labels("get", "pods").inc()
        return dict(_plain(api, client.CoreV1Api(api).read_namespaced_pod(name, namespace)))
    except ApiException:
        return None


def _owned_by_target(api: Api, namespace: str, target: tuple[str, str, str],
                     pods: tuple[str, ...], resolve: discovery.Resolve) -> set[str]:
    """Those of `pods` that a chain of ownerReferences leads to the target (api_version, kind,
    name) from, each read fresh; none when the target cannot be read."""
    api_version, kind, name = target
    found = _read_object(api, namespace, api_version, kind, name, resolve)
    uid = str(((found or {}).get("metadata") or {}).get("uid", ""))

    def read(owner_version: str, owner_kind: str, owner_name: str) -> dict[str, Any] | None:
        return _read_object(api, namespace, owner_version, owner_kind, owner_name, resolve)

    return {pod for pod in pods
            if (manifest := _read_pod(api, namespace, pod)) is not None
            and owned_by_target(manifest, uid, read)}


async def evict_owned(api: Api, namespace: str, pods: tuple[str, ...],
                      target: tuple[str, str, str], uids: Mapping[str, str] | None,
                      resolve: discovery.Resolve) -> list[Refusal]:
    """Evict only the pods the target (api_version, kind, name) is shown to own, for a kind
    outside OWNING_KINDS; a pod whose ownership cannot be established is left alone. `uids`
    (by pod name): each eviction holds only while the pod is still that one."""
    ours = await asyncio.to_thread(_owned_by_target, api, namespace, target, pods, resolve)
    _, kind, name = target
    refused = [Refusal(f"{pod}: not shown to be owned by {kind} {name} (its ownerReferences "
                       f"do not lead to it, or cannot be read); left alone", False, pod)
               for pod in pods if pod not in ours]
    kept = tuple(pod for pod in pods if pod in ours)
    return refused + await _evict_each(api, namespace, kept, uids)


async def _evict_each(api: Api, namespace: str, pods: tuple[str, ...],
                      uids: Mapping[str, str] | None) -> list[Refusal]:
    refused: list[Refusal] = []
    for pod in pods:
        refusal = await asyncio.to_thread(_evict, api, namespace, pod, (uids or {}).get(pod, ""))
        refused.extend([refusal] if refusal is not None else [])
    return refused


async def evict(api: Api, namespace: str, pods: tuple[str, ...],
                owner: tuple[str, str] | None = None,
                uids: Mapping[str, str] | None = None) -> list[Refusal]:
    """Evict through the Eviction API (PodDisruptionBudgets hold); returns what was refused.
    With an owner (kind, name) of OWNING_KINDS, only the pods it owns now (read fresh: a name
    may have been reused, and a selector may match someone else's pods). `uids` (by pod name):
    each eviction holds only while the pod is still that one (a UID precondition)."""
    refused: list[Refusal] = []
    if owner is not None:
        kind, name = owner
        ours = await _owned_pod_names(api, namespace, kind, name)
        refused = [Refusal(f"{pod}: not a pod of {kind} {name}; left alone", False, pod)
                   for pod in pods if pod not in ours]
        pods = tuple(pod for pod in pods if pod in ours)
    return refused + await _evict_each(api, namespace, pods, uids)


async def pods_of(api: Api, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The pods of any target, through the selector its /scale publishes (none: no pods)."""
    if not selector:
        return []
    try:
        return await asyncio.to_thread(list_pods, api, namespace, selector)
    except ApiException as err:
        raise WorkloadError("FailedRead", f"cannot list the pods of selector {selector}: "
                                          f"{_describe(err)}") from err


def _restart_template(api: Api, namespace: str, api_version: str, kind: str, name: str,
                      stamp: str, resolve: discovery.Resolve) -> None:
    resource = resolve(api_version, kind)
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    try:
        API_REQUESTS.labels("patch", resource.plural).inc()
        request(api, resource.path(namespace, name), "PATCH", patch)
    except ApiException as err:
        raise WorkloadError("FailedHealing", f"cannot restart {kind} {name}: "
                                             f"{_describe(err)}") from err


async def restart_template(api: Api, namespace: str, api_version: str, kind: str, name: str,
                           stamp: str, resolve: discovery.Resolve) -> None:
    """A rolling restart of a kind with a pod template (a StatefulSet): as `kubectl rollout
    restart`, a changed template annotation."""
    await asyncio.to_thread(_restart_template, api, namespace, api_version, kind, name, stamp,
                            resolve)


def _statefulset_pods_and_revisions(api: Api, namespace: str, name: str) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    apps = client.AppsV1Api(api)
    try:
        API_REQUESTS.labels("get", "statefulsets").inc()
        found = dict(_plain(api, apps.read_namespaced_stateful_set(name, namespace)))
        selector = selector_text(found, "StatefulSet")
        pods = list_pods(api, namespace, selector)
        API_REQUESTS.labels("list", "controllerrevisions").inc()
        revisions = _plain(api, apps.list_namespaced_controller_revision(
            namespace, label_selector=selector))["items"]
    except ApiException as err:
        raise WorkloadError("FailedRead", f"cannot read StatefulSet {name}, its pods or its "
                                          f"revisions: {_describe(err)}") from err
    # Only the pods it owns (pod -> StatefulSet, by UID): its selector may match others'.
    uid = found["metadata"]["uid"]
    return owned_by(pods, uid), revisions_as_replica_sets(revisions, uid)


async def statefulset_pods_and_revisions(api: Api, namespace: str, name: str) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    """A StatefulSet's pods, and its ControllerRevisions shaped as a Deployment's ReplicaSets
    (so the same rollout reading and rollback template serve both)."""
    return await asyncio.to_thread(_statefulset_pods_and_revisions, api, namespace, name)


def _patch_statefulset(api: Api, namespace: str, name: str, patch: list[dict[str, Any]]) -> None:
    try:
        API_REQUESTS.labels("patch", "statefulsets").inc()
        client.AppsV1Api(api).patch_namespaced_stateful_set(name, namespace, patch)
    except ApiException as err:
        raise WorkloadError("FailedHealing", f"cannot roll back StatefulSet {name}: "
                                             f"{_describe(err)}") from err


async def roll_back_statefulset(api: Api, namespace: str, name: str,
                                template: dict[str, Any]) -> None:
    """The StatefulSet's template becomes the earlier revision's (its controller then rolls the
    pods back, one by one, as for any template change)."""
    patch = [{"op": "replace", "path": "/spec/template", "value": template}]
    await asyncio.to_thread(_patch_statefulset, api, namespace, name, patch)
