"""Online part of a forecast: the level correction between refits and the realised errors.

Between refits the baseline is fixed; what moves is the level: an exponentially weighted mean of
(actual - baseline) is added to every horizon. Each row also scores the forecasts made for it
earlier (per horizon), and those realised errors give the quantiles (an empirical, conformal-style
band) and feed the guard, next to the errors the guard's reference (seasonal naive, or persistence
for seasonal naive itself: `backtest.Reference`) would have made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def next_level(level: float, residual: float, alpha: float, clip: float) -> float:
    """One step of the level correction; a missing row keeps the level, and a residual is clipped
    to `clip` around the current level, so a spike moves it little while a real level shift still
    pulls it over a few rows."""
    if math.isnan(residual):
        return level
    step = min(max(residual - level, -clip), clip)
    return level + alpha * step


def simulate(
    actual: FloatArray, base: FloatArray, alpha: float, clip: float, horizon: int
) -> FloatArray:
    """Errors (actual - forecast) of forecasts made after each of the first len - horizon rows,
    for horizons 1..horizon; the same arithmetic as the online tracker, for the backtest."""
    rows = len(actual) - horizon
    levels = np.empty(rows)
    level = 0.0
    # `next_level` inlined over plain floats: the backtest runs it for every row of every origin,
    # model and rate, and the per-call and numpy-scalar overhead was most of its cost.
    for t, residual in enumerate((actual[:rows] - base[:rows]).tolist()):
        if residual == residual:  # not NaN: a missing row keeps the level
            level = level + alpha * min(max(residual - level, -clip), clip)
        levels[t] = level
    idx = np.arange(rows)[:, None] + np.arange(1, horizon + 1)[None, :]
    return np.asarray(actual[idx] - base[idx] - levels[:, None], dtype=np.float64)


def _nanquantiles(errors: FloatArray, qs: tuple[float, float]) -> FloatArray:
    """`np.nanquantile(errors, qs, axis=0)`, value for value, without its per-column
    `apply_along_axis`: a window without NaN in one call, else column by column on the known
    values (a quantile does not depend on the order of its values)."""
    missing = np.isnan(errors)
    if not missing.any():
        return np.asarray(np.quantile(errors, qs, axis=0), dtype=np.float64)
    out = np.full((len(qs), errors.shape[1]), np.nan)
    for column in range(errors.shape[1]):
        known = errors[~missing[:, column], column]
        if len(known):
            out[:, column] = np.quantile(known, qs)
    return out


@dataclass
class ErrorWindow:
    """Ring buffer of the last `size` rows of realised errors, one column per horizon."""

    size: int
    horizon: int
    errors: FloatArray = field(init=False)
    reference: FloatArray = field(init=False)
    count: int = 0
    # Per quantile: the row count when computed, median and quantile (several quantiles may be
    # asked of one window, e.g. by a benchmark sweeping the operating point; each keeps its own).
    _cached: dict[float, tuple[int, FloatArray, FloatArray]] = field(default_factory=dict)
    _cached_relative: tuple[int, float, int] | None = None

    def __post_init__(self) -> None:
        self.errors = np.full((self.size, self.horizon), np.nan)
        self.reference = np.full(self.size, np.nan)

    def add(self, errors: FloatArray, reference_error: float) -> None:
        slot = self.count % self.size
        self.errors[slot] = errors
        self.reference[slot] = reference_error
        self.count += 1

    def seed(self, errors: FloatArray, reference: FloatArray) -> None:
        for row, error in zip(errors[-self.size :], reference[-self.size :], strict=True):
            self.add(row, float(error))

    def quantiles(self, q: float) -> tuple[FloatArray, FloatArray]:
        """Median and q-quantile of the error per horizon (zeros while there is no error yet).

        Recomputed once every 1/64 of the rows the window holds: a quantile of a window barely
        moves per row, and sorting the window every row would dominate the cost of a decision."""
        cached = self._cached.get(q)
        if cached is not None and self.count - cached[0] < self._refresh():
            return cached[1], cached[2]
        mid, high = self._compute(q)
        self._cached[q] = (self.count, mid, high)
        return mid, high

    def _compute(self, q: float) -> tuple[FloatArray, FloatArray]:
        if not np.isfinite(self.errors).any():
            zeros = np.zeros(self.horizon)
            return zeros, zeros
        stacked = np.nan_to_num(_nanquantiles(self.errors, (0.5, q)))
        return stacked[0], stacked[1]

    def _refresh(self) -> int:
        """Rows between recomputations: 1/64 of the rows held, not of the capacity, so a young
        window (a day's capacity at a 2 s sync is 43,200 rows) follows its first realised errors
        instead of keeping the backtest's figures for hundreds of rows."""
        return max(1, min(self.count, self.size) // 64)

    def relative_error(self) -> tuple[float, int]:
        """MAE of the longest horizon over the reference's MAE on the same rows, and the rows;
        refreshed, like the quantiles, once every 1/64 of the rows held."""
        cached = self._cached_relative
        if cached is None or self.count - cached[0] >= self._refresh():
            cached = (self.count, *self._relative())
            self._cached_relative = cached
        return cached[1], cached[2]

    def _relative(self) -> tuple[float, int]:
        model = self.errors[:, -1]
        both = np.isfinite(model) & np.isfinite(self.reference)
        scored = int(both.sum())
        if scored == 0:
            return math.inf, 0
        reference_mae = float(np.mean(np.abs(self.reference[both])))
        return mae_ratio(float(np.mean(np.abs(model[both]))), reference_mae), scored


def mae_ratio(model_mae: float, reference_mae: float) -> float:
    """A forecast's mean absolute error over a reference's: 0 when both are exact, infinite
    when only the reference is."""
    if reference_mae > 0:
        return model_mae / reference_mae
    return 0.0 if model_mae == 0 else math.inf


# Up to this horizon, a row's errors are computed element by element (`Tracker._errors`).
SCALAR_HORIZON = 8


@dataclass
class Tracker:
    """Forecasts made at the last `horizon` rows, the running level, and the error window."""

    horizon: int
    alpha: float
    clip: float
    window: ErrorWindow
    level: float = 0.0
    pending: FloatArray = field(init=False)
    made_at: NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        self.pending = np.full((self.horizon, self.horizon), np.nan)
        self.made_at = np.full(self.horizon, -1, dtype=np.int64)
        self._steps = np.arange(1, self.horizon + 1)  # built once: observe runs every row

    def observe(self, row: int, value: float, base: float, reference_forecast: float) -> None:
        """Score what was forecast for `row`, then move the level."""
        if not math.isnan(value):
            errors = self._errors(row, value)
            if errors is not None:
                self.window.add(errors, value - reference_forecast)
        self.level = next_level(self.level, value - base, self.alpha, self.clip)

    def _errors(self, row: int, value: float) -> FloatArray | None:
        """value - the forecast made k rows earlier for this row, per horizon k (NaN where none
        was made); None when no forecast was made for it."""
        if self.horizon > SCALAR_HORIZON:
            steps = self._steps
            slots = (row - steps) % self.horizon
            made = self.pending[slots, steps - 1]
            valid = self.made_at[slots] == row - steps
            return np.where(valid, value - made, np.nan) if valid.any() else None
        # A short horizon (the common case) element by element: the same subtractions, without
        # the fixed cost of five numpy calls per row.
        errors = np.full(self.horizon, np.nan)
        found = False
        for k in range(1, self.horizon + 1):
            slot = (row - k) % self.horizon
            if self.made_at[slot] == row - k:
                errors[k - 1] = value - self.pending[slot, k - 1]
                found = True
        return errors if found else None

    def predict(self, row: int, base_ahead: FloatArray) -> FloatArray:
        """Point forecasts for rows row+1..row+horizon, remembered for scoring."""
        point = np.asarray(base_ahead + self.level, dtype=np.float64)
        slot = row % self.horizon
        self.pending[slot] = point
        self.made_at[slot] = row
        return point
