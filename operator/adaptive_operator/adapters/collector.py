"""Python's cyclic garbage collector, set for a process that holds every service's state, and
the time it takes counted on /metrics."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from adaptive_operator.adapters import telemetry

# CPython collects its youngest generation every 700 new container objects (dicts, lists,
# objects) and promotes what survives. With 1,000 services that meant nearly every object that
# outlived one sync (a watch event's body, a sync's observations) reached the oldest
# generation, and a full collection over every object the services hold ran every 24 s for
# about 1.1 s; the collector took 24 % of the operator's CPU (a gc.callbacks timer during
# `benchmarks/scale.py --services 1000`). A young generation of 10,000 lets a sync's objects
# die before they are promoted: 11 % of a CPU that fell by 10 % (benchmarks/results/scale.md).
# The other two thresholds stay CPython's.
YOUNG_GENERATION = 10_000


class PauseTimer:
    """A gc.callbacks entry that adds each collection's duration to a per-generation counter.
    Collections never overlap (the collector holds the GIL and refuses to re-enter), so one
    start time is enough."""

    def __init__(self, add: Callable[[int, float], None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._add = add
        self._clock = clock
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self._clock()
        else:
            self._add(int(info["generation"]), self._clock() - self._started)


def _count(generation: int, seconds: float) -> None:
    telemetry.GC_PAUSE_SECONDS.labels(str(generation)).inc(seconds)


def configure(young: int = YOUNG_GENERATION) -> PauseTimer:
    """Set the young generation's threshold and count every collection's time (once per
    process: a second call replaces the first's timer)."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
    gc.callbacks[:] = [entry for entry in gc.callbacks if not isinstance(entry, PauseTimer)]
    timer = PauseTimer(_count)
    gc.callbacks.append(timer)
    return timer
