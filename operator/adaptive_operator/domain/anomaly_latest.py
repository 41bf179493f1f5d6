"""The anomaly features of a window's newest row only, in numpy.

`anomaly.metric_features` computes every row of a window with pandas rolling windows (~30 ms
for the operator's 2,100-row window of two metrics); the live detector needs only the newest
row each sync: the same numbers (a test compares them with the full computation), computed from
one rolling median (the deviations the scale is taken over need the baseline of each earlier
row) and plain medians and means of the trailing rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

# 1.4826 * MAD estimates the standard deviation of normal data.
MAD_TO_SIGMA = 1.4826


def compress(z: FloatArray) -> FloatArray:
    # log-compress so a flat series' huge z-scores do not dominate the forest's splits.
    compressed: FloatArray = np.sign(z) * np.log1p(np.abs(z))
    return compressed


def _scale_at_end(deviation: FloatArray, rows: int, floor: float) -> float:
    """`anomaly._robust_scale` at the last row: over the `rows` deviations before it."""
    before = deviation[:-1][-rows:]
    before = before[~np.isnan(before)]
    if len(before) < 2:
        return float("nan")
    mad = float(np.median(before)) * MAD_TO_SIGMA
    spread = float(np.mean(before))
    return float(np.maximum(np.maximum(mad, 0.5 * spread), floor))


def seasonal_difference(values: Sequence[float] | FloatArray, period: int) -> FloatArray:
    """x[t] - x[t - period] (NaN for the first `period` rows); the values as they are for 0."""
    x = np.asarray(values, dtype=float)
    if period <= 0:
        return x
    changes = np.full(len(x), np.nan)
    changes[period:] = x[period:] - x[:-period]
    return changes


def _one_metric(
    values: Sequence[float] | FloatArray, baseline_rows: int, short_rows: int, period: int
) -> tuple[list[float], float, float]:
    """The newest row's [level_z, step_z, mean_z, vol] (uncompressed), baseline and level z."""
    # Only the rows the newest row's features can reach: its baseline's window, and the
    # baselines of the rows in the window its scale is taken over.
    reach = 2 * baseline_rows + 2
    x = seasonal_difference(np.asarray(values, dtype=float)[-(reach + max(period, 0)) :], period)
    x = x[-reach:]
    previous = np.concatenate([[np.nan], x[:-1]])
    medians = pd.Series(previous).rolling(baseline_rows, min_periods=2).median().to_numpy()
    baseline = float(medians[-1])
    level_floor = 1e-6 * (abs(x[-2]) if len(x) > 1 else 0.0) + 1e-9
    scale = _scale_at_end(np.abs(previous - medians), baseline_rows, level_floor)
    steps = np.concatenate([[np.nan], np.diff(x)])
    step_scale = _scale_at_end(np.abs(steps), baseline_rows, 1e-9)
    short = x[-short_rows:]
    short_mean = float(np.mean(short))
    short_std = float(np.std(short, ddof=1)) if len(short) > 1 else 0.0
    level_z = (x[-1] - baseline) / scale
    with np.errstate(divide="ignore", invalid="ignore"):
        vol = float(np.log((short_std + scale * 0.1) / (scale * 1.1)))
    features = [level_z, steps[-1] / step_scale, (short_mean - baseline) / scale, vol]
    return features, baseline, level_z


def latest_features(
    window: Mapping[str, Sequence[float] | FloatArray],
    baseline_rows: int,
    short_rows: int,
    periods: Mapping[str, int] | None = None,
) -> tuple[FloatArray, list[tuple[str, float, float, float]]]:
    """The newest row of `anomaly.feature_matrix(window, periods)` (1 x features) and, per
    metric, its value, baseline and level z (what `anomaly.level_zscores` gives for the last
    row)."""
    row: list[float] = []
    levels = []
    for name in sorted(window):
        values = np.asarray(window[name], dtype=float)
        period = (periods or {}).get(name, 0)
        features, baseline, z = _one_metric(values, baseline_rows, short_rows, period)
        row += features
        value = float(values[-1])
        # A seasonal metric's baseline is a change since one period earlier: what the value
        # would be with the usual change is the value one period earlier plus it.
        expected = baseline + (values[-1 - period] if 0 < period < len(values) else 0.0)
        levels.append(
            (
                name,
                value,
                value if np.isnan(expected) else float(expected),
                0.0 if np.isnan(z) else float(z),
            )
        )
    raw = np.asarray([row], dtype=float)
    return compress(np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)), levels
