"""Watch-fed caches of one kind of object in one namespace (an informer, as controllers have).

A `Store` holds what a LIST and the WATCH events after it said, as the API's JSON (dicts), with
the objects' labels indexed so a selector finds its objects without scanning the namespace. An
`Informer` thread fills it: list, then watch from the list's resourceVersion, re-watch from the
last version seen when the server ends a watch (every `WATCH_SECONDS`), list again when the
version is too old (410 Gone) or the watch broke.

The rail: never act on data that could not be read. A store says it is `fresh` only after a
complete list and while its watch answers; a broken watch (the API server restarting, a cut
connection) makes it not fresh at once, a hung one at the latest when the read times out, and
the next list REPLACES the contents, so an object deleted while the watch was down is gone.
Readers ask the API server themselves when the store is not fresh.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from adaptive_operator import logs
from adaptive_operator.domain.common.label_selector import matches

log = logs.get(__name__)
WATCH_SECONDS = 60  # the server ends each watch after this; the next starts where it ended
READ_TIMEOUT_SECONDS = WATCH_SECONDS + 15  # no byte for this long: the connection is dead
MAX_SILENCE_SECONDS = 2 * READ_TIMEOUT_SECONDS  # belt and braces: no word from the watch at all
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0)

Object = dict[str, Any]
Listing = tuple[list[Object], str]  # the items and the list's resourceVersion
Lister = Callable[[], Listing]
Watcher = Callable[[str], Iterable[Object]]  # from a resourceVersion: the watch's event lines


class Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _slim(obj: Object) -> Object:
    """Without managedFields (the largest part of most objects, never read here)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


class Store:
    """The objects of one kind in one namespace, by name, with a label index."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._objects: dict[str, Object] = {}
        self._by_label: dict[tuple[str, str], set[str]] = {}
        self._synced = False
        self._heard = 0.0
        self.resource_version = ""

    def _index(self, name: str, obj: Object | None) -> None:
        old = self._objects.pop(name, None)
        for pair in _labels(old or {}).items():
            names = self._by_label.get(pair)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_label[pair]
        if obj is not None:
            self._objects[name] = obj
            for pair in _labels(obj).items():
                self._by_label.setdefault(pair, set()).add(name)

    def replace(self, items: Iterable[Object], resource_version: str) -> None:
        """A complete list: the store becomes exactly it, and fresh."""
        with self._lock:
            self._objects.clear()
            self._by_label.clear()
            for obj in items:
                self._index(_name(obj), _slim(obj))
            self.resource_version = resource_version
            self._synced = True
            self._heard = self.clock()

    def apply(self, event: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED, BOOKMARK); ERROR with 410 raises `Expired`,
        any other ERROR `RuntimeError`."""
        kind, obj = event.get("type"), dict(event.get("object") or {})
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Expired(str(obj.get("message", "")))
            raise RuntimeError(f"watch error: {obj.get('code')} {obj.get('message')}")
        with self._lock:
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if version:
                self.resource_version = str(version)
            self._heard = self.clock()
            if kind == "DELETED":
                self._index(_name(obj), None)
            elif kind in ("ADDED", "MODIFIED"):
                self._index(_name(obj), _slim(obj))
            # BOOKMARK: only the version moves on (and the watch was heard)

    def heard(self) -> None:
        """The watch answered (a new watch opened, or one ended as the server meant it to)."""
        with self._lock:
            self._heard = self.clock()

    def broken(self) -> None:
        with self._lock:
            self._synced = False

    @property
    def fresh(self) -> bool:
        with self._lock:
            return self._synced and self.clock() - self._heard <= MAX_SILENCE_SECONDS

    def get(self, name: str) -> Object | None:
        with self._lock:
            return self._objects.get(name)

    def all(self) -> list[Object]:
        with self._lock:
            return list(self._objects.values())

    def select(self, selector: Mapping[str, Any]) -> list[Object]:
        """The objects a LabelSelector selects (through the index when it has matchLabels)."""
        with self._lock:
            wanted = list((selector.get("matchLabels") or {}).items())
            if wanted:
                sets = [self._by_label.get((k, str(v)), set()) for k, v in wanted]
                names: Iterable[str] = set.intersection(*sets)
            else:
                names = list(self._objects)
            found = [self._objects[n] for n in names]
        return [obj for obj in found if matches(selector, _labels(obj))]


def watch_lines(lines: Iterable[bytes | str]) -> Iterator[Object]:
    """A watch's response body, one JSON event per line."""
    for line in lines:
        text = line.decode() if isinstance(line, bytes) else line
        if text.strip():
            yield json.loads(text)


class Informer:
    """One thread keeping one `Store` in step with the API server."""

    def __init__(self, what: str, store: Store, lister: Lister, watcher: Watcher,
                 stop: threading.Event | None = None,
                 retry: tuple[float, ...] = RETRY_SECONDS) -> None:
        self.what, self.store, self.lister, self.watcher = what, store, lister, watcher
        self.stop = stop or threading.Event()
        self.retry = retry

    def start(self) -> None:
        threading.Thread(target=self.run, daemon=True, name=f"informer {self.what}").start()

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                self.follow()
            except Expired:
                failures = 0  # not a failure: the version aged out; list again at once
                continue
            except Exception as err:  # any failure: not fresh, list again
                self.store.broken()
                log.warning("watch broken: reads go to the API server until it is back",
                            what=self.what, error=logs.error_text(err))
                self.stop.wait(self.retry[min(failures, len(self.retry) - 1)])
                failures += 1
                continue
            failures = 0

    def follow(self) -> None:
        """List, then watch until stopped (returns) or the watch fails (raises)."""
        items, version = self.lister()
        self.store.replace(items, version)
        while not self.stop.is_set():
            for event in self.watcher(self.store.resource_version):
                self.store.apply(event)
                if self.stop.is_set():
                    return
            self.store.heard()  # the server ended the watch as asked: carry on from here
