"""Waits of the scale benchmark on the operator's own /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from scale_measure import metric_sums, own_metrics


def fits_pending(port: int) -> float:
    """The operator's `adaptive_fits_pending` (fits queued at its fit gate or running)."""
    return metric_sums(own_metrics(port), {"adaptive_fits_pending": "pending"})["pending"]


def wait_fits(port: int, limit: float, log: Callable[[str], None]) -> float | None:
    """Seconds until the start's fits have drained (none pending), None past `limit`: the
    measured window then holds the steady state, not the warm-up's backlog."""
    started = time.monotonic()
    while (pending := fits_pending(port)) > 0:
        waited = time.monotonic() - started
        if waited > limit:
            log(f"{pending:.0f} fits still pending after {waited:.0f} s; measuring anyway")
            return None
        log(f"{pending:.0f} fits pending; waiting")
        time.sleep(5)
    return round(time.monotonic() - started, 1)
