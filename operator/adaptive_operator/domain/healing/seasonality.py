"""The season of a service's metrics, and the scores its earlier cycles gave the same phase.

Operational metrics repeat: a nightly backup, an hourly cron job, the morning ramp. A forest
trained on a few cycles still scores such a regular event high (it is rare among the rows),
and it beats the recent record often enough to be flagged day after day. The detector
therefore finds the season of the training rows (the lag of the highest peak of their
autocorrelation) and requires a flagged row's score to beat, strictly, the highest score its
`season_repeats` previous cycles gave the same phase (within `season_slack_rows` rows): an
event that recurs at the same time of the cycle is the normal pattern, however high it scores.

Pure numpy; causal: a row's seasonal level uses rows at least `season - season_slack_rows`
rows before it, and the shortest season considered is 3 x `season_slack_rows`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from adaptive_operator.domain.forecasting.seasonality import (
    autocorrelation as forecast_autocorrelation,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def autocorrelation(values: Sequence[float] | FloatArray) -> FloatArray:
    """The (linearly detrended) sample autocorrelation at every lag 0..n-1, the forecaster's;
    1 at lag 0, zeros for a flat series. Missing or infinite values count as the mean."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    finite = np.isfinite(x)
    largest = float(np.abs(x[finite]).max()) if finite.any() else 0.0
    if largest == 0.0:
        return np.zeros(n)
    x = np.where(finite, x / largest, 0.0)  # scaled first: huge values must not overflow
    x = np.where(finite, x - x[finite].mean(), 0.0)
    return forecast_autocorrelation(x, n - 1)


def strongest_peak(
    values: Sequence[float] | FloatArray, shortest: int, longest: int, min_z: float
) -> tuple[int, float]:
    """The lag in [shortest, longest] of the highest local peak of the autocorrelation, and its
    value; (0, 0.0) when no peak stands `min_z` standard errors (1 / sqrt(rows)) above 0, or
    the series is under 3 of the lags long."""
    acf = autocorrelation(values)
    longest = min(longest, len(acf) // 3)
    if shortest < 1 or longest < shortest:
        return 0, 0.0
    lags = np.arange(shortest, longest + 1)
    peaks = lags[(acf[lags] >= acf[lags - 1]) & (acf[lags] >= acf[lags + 1])]
    peaks = peaks[acf[peaks] >= min_z / np.sqrt(len(acf))]
    if not len(peaks):
        return 0, 0.0
    best = int(peaks[np.argmax(acf[peaks])])
    return best, float(acf[best])


def season_of(
    history: Mapping[str, Sequence[float] | FloatArray],
    shortest: int,
    longest: int,
    min_z: float,
) -> int:
    """The season in rows of several metrics: that of the metric whose autocorrelation peak is
    the strongest; 0 when none has one."""
    found = [strongest_peak(history[name], shortest, longest, min_z) for name in sorted(history)]
    best = max(found, key=lambda peak: peak[1], default=(0, 0.0))
    return best[0]


def seasonal_levels(
    scores: FloatArray, seasons: IntArray | int, slack: int, repeats: int
) -> FloatArray:
    """Per row t: the highest score of rows t - k*season +- slack for k = 1..repeats (0 where
    the season is not above `slack` or no such row exists). `seasons` is one season per row,
    or one for all."""
    n = len(scores)
    per_row = np.broadcast_to(np.asarray(seasons, dtype=np.intp), (n,))
    around = pd.Series(scores).rolling(2 * slack + 1, center=True, min_periods=1).max()
    nearby = around.to_numpy(dtype=float)
    levels = np.zeros(n)
    rows = np.arange(n)
    for k in range(1, repeats + 1):
        earlier = rows - k * per_row
        usable = (per_row > slack) & (earlier >= 0)  # so the rows compared end before t
        levels[usable] = np.maximum(levels[usable], nearby[earlier[usable]])
    return levels
