"""What a sync reads of its workload: from the watch-fed caches when they can answer, else from
the API server (`kube`, `workload`), so the answer is the same either way and a cache that
cannot answer (not listed yet, its watch broken, the object not seen yet) costs a read, never
a decision on data not read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from kubernetes import client

from adaptive_operator.adapters import discovery, kube, workload
from adaptive_operator.adapters.cluster_cache import ClusterCache
from adaptive_operator.domain.common.label_selector import to_text
from adaptive_operator.domain.common.pods import is_live

Object = dict[str, Any]


def scale_of(deployment: Mapping[str, Any]) -> kube.Scale:
    """A Deployment's /scale subresource, as the API server derives it."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    selector = dict(spec.get("selector") or {})
    return kube.Scale(int(spec.get("replicas", 1)), int(status.get("replicas") or 0),
                      to_text(selector), selector)


EXPECT_SECONDS = 60.0  # by then the watch has delivered it; a difference is someone else's


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


def _startup_seconds(pod: Mapping[str, Any]) -> float | None:
    """Seconds from a Ready pod's creation to its (last) Ready transition."""
    cond = _ready_condition(pod)
    created = _time((pod.get("metadata") or {}).get("creationTimestamp"))
    ready_at = _time(cond.get("lastTransitionTime")) if cond else None
    if cond is None or cond.get("status") != "True" or ready_at is None or created is None:
        return None
    return (ready_at - created).total_seconds()


def _is_ready(pod: Mapping[str, Any]) -> bool:
    return (_ready_condition(pod) or {}).get("status") == "True"


def pod_counts(pods: Iterable[Mapping[str, Any]]) -> kube.PodCounts:
    """Ready and not-ready pods among the live ones (not terminating, not finished)."""
    live = [p for p in pods if is_live(p)]
    ready = sum(1 for p in live if _is_ready(p))
    startups = tuple(s for s in map(_startup_seconds, live) if s is not None)
    return kube.PodCounts(ready=ready, unready=len(live) - ready, startup_seconds=startups)


class CachedReads:
    """The workload reads and the replica writes of every sync, over the operator's caches
    (`run` builds one over its ClusterCache)."""

    def __init__(self, cache: ClusterCache | None = None,
                 resolve: discovery.Resolve | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 api: client.ApiClient | None = None) -> None:
        self.cache = cache if cache is not None else ClusterCache()
        # What every read and write here goes through (run's client, fenced by the leadership).
        self.api = api or kube.reading_client()
        # The targets' resources (plural, /scale) by API discovery.
        self.resolve = resolve or discovery.Discovery(discovery.listing_fetcher(self.api)).resolve
        self._clock = clock
        # Our own replica writes not yet seen in the cache (client-go's "expectations"): until
        # the watch brings them, the scale is read from the API server, so a cache a moment
        # behind never looks like another client undoing the write (ConflictingWriter) or asks
        # for it twice.
        self._expected: dict[tuple[str, str], tuple[int, float]] = {}

    def _as_expected(self, namespace: str, deployment: Mapping[str, Any], now: float) -> bool:
        key = (namespace, str((deployment.get("metadata") or {}).get("name", "")))
        expected = self._expected.get(key)
        if expected is None:
            return True
        replicas, at = expected
        if int((deployment.get("spec") or {}).get("replicas", 1)) == replicas or (
                now - at > EXPECT_SECONDS):
            del self._expected[key]
            return True
        return False

    async def read_scale(self, namespace: str, target: kube.TargetRef) -> kube.Scale:
        if target.kind == "Deployment" and target.group_version[0] == "apps":
            found = self.cache.deployment(namespace, target.name)
            if found is not None and self._as_expected(namespace, found, self._clock()):
                return scale_of(found)
        return await kube.read_scale(self.api, namespace, target, self.resolve)

    async def write_scale(self, namespace: str, target: kube.TargetRef, replicas: int) -> None:
        await kube.write_scale(self.api, namespace, target, replicas, self.resolve)
        if self.cache.enabled:
            self._expected[(namespace, target.name)] = (replicas, self._clock())

    async def count_pods(self, namespace: str, scale: kube.Scale) -> kube.PodCounts:
        pods = (self.cache.selected(namespace, "pods", scale.label_selector)
                if scale.label_selector is not None else None)
        if pods is None:
            pods = await asyncio.to_thread(workload.list_pods, self.api, namespace, scale.selector)
        return pod_counts(pods)

    async def conflicting_hpa(self, namespace: str, target: kube.TargetRef, lists: kube.HpaLists,
                              max_age: float = 0.0) -> str | None:
        """The name of a HorizontalPodAutoscaler that already scales the target, if any
        (listed through `lists` when the cache cannot answer)."""
        hpas = self.cache.hpas(namespace)
        if hpas is None:
            return await lists.conflicting(namespace, target, max_age)
        for hpa in hpas:
            ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("kind") == target.kind and ref.get("name") == target.name:
                return str((hpa.get("metadata") or {}).get("name", ""))
        return None

    def _cached_workload(self, namespace: str,
                         name: str) -> tuple[list[Object], list[Object]] | None:
        deployment = self.cache.deployment(namespace, name)
        if deployment is None:
            return None
        selector = (deployment.get("spec") or {}).get("selector") or {}
        pods = self.cache.selected(namespace, "pods", selector)
        sets = self.cache.selected(namespace, "replicasets", selector)
        if pods is None or sets is None:
            return None
        owned = workload.owned_by(sets, str(deployment["metadata"].get("uid", "")))
        return workload.owned_pods(pods, owned), owned

    async def deployment_pods(self, namespace: str,
                              name: str) -> tuple[list[Object], list[Object]]:
        """A Deployment's pods and its own ReplicaSets (cached when the caches can answer)."""
        found = self._cached_workload(namespace, name)
        if found is not None:
            return found
        return await workload.pods_and_replica_sets(self.api, namespace, name)
