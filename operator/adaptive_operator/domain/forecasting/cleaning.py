"""Robust cleaning of a load history before fitting.

Real metrics have gaps (scrape failures), counter resets (a `rate()` over a reset counter shows a
negative or a collapsed value), outages (long runs of exact zeros while the metric pipeline is
down: the demand did not vanish, the measurement did), outliers and level shifts. Each step here
turns what is not demand into missing data or moves it back in line; models then see a complete,
evenly spaced series.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

HAMPEL_HALF_WINDOW = 3
HAMPEL_SIGMAS = 4.0
MAD_TO_SIGMA = 1.4826
SHIFT_SIGMAS = 6.0
SHIFT_MIN_RELATIVE = 0.15


def as_array(values: Sequence[float | None]) -> FloatArray:
    """None and non-finite values become NaN; negative load is impossible (counter reset)."""
    y = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    y[~np.isfinite(y) | (y < 0)] = np.nan
    return y


def mark_outages(y: FloatArray, min_run: int) -> FloatArray:
    """Runs of at least `min_run` exact zeros in a series that is otherwise positive become NaN."""
    out = y.copy()
    finite = out[np.isfinite(out)]
    if len(finite) == 0 or float(np.median(finite)) <= 0.0:
        return out
    zero = np.concatenate(([False], out == 0.0, [False]))
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start >= min_run:
            out[start:stop] = np.nan
    return out


def aggregate(y: FloatArray, factor: int) -> FloatArray:
    """Blocks of `factor` points aligned to the end of the series, each summarised by its median
    (robust to single-point spikes); a block with no data is NaN."""
    if factor <= 1:
        return y.copy()
    usable = len(y) - len(y) % factor
    blocks = y[len(y) - usable :].reshape(-1, factor)
    out = np.full(len(blocks), np.nan)
    has_data = np.isfinite(blocks).any(axis=1)
    out[has_data] = np.nanmedian(blocks[has_data], axis=1)
    return out


def fill_gaps(y: FloatArray, period: int) -> FloatArray:
    """NaNs are filled from one period earlier when known (keeps the daily shape through a long
    gap), the rest by linear interpolation and, at the edges, by the nearest value."""
    out = y.copy()
    if period > 1:
        for i in np.flatnonzero(np.isnan(out)):
            if i >= period and np.isfinite(out[i - period]):
                out[i] = out[i - period]
    missing = np.isnan(out)
    if missing.all():
        return out
    idx = np.arange(len(out))
    out[missing] = np.interp(idx[missing], idx[~missing], out[~missing])
    return out


def clip_outliers(y: FloatArray) -> FloatArray:
    """Hampel filter: a point far from its window's median (in MADs) is set to that median."""
    k = HAMPEL_HALF_WINDOW
    if len(y) < 2 * k + 1:
        return y.copy()
    padded = np.pad(y, k, mode="edge")
    windows = sliding_window_view(padded, 2 * k + 1)
    median = np.median(windows, axis=1)
    mad = np.median(np.abs(windows - median[:, None]), axis=1) * MAD_TO_SIGMA
    # A floor on the spread keeps flat stretches from flagging every tiny wiggle.
    floor = 0.01 * max(float(np.median(np.abs(y))), 1e-9)
    outlier = np.abs(y - median) > HAMPEL_SIGMAS * np.maximum(mad, floor)
    return np.where(outlier, median, y)


def _deseasonalised(y: FloatArray, period: int) -> FloatArray:
    if period <= 1 or len(y) < 2 * period:
        return y
    phase = np.arange(len(y)) % period
    profile = np.array([np.median(y[phase == p]) for p in range(period)])
    return np.asarray(y - profile[phase], dtype=np.float64)


def _best_split(x: FloatArray, min_segment: int) -> tuple[int, float]:
    """Split index maximising the mean difference weighted as a two-sample statistic."""
    n = len(x)
    cumsum = np.cumsum(x)
    k = np.arange(min_segment, n - min_segment + 1)
    left = cumsum[k - 1] / k
    right = (cumsum[-1] - cumsum[k - 1]) / (n - k)
    score = np.abs(right - left) * np.sqrt(k * (n - k) / n)
    best = int(np.argmax(score))
    return int(k[best]), float(right[best] - left[best])


def remove_level_shift(y: FloatArray, period: int) -> FloatArray:
    """Move the data before a clear, lasting level shift onto the new level, so the model learns
    the shape from all of history but the level from the recent part."""
    min_segment = max(period, 8)
    if len(y) < 2 * min_segment:
        return y.copy()
    x = _deseasonalised(y, period)
    split, shift = _best_split(x, min_segment)
    noise = float(np.median(np.abs(np.diff(x)))) * MAD_TO_SIGMA / np.sqrt(2.0)
    level = max(float(np.median(np.abs(y))), 1e-9)
    if abs(shift) < max(SHIFT_SIGMAS * noise, SHIFT_MIN_RELATIVE * level):
        return y.copy()
    if not _is_step(x, split, shift, min_segment):
        return y.copy()
    out = y.copy()
    out[:split] = np.maximum(out[:split] + shift, 0.0)
    return out


def _is_step(x: FloatArray, split: int, shift: float, min_segment: int) -> bool:
    """A step, not a ramp or a single bump: both sides near their own medians, and the new level
    held right up to the end of the series."""
    before, after = x[:split], x[split:]
    tail = x[-max(min_segment // 2, 4) :]
    gap = abs(float(np.median(after)) - float(np.median(before)))
    drift = abs(float(np.median(tail)) - float(np.median(after)))
    return gap >= 0.7 * abs(shift) and drift < 0.3 * gap


def clean(y: FloatArray, factor: int, period: int, outage_run: int) -> FloatArray | None:
    """The fitting series: outages removed, aggregated to the fitting resolution, gaps filled,
    outliers clipped, a level shift levelled. None when there is no data at all."""
    coarse = aggregate(mark_outages(y, outage_run), factor)
    if not np.isfinite(coarse).any():
        return None
    filled = fill_gaps(coarse, period)
    return remove_level_shift(clip_outliers(filled), period)
