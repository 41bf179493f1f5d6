"""Persistence with its own realised band: the floor while no seasonal forecast is trusted.

Persistence says the load stays where it is. Its realised error at a row t is how far the load
rose above y[t] over the next `horizon` rows (the highest of y[t+1..t+horizon] minus y[t]), and
the q-quantile of those errors over the last rows is the rise the look-ahead should be ready for.
While the seasonal model warms up, finds no season, or loses to its guard's reference, this floor
keeps the spare capacity that the recent rises call for: no more than a reactive scaler with a
headroom calibrated on the service's own recent rows (issue 17: most unserved demand of the
product came from the rows where it fell back to plain reactive scaling).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from adaptive_operator.domain.forecasting.tracker import ErrorWindow

# Fewer realised errors than this give no band: a quantile of a handful of rises says little.
MIN_ERRORS = 12
# The guard's verdict needs realised errors over this many look-aheads (and MIN_ERRORS): on a
# young window a few noisy rows can make the last value look as good as the mean.
MIN_LOOKAHEADS = 3


def rise(recent: deque[float]) -> float:
    """The highest of the rows after the first, minus the first (NaN when either is unknown)."""
    first = recent[0]
    later = [v for v in list(recent)[1:] if not math.isnan(v)]
    if math.isnan(first) or not later:
        return math.nan
    return max(later) - first


class PersistenceBand:
    """The last value plus the q-quantile of the realised rises over the look-ahead, used only
    while the last value forecasts the load a look-ahead ahead no worse than `max_relative_error`
    times the mean of the look-ahead's last rows does. On a noisy row-level series (bursty load,
    second-level rows) the last value is mostly noise, its rises measure the noise, and a band on
    them buys spare pods for nothing; at a one-row look-ahead the two forecasts are the same."""

    def __init__(self, rows: int, horizon: int, max_relative_error: float = 1.1) -> None:
        self.horizon = max(1, horizon)
        self.max_relative_error = max_relative_error
        self.window = ErrorWindow(max(1, rows), 1)
        self.guard = ErrorWindow(max(1, rows), 1)  # the last value's error, the mean's beside
        self._recent: deque[float] = deque(maxlen=self.horizon + 1)
        self._means: deque[float] = deque(maxlen=self.horizon + 1)
        self._sum, self._count = 0.0, 0
        self._one = np.full(1, math.nan)

    @property
    def last(self) -> float:
        return self._recent[-1] if self._recent else math.nan

    def observe(self, value: float) -> None:
        """The next row (NaN: missing); scores the forecasts made `horizon` rows ago. A value
        that is not a finite number is a missing row."""
        value = value if math.isfinite(value) else math.nan
        self._move_mean(value)
        self._recent.append(value)
        if len(self._recent) <= self.horizon:
            return
        self._add(self.window, rise(self._recent), math.nan)
        self._add(self.guard, value - self._recent[0], value - self._means[0])

    def _move_mean(self, value: float) -> None:
        """The mean of the last `horizon` rows, this one included, kept as a running sum."""
        if len(self._recent) >= self.horizon:
            leaving = self._recent[-self.horizon]
            if not math.isnan(leaving):
                self._sum, self._count = self._sum - leaving, self._count - 1
        if not math.isnan(value):
            self._sum, self._count = self._sum + value, self._count + 1
        self._means.append(self._sum / self._count if self._count else math.nan)

    def _add(self, window: ErrorWindow, error: float, reference: float) -> None:
        if not math.isnan(error):
            self._one[0] = error
            window.add(self._one, reference)

    @property
    def trusted(self) -> bool:
        """Whether the last value forecasts no worse than the look-ahead's mean (within the
        tolerance), on enough rows."""
        relative, scored = self.guard.relative_error()
        enough = max(MIN_ERRORS, MIN_LOOKAHEADS * self.horizon)
        return scored >= enough and relative < self.max_relative_error

    def high(self, q: float) -> float | None:
        """The q-quantile of the load over the look-ahead, or None (not trusted, last row
        missing, or too few errors). Ask it on every row: the windows refresh their figures by
        row count."""
        errors = min(self.window.count, self.window.size)
        rise_q = float(self.window.quantiles(q)[1][0])
        trusted = self.trusted
        last = self.last
        if not trusted or math.isnan(last) or errors < MIN_ERRORS:
            return None
        return max(last + rise_q, 0.0)

    def floor(self, q: float, target: float) -> int | None:
        """Replicas for the q-quantile of the load over the look-ahead."""
        high = self.high(q)
        return None if high is None else math.ceil(high / target)
