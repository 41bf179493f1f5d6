"""The workloads the services read every sync, from watch-fed caches instead of API reads.

Per namespace with services, on first use, one informer each for Deployments (replicas,
selector, revision), ReplicaSets (the rollout's revisions), Pods (ready, restarts) and
HorizontalPodAutoscalers (the conflict check): four watches instead of some eight reads per
service and sync. Every reader returns None when its cache cannot answer (not listed yet, the
watch broken, the object not seen): the caller then asks the API server itself, so a cache
never answers for data it could not read. Off unless built enabled (`run --watch-cache`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

from adaptive_operator.adapters.informer import (
    READ_TIMEOUT_SECONDS,
    WATCH_SECONDS,
    Informer,
    Listing,
    Object,
    Store,
    watch_lines,
)
from adaptive_operator.adapters.kube import reading_client
from adaptive_operator.adapters.telemetry import API_REQUESTS

KINDS = ("deployments", "replicasets", "pods", "horizontalpodautoscalers")
ListCall = Callable[..., Any]


def _list_call(api: client.ApiClient, kind: str) -> ListCall:
    calls: dict[str, ListCall] = {
        "deployments": client.AppsV1Api(api).list_namespaced_deployment,
        "replicasets": client.AppsV1Api(api).list_namespaced_replica_set,
        "pods": client.CoreV1Api(api).list_namespaced_pod,
        "horizontalpodautoscalers":
            client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler,
    }
    return calls[kind]


def lister(api: client.ApiClient, kind: str, namespace: str) -> Callable[[], Listing]:
    def list_now() -> Listing:
        API_REQUESTS.labels("list", kind).inc()
        response = _list_call(api, kind)(namespace, _preload_content=False, _request_timeout=30)
        found = json.loads(response.data)
        return list(found.get("items") or []), str(found["metadata"]["resourceVersion"])
    return list_now


def watcher(api: client.ApiClient, kind: str,
            namespace: str) -> Callable[[str], Iterator[Object]]:
    def watch_from(version: str) -> Iterator[Object]:
        API_REQUESTS.labels("watch", kind).inc()
        response = _list_call(api, kind)(
            namespace, watch=True, resource_version=version, timeout_seconds=WATCH_SECONDS,
            allow_watch_bookmarks=True, _preload_content=False,
            _request_timeout=(10, READ_TIMEOUT_SECONDS))
        try:
            yield from watch_lines(iter_resp_lines(response))  # type: ignore[no-untyped-call]
        finally:
            response.release_conn()
    return watch_from


IDLE_SECONDS = 600.0  # a namespace no service has read for this long stops being watched


@dataclass
class NamespaceCache:
    used: float
    stores: dict[str, Store] = field(default_factory=lambda: {kind: Store() for kind in KINDS})
    stop: threading.Event = field(default_factory=threading.Event)

    def fresh(self, kind: str) -> Store | None:
        store = self.stores[kind]
        return store if store.fresh else None


Starter = Callable[[str, str, Store, threading.Event], None]


def informers(api: client.ApiClient) -> Starter:
    """A Starter whose informers list and watch through `api`."""
    def start_informer(kind: str, namespace: str, store: Store, stop: threading.Event) -> None:
        Informer(f"{kind} in {namespace}", store, lister(api, kind, namespace),
                 watcher(api, kind, namespace), stop).start()
    return start_informer


class ClusterCache:
    """The namespaces' caches, started on first use, stopped when no longer used."""

    def __init__(self, enabled: bool = False, starter: Starter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled, self.clock = enabled, clock
        self.starter = starter or informers(reading_client())
        self._namespaces: dict[str, NamespaceCache] = {}
        self._lock = threading.Lock()
        self._swept = clock()

    def _sweep(self, now: float) -> None:
        """Stop watching namespaces without services (e.g. deleted ones) now and then."""
        if now - self._swept < 60.0:
            return
        self._swept = now
        for name, cache in list(self._namespaces.items()):
            if now - cache.used > IDLE_SECONDS:
                cache.stop.set()
                del self._namespaces[name]

    def namespace(self, namespace: str) -> NamespaceCache | None:
        if not self.enabled:
            return None
        now = self.clock()
        with self._lock:
            self._sweep(now)
            found = self._namespaces.get(namespace)
            if found is None:
                found = self._namespaces[namespace] = NamespaceCache(now)
                for kind in KINDS:
                    self.starter(kind, namespace, found.stores[kind], found.stop)
            found.used = now
        return found

    def _store(self, namespace: str, kind: str) -> Store | None:
        cache = self.namespace(namespace)
        return cache.fresh(kind) if cache is not None else None

    def deployment(self, namespace: str, name: str) -> Object | None:
        store = self._store(namespace, "deployments")
        return store.get(name) if store is not None else None

    def selected(self, namespace: str, kind: str,
                 selector: Mapping[str, Any]) -> list[Object] | None:
        store = self._store(namespace, kind)
        return store.select(selector) if store is not None else None

    def hpas(self, namespace: str) -> list[Object] | None:
        store = self._store(namespace, "horizontalpodautoscalers")
        return store.all() if store is not None else None
