"""How far ahead the forecast must provision: the pods' start-up time plus one sync period.

A pod asked for now serves only once it is Ready, and the next chance to ask comes a sync period
later. When the spec does not set the look-ahead, the start-up time is learned from the target's
own pods: the median, over its Ready pods, of (Ready transition - creation). The median, because
one pod that flapped Ready days after it started must not move it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Used until a Ready pod has been seen: a typical container start with a readiness probe.
DEFAULT_STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class LookAhead:
    seconds: float
    source: str  # "spec", "learned from N pods" or "default"


def startup_seconds(samples: Sequence[float]) -> float | None:
    """Median start-up time of the pods, or None without a usable sample."""
    usable = [s for s in samples if math.isfinite(s) and s >= 0]
    return float(statistics.median(usable)) if usable else None


def whole_periods(seconds: float, period: float) -> float:
    """Round up to whole sync periods: the forecast is on the sync grid, and a look-ahead that
    moved by less than a row would only restart the forecaster for nothing."""
    return period * math.ceil(seconds / period - 1e-9)


def look_ahead(
    configured: float | None, samples: Sequence[float], period: float,
    previous: float | None = None, factor: float = 1.0,
) -> LookAhead:
    """The look-ahead for this sync: the spec's value, else `factor` x the learned start-up +
    one period (the spec's lookAheadFactor: a margin for pods slower than their median).

    A learned value keeps `previous` unless it moved by more than a period and by more than a
    quarter: restarting the forecaster costs a refit, so one slow pod must not cause one.
    """
    if configured is not None:
        return LookAhead(float(configured), "spec")
    learned = startup_seconds(samples)
    if learned is None:
        return LookAhead(whole_periods(factor * DEFAULT_STARTUP_SECONDS, period) + period,
                         "default")
    seconds = whole_periods(factor * learned, period) + period
    if previous is not None and abs(seconds - previous) <= max(period, 0.25 * previous):
        seconds = previous
    return LookAhead(seconds, f"learned from {len(samples)} pods")


def within_rows(ahead: LookAhead, period: float, rows: int) -> LookAhead:
    """At most `rows` sync periods: the forecast keeps buffers per look-ahead row, and one pod
    that took a day to become Ready must not make them gigabytes."""
    limit = rows * period
    if ahead.seconds <= limit:
        return ahead
    return LookAhead(limit, f"{ahead.source}, capped at {rows} sync periods")
