"""What the handlers read from and write to the cluster: ports the Runtime injects (the
AdaptiveServices' workloads; every handler's status, annotations and Events of our own objects).
The defaults call the adapters; a handler test hands the Runtime fakes instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from adaptive_operator.adapters import kube, workload
from adaptive_operator.adapters.cached_reads import CachedReads
from adaptive_operator.domain.common.events import Event

Pods = list[Any]
PodsAndSets = tuple[Pods, list[Any]]  # a workload's pods, and its ReplicaSets or revisions


class WorkloadReader(Protocol):
    """The scale target, its pods and rollout, and our own objects read fresh."""

    async def conflicting_hpa(self, namespace: str, target: kube.TargetRef,
                              lists: kube.HpaLists, max_age: float = 0.0) -> str | None: ...

    async def read_scale(self, namespace: str, target: kube.TargetRef) -> kube.Scale: ...

    async def count_pods(self, namespace: str, scale: kube.Scale) -> kube.PodCounts: ...

    async def deployment_pods(self, namespace: str, name: str) -> PodsAndSets:
        """A Deployment's pods and ReplicaSets, from the watch caches when they can say."""

    async def pods_and_replica_sets(self, namespace: str, name: str) -> PodsAndSets:
        """The same, fresh from the API server."""

    async def statefulset_pods_and_revisions(self, namespace: str,
                                             name: str) -> PodsAndSets: ...

    async def pods_of(self, namespace: str, selector: str) -> Pods: ...

    async def read_service(self, plural: str, namespace: str,
                           name: str) -> dict[str, Any] | None:
        """One of our own objects fresh from the API server (healing's ledger, a coupled
        service's upstreams), None when it does not exist; raises kube.API_ERRORS."""


class WorkloadWriter(Protocol):
    """The replica write, the healing ledger, and healing's remedies."""

    async def write_scale(self, namespace: str, target: kube.TargetRef,
                          replicas: int) -> None: ...

    async def annotate(self, plural: str, namespace: str, name: str, key: str,
                       value: str) -> None: ...

    async def evict(self, namespace: str, pods: tuple[str, ...],
                    owner: tuple[str, str] | None = None,
                    uids: Mapping[str, str] | None = None) -> list[workload.Refusal]: ...

    async def evict_owned(self, namespace: str, pods: tuple[str, ...],
                          target: tuple[str, str, str],
                          uids: Mapping[str, str] | None = None) -> list[workload.Refusal]: ...

    async def restart(self, namespace: str, name: str, stamp: str) -> None: ...

    async def restart_template(self, namespace: str, api_version: str, kind: str, name: str,
                               stamp: str) -> None: ...

    async def roll_back(self, namespace: str, name: str, template: dict[str, Any]) -> None: ...

    async def roll_back_statefulset(self, namespace: str, name: str,
                                    template: dict[str, Any]) -> None: ...


class Workloads(WorkloadReader, WorkloadWriter, Protocol):
    pass


class ClusterWorkloads(CachedReads):
    """The adapters' calls: the target's scale, pods and autoscalers through the watch caches
    where they can answer (CachedReads), the rest from the API server, all through `api` (run
    builds one over its caches, API discovery and its fenced client)."""

    async def pods_and_replica_sets(self, namespace: str, name: str) -> PodsAndSets:
        return await workload.pods_and_replica_sets(self.api, namespace, name)

    async def statefulset_pods_and_revisions(self, namespace: str, name: str) -> PodsAndSets:
        return await workload.statefulset_pods_and_revisions(self.api, namespace, name)

    async def pods_of(self, namespace: str, selector: str) -> Pods:
        return await workload.pods_of(self.api, namespace, selector)

    async def read_service(self, plural: str, namespace: str,
                           name: str) -> dict[str, Any] | None:
        return await kube.read_service(self.api, plural, namespace, name)

    async def annotate(self, plural: str, namespace: str, name: str, key: str,
                       value: str) -> None:
        await workload.annotate(self.api, plural, namespace, name, key, value)

    async def evict(self, namespace: str, pods: tuple[str, ...],
                    owner: tuple[str, str] | None = None,
                    uids: Mapping[str, str] | None = None) -> list[workload.Refusal]:
        return await workload.evict(self.api, namespace, pods, owner, uids)

    async def evict_owned(self, namespace: str, pods: tuple[str, ...],
                          target: tuple[str, str, str],
                          uids: Mapping[str, str] | None = None) -> list[workload.Refusal]:
        return await workload.evict_owned(self.api, namespace, pods, target, uids, self.resolve)

    async def restart(self, namespace: str, name: str, stamp: str) -> None:
        await workload.restart(self.api, namespace, name, stamp)

    async def restart_template(self, namespace: str, api_version: str, kind: str, name: str,
                               stamp: str) -> None:
        await workload.restart_template(self.api, namespace, api_version, kind, name, stamp,
                                        self.resolve)

    async def roll_back(self, namespace: str, name: str, template: dict[str, Any]) -> None:
        await workload.roll_back(self.api, namespace, name, template)

    async def roll_back_statefulset(self, namespace: str, name: str,
                                    template: dict[str, Any]) -> None:
        await workload.roll_back_statefulset(self.api, namespace, name, template)


class StatusWriter(Protocol):
    """Status and annotations of our own objects (AdaptiveServices, ShardSets)."""

    async def patch_status(self, plural: str, namespace: str, name: str,
                           status: dict[str, Any]) -> None: ...

    async def patch_annotations(self, plural: str, namespace: str, name: str,
                                annotations: Mapping[str, str]) -> None: ...


class EventPoster(Protocol):
    async def post(self, body: Mapping[str, Any], event: Event) -> None:
        """An Event about our object `body`."""


class OwnRecords:
    """Status, annotations and Events through the leadership-fenced client (never kopf's
    `patch` or `kopf.event`, which go through kopf's own client, fenced by nothing)."""

    def __init__(self, own: kube.OwnObjects | None = None) -> None:
        self._own = own or kube.OwnObjects()

    async def patch_status(self, plural: str, namespace: str, name: str,
                           status: dict[str, Any]) -> None:
        await asyncio.to_thread(self._own.patch_status, plural, namespace, name, status)

    async def patch_annotations(self, plural: str, namespace: str, name: str,
                                annotations: Mapping[str, str]) -> None:
        await asyncio.to_thread(self._own.annotate, plural, namespace, name, annotations)

    async def post(self, body: Mapping[str, Any], event: Event) -> None:
        await asyncio.to_thread(self._own.post_event, body, event)


async def post_events(poster: EventPoster, body: Mapping[str, Any],
                      events: Iterable[Event]) -> None:
    """The Events about one of our objects, in order."""
    for event in events:
        await poster.post(body, event)
