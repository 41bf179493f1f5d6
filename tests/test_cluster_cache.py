"""The namespaces' watch-fed caches: started on first use, read as the API's JSON."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from adaptive_operator.adapters import cluster_cache
from adaptive_operator.adapters.cluster_cache import KINDS, ClusterCache
from adaptive_operator.adapters.informer import Store


class Response:
    def __init__(self, data: bytes = b"", chunks: tuple[bytes, ...] = ()) -> None:
        self.data, self.chunks, self.released = data, chunks, False

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        yield from self.chunks

    def release_conn(self) -> None:
        self.released = True


def test_caches_start_once_per_namespace_and_answer_only_when_fresh() -> None:
    started: list[tuple[str, str]] = []
    stores: dict[tuple[str, str], Store] = {}

    def starter(kind: str, namespace: str, store: Store, stop: threading.Event) -> None:
        started.append((kind, namespace))
        stores[kind, namespace] = store

    cache = ClusterCache(enabled=True, starter=starter)
    assert cache.deployment("prod", "web") is None  # starts them, not listed yet
    assert cache.hpas("prod") is None
    assert cache.selected("prod", "pods", {}) is None
    assert started == [(kind, "prod") for kind in KINDS]
    stores["deployments", "prod"].replace([{"metadata": {"name": "web"}}], "1")
    stores["horizontalpodautoscalers", "prod"].replace([], "1")
    assert cache.deployment("prod", "web") == {"metadata": {"name": "web"}}
    assert cache.hpas("prod") == []
    cache.namespace("dev")
    assert len(started) == 2 * len(KINDS)


def test_the_list_is_read_as_json_with_its_version(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def list_pods(namespace: str, **options: Any) -> Response:
        calls.append({"namespace": namespace, **options})
        body = {"metadata": {"resourceVersion": "42"}, "items": [{"metadata": {"name": "a"}}]}
        return Response(json.dumps(body).encode())

    monkeypatch.setattr(cluster_cache, "_list_call", lambda api, kind: list_pods)
    items, version = cluster_cache.lister(client.ApiClient(), "pods", "prod")()
    assert (items, version) == ([{"metadata": {"name": "a"}}], "42")
    assert calls[0]["namespace"] == "prod" and calls[0]["_preload_content"] is False


def test_a_watch_streams_events_from_the_version_and_releases_its_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    response = Response(chunks=(b'{"type": "ADDED", "object": {"metadata": {"name": "a"}}}\n'
                                b'{"type": "DEL', b'ETED", "object": {}}\n'))
    options: dict[str, Any] = {}

    def watch_pods(namespace: str, **given: Any) -> Response:
        options.update(given)
        return response

    monkeypatch.setattr(cluster_cache, "_list_call", lambda api, kind: watch_pods)
    events = list(cluster_cache.watcher(client.ApiClient(), "pods", "prod")("17"))
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert options["watch"] is True and options["resource_version"] == "17"
    assert options["allow_watch_bookmarks"] is True
    assert response.released


def test_each_kind_is_listed_by_its_own_api() -> None:
    api = client.ApiClient()
    names = {kind: cluster_cache._list_call(api, kind).__name__ for kind in KINDS}
    assert names == {"deployments": "list_namespaced_deployment",
                     "replicasets": "list_namespaced_replica_set",
                     "pods": "list_namespaced_pod",
                     "horizontalpodautoscalers": "list_namespaced_horizontal_pod_autoscaler"}


def test_a_namespace_no_service_reads_any_more_stops_being_watched() -> None:
    now = [0.0]
    stops: dict[str, threading.Event] = {}

    def starter(kind: str, namespace: str, store: Store, stop: threading.Event) -> None:
        stops[namespace] = stop

    cache = ClusterCache(enabled=True, starter=starter, clock=lambda: now[0])
    cache.namespace("gone")
    cache.namespace("busy")
    for _ in range(int(cluster_cache.IDLE_SECONDS / 60) + 2):
        now[0] += 60.0
        cache.namespace("busy")
    assert stops["gone"].is_set() and not stops["busy"].is_set()
    first = stops["gone"]
    cache.namespace("gone")  # a service there again: watched again
    assert stops["gone"] is not first and not stops["gone"].is_set()
