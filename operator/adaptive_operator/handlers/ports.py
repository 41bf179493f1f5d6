"""What the AdaptiveService handlers read from and write to the cluster: ports the Runtime
injects. The defaults call the adapters; a handler test hands the Runtime fakes instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import kopf

from adaptive_operator.adapters import kube, workload
from adaptive_operator.adapters.cached_reads import CachedReads
from adaptive_operator.domain.common.events import Event

Pods = list[Any]
PodsAndSets = tuple[Pods, list[Any]]  # a workload's pods, and its ReplicaSets or revisions


class WorkloadReader(Protocol):
    """The scale target, its pods and rollout, and the AdaptiveService read fresh."""

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

    async def read_service(self, plural: str, namespace: str, name: str) -> dict[str, Any]: ...

    async def read_upstream(self, plural: str, namespace: str,
                            name: str) -> dict[str, Any] | None:
        """A coupled service's upstream, None when it does not exist."""


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
    where they can answer (CachedReads), the rest from the API server. `run` builds one over
    its caches and API discovery."""

    pods_and_replica_sets = staticmethod(workload.pods_and_replica_sets)
    statefulset_pods_and_revisions = staticmethod(workload.statefulset_pods_and_revisions)
    pods_of = staticmethod(workload.pods_of)
    read_service = staticmethod(workload.read_service)
    read_upstream = staticmethod(kube.read_service)
    annotate = staticmethod(workload.annotate)
    evict = staticmethod(workload.evict)
    restart = staticmethod(workload.restart)
    roll_back = staticmethod(workload.roll_back)
    roll_back_statefulset = staticmethod(workload.roll_back_statefulset)

    async def evict_owned(self, namespace: str, pods: tuple[str, ...],
                          target: tuple[str, str, str],
                          uids: Mapping[str, str] | None = None) -> list[workload.Refusal]:
        return await workload.evict_owned(namespace, pods, target, uids, self.resolve)

    async def restart_template(self, namespace: str, api_version: str, kind: str, name: str,
                               stamp: str) -> None:
        await workload.restart_template(namespace, api_version, kind, name, stamp, self.resolve)


class StatusWriter(Protocol):
    async def patch_status(self, plural: str, namespace: str, name: str,
                           status: dict[str, Any]) -> None: ...


class ClusterStatus:
    patch_status = staticmethod(kube.patch_status)


class EventPoster(Protocol):
    def post(self, body: kopf.Body, event: Event) -> None: ...


class KopfEvents:
    """Events through kopf (posted in the background, about the object of `body`)."""

    def post(self, body: kopf.Body, event: Event) -> None:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
