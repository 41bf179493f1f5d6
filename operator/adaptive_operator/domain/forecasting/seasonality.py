"""Seasonality detection from the autocorrelation function: periods are found, never assumed.

A period is a local maximum of the (linearly detrended) sample ACF that is both high and
prominent; a longer period (e.g. weekly over daily) is kept only when the ACF at that multiple of
the primary period stands out above its neighbouring multiples, i.e. the long cycle adds something
the short one does not explain.

Peaks are found on the biased ACF (stable at long lags), but it tapers by (n - k) / n, which pulls
a peak towards shorter lags: on a young history of three cycles of a 30-row season the peak lands
on 29 as often as on 30, and a seasonal naive forecast one row out of phase is off by the load's
slope every row. So each period found is then placed at the maximum of the unbiased ACF
(autocovariance over n - k) near it.

The anomaly detector reads the same autocorrelation for the season of a service's health
metrics, and the scores its earlier cycles gave the same phase.

Operational metrics repeat: a nightly backup, an hourly cron job, the morning ramp. A forest
trained on a few cycles still scores such a regular event high (it is rare among the rows),
and it beats the recent record often enough to be flagged day after day. The detector
therefore finds the season of the training rows (the lag of the highest peak of their
autocorrelation) and requires a flagged row's score to beat, strictly, the highest score its
`season_repeats` previous cycles gave the same phase (within `season_slack_rows` rows): an
event that recurs at the same time of the cycle is the normal pattern, however high it scores.

Causal: a row's seasonal level uses rows at least `season - season_slack_rows`
rows before it, and the shortest season considered is 3 x `season_slack_rows`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

MIN_PERIOD = 4
ACF_THRESHOLD = 0.2
PROMINENCE = 0.15
MULTIPLE_BUMP = 0.03


def autocorrelation(y: FloatArray, max_lag: int) -> FloatArray:
    """Biased sample ACF for lags 0..max_lag, by FFT (O(n log n) for long histories)."""
    n = len(y)
    t = np.arange(n, dtype=np.float64)
    x = y - np.polyval(np.polyfit(t, y, 1), t)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(x, size)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]
    if acov[0] <= 0:
        return np.zeros(max_lag + 1)
    return np.asarray(acov / acov[0], dtype=np.float64)


def _peaks(acf: FloatArray, threshold: float) -> list[int]:
    """Lags of local maxima that are high and rise clearly above the trough before them."""
    found = []
    for lag in range(MIN_PERIOD, len(acf) - 1):
        if acf[lag] < threshold or not acf[lag - 1] < acf[lag] >= acf[lag + 1]:
            continue
        if acf[lag] - float(np.min(acf[1:lag])) >= PROMINENCE:
            found.append(lag)
    return found


def _refined(acf: FloatArray, lag: int, n: int) -> int:
    """The lag near `lag` where the unbiased ACF peaks (within 5% of it, at least one row)."""
    slack = max(1, lag // 20)
    lo, hi = max(1, lag - slack), min(len(acf) - 1, lag + slack)
    lags = np.arange(lo, hi + 1)
    return int(lags[np.argmax(acf[lo : hi + 1] * n / (n - lags))])


def _local_max_near(acf: FloatArray, lag: int, slack: int) -> int:
    lo, hi = max(1, lag - slack), min(len(acf) - 1, lag + slack)
    return lo + int(np.argmax(acf[lo : hi + 1]))


def _longer_period(acf: FloatArray, primary: int) -> int | None:
    """A multiple of the primary period whose ACF stands above both neighbouring multiples."""
    slack = max(1, primary // 20)
    for k in range(2, (len(acf) - 1) // primary):
        lag = _local_max_near(acf, k * primary, slack)
        before = acf[_local_max_near(acf, (k - 1) * primary, slack)]
        after = acf[_local_max_near(acf, (k + 1) * primary, slack)]
        if acf[lag] - max(before, after) >= MULTIPLE_BUMP and acf[lag] >= ACF_THRESHOLD:
            return lag
    return None


def detect_periods(y: FloatArray) -> tuple[int, ...]:
    """Detected seasonal periods in points, shortest first; empty when there is none.

    `y` must be finite. A period needs two full cycles of data to be trusted; a longer one is
    looked for among lags up to half the series (its neighbour multiples must fit too).
    """
    n = len(y)
    if n < 4 * MIN_PERIOD or float(np.std(y)) == 0.0:
        return ()
    acf = autocorrelation(y, n // 2)
    threshold = max(ACF_THRESHOLD, 3.0 / np.sqrt(n))
    peaks = _peaks(acf, threshold)
    if not peaks:
        return ()
    best = max(float(acf[p]) for p in peaks)
    primary = next(p for p in peaks if acf[p] >= 0.6 * best)
    longer = _longer_period(acf, primary)
    found = (primary,) if longer is None else (primary, longer)
    return tuple(_refined(acf, p, n) for p in found)


# --- the detector's season (healing) -----------------------------------------------------


def finite_autocorrelation(values: Sequence[float] | FloatArray) -> FloatArray:
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
    return autocorrelation(x, n - 1)


def strongest_peak(
    values: Sequence[float] | FloatArray, shortest: int, longest: int, min_z: float
) -> tuple[int, float]:
    """The lag in [shortest, longest] of the highest local peak of the autocorrelation, and its
    value; (0, 0.0) when no peak stands `min_z` standard errors (1 / sqrt(rows)) above 0, or
    the series is under 3 of the lags long."""
    acf = finite_autocorrelation(values)
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
