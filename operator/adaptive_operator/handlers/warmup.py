"""Warm-ups in the background: a service's history backfills and first fits.

A service decides reactively from its first period; what its forecast and its detector need
first (days of history read by range queries, then a model fitted) runs here, off the sync, so
that 1,000 services starting together do not each wait for theirs. The backfills start at once:
`adapters.range_batch` bounds them and groups the reads of services that start together into
one query (held back one at a time, they could not share). The fits are CPU work: one at a
time, on a worker thread, so the syncs come first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WarmUps:
    """The runtime's (one per process): the warm-up tasks, and the gate the fits queue at."""

    def __init__(self, fits_at_once: int = 1) -> None:
        self._fits = asyncio.Semaphore(fits_at_once)

    def start(self, work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """`work` as a background task; cancelling the task drops it."""

        async def run() -> T:
            return await work()

        return asyncio.create_task(run())

    async def fit(self, call: Callable[[], T]) -> T:
        """`call` (CPU work) on a worker thread once no other fit runs."""
        async with self._fits:
            return await asyncio.to_thread(call)
