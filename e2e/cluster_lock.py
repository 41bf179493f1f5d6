"""Locks the e2e suite's processes (pytest-xdist workers) share through files: the groups run
their tests on one cluster at the same time, and a test that disrupts the whole cluster (an API
server restart) must run alone.

`ClusterLock` is a readers-writer lock with a turnstile: every test holds it shared, a disruptive
one exclusive. A writer takes the turnstile first and keeps it until it is done, and a reader
passes through the turnstile before it takes its shared lock, so a waiting writer is not starved
by the readers that keep coming. fcntl.flock locks belong to an open file: two locks of one file
opened twice exclude each other even within one process, and the kernel drops them when the
process dies.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def flocked(path: Path, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
    """Holds `path` locked (flock: LOCK_EX or LOCK_SH) until the block ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ClusterLock:
    """Shared for tests that share the cluster, exclusive for one that disrupts it."""

    def __init__(self, directory: Path) -> None:
        self.turnstile = directory / "cluster.turnstile"
        self.resource = directory / "cluster.lock"

    @contextmanager
    def shared(self) -> Iterator[None]:
        with flocked(self.turnstile):
            pass  # waits behind a writer that holds or waits for the cluster
        with flocked(self.resource, fcntl.LOCK_SH):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with flocked(self.turnstile), flocked(self.resource):
            yield
