"""Warm-ups in the background: a service's history backfills and first fits.

A service decides reactively from its first period; what its forecast and its detector need
first (days of history read by range queries, then a model fitted) runs here, off the sync, so
that 1,000 services starting together do not each wait for theirs. The backfills start at once:
the range batcher (`ranges`, an `adapters.range_batch.RangeBatcher`) bounds them and groups the
reads of services that start together into one query (held back one at a time, they could not
share). The fits are CPU work: one at a time, on a worker thread, so the syncs come first; the
fits waiting are let in namespace by namespace in turn (`workers.FairGate`), so a namespace whose
thousand services start together delays another namespace's first fit by one fit, not a thousand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from adaptive_operator.adapters.prometheus import RangeSeries, Target
from adaptive_operator.adapters.range_batch import RangeBatcher
from adaptive_operator.adapters.telemetry import FITS_PENDING
from adaptive_operator.adapters.workers import FairGate

T = TypeVar("T")


class Ranges(Protocol):
    """A query's rows over a window (adapters.range_batch.RangeBatcher groups the range queries
    of services that start together)."""

    async def series(self, url: Target, query: str, start: float, end: float,
                     step: float) -> RangeSeries: ...


def running(task: object) -> bool:
    """Whether `task` (a background task `WarmUps.start` began, or None) is still running."""
    return isinstance(task, asyncio.Task) and not task.done()


class WarmUps:
    """The runtime's (one per process): the range reads the backfills share, the warm-up tasks,
    and the gate the fits queue at."""

    def __init__(self, fits_at_once: int = 1, *, ranges: Ranges | None = None) -> None:
        self._fits = FairGate(fits_at_once)
        self.ranges: Ranges = ranges if ranges is not None else RangeBatcher()

    def start(self, work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """`work` as a background task; cancelling the task drops it."""

        async def run() -> T:
            return await work()

        return asyncio.create_task(run())

    async def fit(self, call: Callable[[], T]) -> T:
        """`call` (CPU work) on a worker thread once no other fit runs and the namespaces
        queued before this one (`workers.TENANT`) have had their turn."""
        return await self.fit_made(lambda: call)

    async def fit_made(self, make: Callable[[], Callable[[], T]]) -> T:
        """`fit` of the call `make` returns when this fit's turn has come (on the event loop,
        so it may copy what the syncs append): a fit of the rows as they were when it was
        queued would be as many rows behind as it waited, with 1,000 services minutes, and
        the model then needs another round through the gate to catch up (which, waiting as
        long, left it behind again: a refit loop that kept the gate busy)."""
        FITS_PENDING.inc()
        try:
            async with self._fits.held():
                return await asyncio.to_thread(make())
        finally:
            FITS_PENDING.dec()
