"""Watch-fed stores: what a list and the events after it said, and never more than that."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from adaptive_operator.adapters.informer import (
    MAX_SILENCE_SECONDS,
    Expired,
    Informer,
    Store,
    watch_lines,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pod(name: str, version: str = "1", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version, "labels": labels,
                         "managedFields": [{"manager": "kubectl"}]}}


def names(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objects)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Store:
    found = Store(clock)
    found.replace([pod("web-1", app="web"), pod("web-2", app="web", canary="yes"),
                   pod("api-1", app="api")], "10")
    return found


def test_a_store_is_not_fresh_until_its_first_list(clock: Clock) -> None:
    empty = Store(clock)
    assert not empty.fresh
    empty.replace([], "1")
    assert empty.fresh


def test_selectors_find_objects_through_the_label_index(store: Store) -> None:
    assert names(store.select({"matchLabels": {"app": "web"}})) == ["web-1", "web-2"]
    assert names(store.select({"matchLabels": {"app": "web", "canary": "yes"}})) == ["web-2"]
    assert names(store.select({"matchLabels": {"app": "db"}})) == []
    exists = {"matchExpressions": [{"key": "canary", "operator": "Exists"}]}
    assert names(store.select(exists)) == ["web-2"]  # no matchLabels: the namespace is scanned


def test_events_add_change_and_delete_and_move_the_version(store: Store) -> None:
    store.apply({"type": "ADDED", "object": pod("web-3", "11", app="web")})
    store.apply({"type": "MODIFIED", "object": pod("web-1", "12", app="old")})
    store.apply({"type": "DELETED", "object": pod("api-1", "13", app="api")})
    assert names(store.select({"matchLabels": {"app": "web"}})) == ["web-2", "web-3"]
    assert names(store.select({"matchLabels": {"app": "old"}})) == ["web-1"]
    assert store.get("api-1") is None
    assert store.resource_version == "13"
    store.apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}})
    assert store.resource_version == "20"
    assert len(store.all()) == 3


def test_stored_objects_leave_managed_fields_out(store: Store) -> None:
    found = store.get("web-1")
    assert found is not None and "managedFields" not in found["metadata"]


def test_a_new_list_replaces_everything_so_objects_deleted_meanwhile_are_gone(
        store: Store) -> None:
    store.broken()
    assert not store.fresh
    store.replace([pod("web-1", app="web")], "30")
    assert store.fresh
    assert names(store.all()) == ["web-1"]
    assert store.select({"matchLabels": {"canary": "yes"}}) == []


def test_a_silent_watch_makes_the_store_stale(store: Store, clock: Clock) -> None:
    clock.now += MAX_SILENCE_SECONDS - 1
    assert store.fresh
    store.heard()
    clock.now += MAX_SILENCE_SECONDS - 1
    assert store.fresh
    clock.now += 2
    assert not store.fresh


def test_error_events_end_the_watch(store: Store) -> None:
    with pytest.raises(Expired):
        store.apply({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
    with pytest.raises(RuntimeError, match="500"):
        store.apply({"type": "ERROR", "object": {"code": 500, "message": "boom"}})


def test_watch_lines_are_parsed_one_event_a_line() -> None:
    lines: list[bytes | str] = [b'{"type": "ADDED", "object": {}}', b"",
                                '{"type": "DELETED", "object": {}}']
    assert [e["type"] for e in watch_lines(lines)] == ["ADDED", "DELETED"]


def test_an_informer_recovers_from_a_failed_list_and_an_expired_watch(clock: Clock) -> None:
    store, stop = Store(clock), threading.Event()
    lists: list[str] = []
    fresh_when_failing: list[bool] = []

    def lister() -> tuple[list[dict[str, Any]], str]:
        lists.append("list")
        if len(lists) == 1:
            raise OSError("connection refused")
        return [pod("web-1", app="web")], str(len(lists))

    def watcher(version: str) -> Iterator[dict[str, Any]]:
        fresh_when_failing.append(store.fresh)
        if len(lists) == 2:
            yield {"type": "ERROR", "object": {"code": 410}}
        yield {"type": "ADDED", "object": pod("web-2", "5", app="web")}
        stop.set()

    Informer("pods in prod", store, lister, watcher, stop, retry=(0.0,)).run()
    assert lists == ["list", "list", "list"]
    assert names(store.all()) == ["web-1", "web-2"]
    assert store.fresh and fresh_when_failing == [True, True]


def test_a_broken_watch_makes_the_store_stale_until_listed_again(clock: Clock) -> None:
    store, stop = Store(clock), threading.Event()
    seen: list[bool] = []

    def lister() -> tuple[list[dict[str, Any]], str]:
        if seen:  # the second list: the API server is down, the store must say so
            seen.append(store.fresh)
            stop.set()
            raise OSError("connection refused")
        return [pod("web-1", app="web")], "1"

    def watcher(version: str) -> Iterator[dict[str, Any]]:
        seen.append(store.fresh)
        raise OSError("connection reset")
        yield {}  # pragma: no cover (a generator that fails when iterated)

    Informer("pods in prod", store, lister, watcher, stop, retry=(0.0,)).run()
    assert seen == [True, False]
    assert not store.fresh


def test_a_watch_the_server_ends_is_resumed_from_the_last_version(clock: Clock) -> None:
    store, stop = Store(clock), threading.Event()
    versions: list[str] = []

    def watcher(version: str) -> Iterator[dict[str, Any]]:
        versions.append(version)
        if len(versions) == 2:
            stop.set()
        yield from [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}}]

    Informer("pods in prod", store, lambda: ([], "3"), watcher, stop).run()
    assert versions == ["3", "7"]


def test_a_started_informer_runs_in_its_own_thread(clock: Clock) -> None:
    stop, listed = threading.Event(), threading.Event()

    def lister() -> tuple[list[dict[str, Any]], str]:
        listed.set()
        stop.set()
        return [], "1"

    Informer("pods in prod", Store(clock), lister, lambda _: iter(()), stop).start()
    assert listed.wait(10)
