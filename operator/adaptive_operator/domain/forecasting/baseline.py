"""From a fine-resolution history to a model's baseline path at that same resolution.

Models are fitted at a coarser resolution (a few dozen points per primary period): that is what
keeps a refit on 14 days of 1-minute data cheap, and the seasonal shape does not need more. The
coarse path is interpolated back to the fine rows; the tracker adds the short-term level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from adaptive_operator.domain.forecasting.cleaning import clean
from adaptive_operator.domain.forecasting.models import ModelKind, forecaster

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Resolution:
    """How fine rows map to fitting points: `factor` fine rows per point, periods in points."""

    factor: int
    periods: tuple[int, ...]
    fine_periods: tuple[int, ...]

    @staticmethod
    def for_periods(fine_periods: tuple[int, ...], points_per_period: int) -> Resolution:
        factor = max(1, fine_periods[0] // points_per_period) if fine_periods else 1
        periods = tuple(max(2, round(p / factor)) for p in fine_periods)
        return Resolution(factor, periods, fine_periods)


def outage_run(resolution: Resolution) -> int:
    """Zeros for longer than this many fine rows are an outage: a few percent of a cycle."""
    period = resolution.fine_periods[0] if resolution.fine_periods else 100
    return max(3, period // 48)


def fitting_series(y: FloatArray, resolution: Resolution) -> FloatArray | None:
    """The cleaned series at the fitting resolution (None when `y` has no data): the same for
    every model fitted on `y`, so a backtest cleans each origin once."""
    primary = resolution.periods[0] if resolution.periods else 1
    return clean(y, resolution.factor, primary, outage_run(resolution))


def baseline_path(
    y: FloatArray, kind: ModelKind, resolution: Resolution, steps: int
) -> FloatArray | None:
    """Point forecasts for the `steps` fine rows after `y`, or None when `y` has no data."""
    return path_from(len(y), fitting_series(y, resolution), kind, resolution, steps)


def path_from(
    n: int, coarse: FloatArray | None, kind: ModelKind, resolution: Resolution, steps: int
) -> FloatArray | None:
    """`baseline_path` for `n` fine rows whose fitting series is `coarse` (left unchanged)."""
    if coarse is None:
        return None
    factor = resolution.factor
    fitted = forecaster(kind).fit(coarse.copy(), resolution.periods)
    future = fitted.path(math.ceil(steps / factor) + 2)
    m = len(coarse)
    half = (factor - 1) / 2.0
    past_centres = n - m * factor + np.arange(m) * factor + half
    future_centres = n + np.arange(len(future)) * factor + half
    centres = np.concatenate((past_centres[-1:], future_centres))
    values = np.concatenate((coarse[-1:], future))
    rows = np.arange(n, n + steps, dtype=np.float64)
    return np.asarray(np.interp(rows, centres, values), dtype=np.float64)
