"""Warm-ups in the background: a service's history backfills and first fits, one at a time.

A service decides reactively from its first period; what its forecast and its detector need
first (days of history read by range queries, then a model fitted) runs here, off the sync, so
that 1,000 services starting together do not each wait for theirs. One warm-up runs at a time:
the range queries and the fits are the operator's heaviest work, and the syncs come first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WarmUps:
    """The queue of warm-ups (the runtime's: one per process); at most `at_once` run."""

    def __init__(self, at_once: int = 1) -> None:
        self._gate = asyncio.Semaphore(at_once)

    def start(self, work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """`work` as a task, begun when a place is free; cancelling the task drops it."""

        async def gated() -> T:
            async with self._gate:
                return await work()

        return asyncio.create_task(gated())
