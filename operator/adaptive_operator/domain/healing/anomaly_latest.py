"""The anomaly features of a window's newest row only, in numpy.

`anomaly.metric_features` computes every row of a window with pandas rolling windows (~30 ms
for the operator's 2,100-row window of two metrics); the live detector needs only the newest
row each sync: the same numbers (a test compares them with the full computation), computed from
one rolling median (the deviations the scale is taken over need the baseline of each earlier
row) and plain medians and means of the trailing rows. `LatestFeatures` goes further for a
window that is the previous one plus a row: it remembers the earlier rows' deviations, so the
newest row needs three plain medians and no rolling one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

# 1.4826 * MAD estimates the standard deviation of normal data.
MAD_TO_SIGMA = 1.4826
# Rows of the long mean shift (`DetectorSettings.long_rows`): a shift too small for one row or
# six to stand out, held for dozens of rows (issue 17: multi-scale features).
LONG_ROWS = 15


def compress(z: FloatArray) -> FloatArray:
    # log-compress so a flat series' huge z-scores do not dominate the forest's splits.
    compressed: FloatArray = np.sign(z) * np.log1p(np.abs(z))
    return compressed


def median(values: FloatArray) -> float:
    """np.median of values without NaN, for a fraction of its cost: the middle value, or the
    mean of the middle two (the same operations, so the same number to the last bit)."""
    half = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, half)[half])
    middle = np.partition(values, (half - 1, half))
    return float((middle[half - 1] + middle[half]) / 2)


def mean(values: FloatArray) -> float:
    """np.mean (the same pairwise sum and division) without its overhead."""
    return float(values.sum()) / len(values)


def _finite_mean(values: FloatArray) -> float:
    """The mean of the values that are not NaN (pandas' rolling mean skips them), NaN if none."""
    finite = values[~np.isnan(values)]
    return mean(finite) if len(finite) else float("nan")


def _finite_std(values: FloatArray) -> float:
    """np.std(values, ddof=1) of the values that are not NaN, without its overhead; 0 for
    fewer than two (pandas' rolling std skips NaN; the batch fills its NaN with 0)."""
    finite = values[~np.isnan(values)]
    if len(finite) < 2:
        return 0.0
    centred = finite - mean(finite)
    return math.sqrt(float((centred * centred).sum()) / (len(finite) - 1))


def _scale_at_end(deviation: FloatArray, rows: int, floor: float) -> float:
    """`anomaly._robust_scale` at the last row: over the `rows` deviations before it."""
    before = deviation[:-1][-rows:]
    before = before[~np.isnan(before)]
    if len(before) < 2:
        return float("nan")
    mad = median(before) * MAD_TO_SIGMA
    spread = mean(before)
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
    values: Sequence[float] | FloatArray, baseline_rows: int, windows: tuple[int, int],
    period: int
) -> tuple[list[float], float, float]:
    """The newest row's [level_z, step_z, mean_z, vol, long_z] (uncompressed), baseline and
    level z; `windows`: the short and the long rows."""
    x, baseline, deviations = _deviations(values, baseline_rows, period, max(windows))
    return _newest(x, baseline, deviations, baseline_rows, windows)


def _deviations(
    values: Sequence[float] | FloatArray, baseline_rows: int, period: int, window_rows: int
) -> tuple[FloatArray, float, FloatArray]:
    """The rows the newest row's features can reach (differenced with a `period`), the newest
    row's baseline, and each such row's deviation |x[i-1] - baseline[i]| from its own."""
    # Only the rows the newest row's features can reach: its baseline's window, the
    # baselines of the rows in the window its scale is taken over, and its mean windows.
    reach = max(2 * baseline_rows + 2, window_rows)
    x = seasonal_difference(np.asarray(values, dtype=float)[-(reach + max(period, 0)) :], period)
    x = x[-reach:]
    previous = np.concatenate([[np.nan], x[:-1]])
    medians = pd.Series(previous).rolling(baseline_rows, min_periods=2).median().to_numpy()
    return x, float(medians[-1]), np.abs(previous - medians)


def _newest(
    x: FloatArray, baseline: float, deviations: FloatArray, baseline_rows: int,
    windows: tuple[int, int]
) -> tuple[list[float], float, float]:
    """The newest row's features from its baseline and the deviations of the rows up to it
    (`x` and `deviations` may start anywhere before the newest row's reach)."""
    previous = float(x[-2]) if len(x) > 1 else 0.0
    # The batch fills a missing previous value with 0 here (`anomaly._robust_scale`).
    level_floor = 1e-6 * (0.0 if math.isnan(previous) else abs(previous)) + 1e-9
    scale = _scale_at_end(deviations, baseline_rows, level_floor)
    steps = np.concatenate([[np.nan], np.diff(x[-(baseline_rows + 2) :])])
    step_scale = _scale_at_end(np.abs(steps), baseline_rows, 1e-9)
    short_rows, long_rows = windows
    short = x[-short_rows:]
    short_mean = _finite_mean(short)
    short_std = _finite_std(short)
    level_z = (x[-1] - baseline) / scale
    with np.errstate(divide="ignore", invalid="ignore"):
        vol = float(np.log((short_std + scale * 0.1) / (scale * 1.1)))
    long_mean = _finite_mean(x[-long_rows:])
    features = [level_z, steps[-1] / step_scale, (short_mean - baseline) / scale, vol,
                (long_mean - baseline) / scale]
    return features, baseline, level_z


Level = tuple[str, float, float, float]  # metric, value, baseline, level z
_Found = tuple[str, Sequence[float] | FloatArray, int, list[float], float, float]


def latest_features(
    window: Mapping[str, Sequence[float] | FloatArray],
    baseline_rows: int,
    short_rows: int,
    periods: Mapping[str, int] | None = None,
    long_rows: int = LONG_ROWS,
) -> tuple[FloatArray, list[Level]]:
    """The newest row of `anomaly.feature_matrix(window, periods)` (1 x features) and, per
    metric, its value, baseline and level z (what `anomaly.level_zscores` gives for the last
    row)."""
    found: list[_Found] = []
    for name in sorted(window):
        values = np.asarray(window[name], dtype=float)
        period = (periods or {}).get(name, 0)
        found.append((name, values, period,
                      *_one_metric(values, baseline_rows, (short_rows, long_rows), period)))
    return _assembled(found)


def _assembled(found: list[_Found]) -> tuple[FloatArray, list[Level]]:
    row: list[float] = []
    levels = []
    for name, values, period, features, baseline, z in found:
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


Column = list[float]  # one metric's window, oldest first


def _one_more(previous: Column, values: Column) -> bool:
    """Whether `values` is `previous` plus one row, with its oldest row dropped or not."""
    if len(values) == len(previous) + 1:
        return values[:-1] == previous
    return len(values) == len(previous) > 0 and values[:-1] == previous[1:]


@dataclass
class _Trail:
    """One metric at the previous call: its window and its newest rows as the features see
    them (differenced, for a seasonal metric; enough for the newest row's features) and their
    deviations from their own baselines (the newest `baseline_rows + 1`); None: not
    computed."""

    window: Column
    recent: FloatArray | None = None
    deviations: FloatArray | None = None


@dataclass
class LatestFeatures:
    """`latest_features` of a window that is the previous call's plus one row, from what the
    previous call left: a row's deviation from its own baseline does not change as rows are
    added (while the rows of the baselines it needs are in the window), so the newest row
    needs one new baseline, not a rolling median over 2 x `baseline_rows` rows, and only the
    newest value is converted to numpy. The same numbers as `latest_features` (a test
    compares them), a seasonal metric's from its changes since one period earlier; missing
    values, or a sliding window shorter than 2 x `baseline_rows` + 1 rows (plus the period)
    are computed whole, as `latest_features` does.
    Windows are lists (compared with the previous one as lists: a history's slices share
    their float objects, so that is a comparison of pointers) that the caller does not
    change afterwards."""

    baseline_rows: int
    short_rows: int
    long_rows: int = LONG_ROWS
    _trails: dict[str, _Trail] = field(default_factory=dict)

    @property
    def _windows(self) -> tuple[int, int]:
        return self.short_rows, self.long_rows

    def restart(self, window: Mapping[str, Column]) -> None:
        """Remember `window`, nothing computed."""
        self._trails = {name: _Trail(values) for name, values in window.items()}

    def continues(self, window: Mapping[str, Column]) -> bool:
        """Whether every metric of `window` is the previous window plus one row."""
        if window.keys() != self._trails.keys():
            return False
        return all(_one_more(self._trails[name].window, window[name]) for name in window)

    def advance(
        self, window: Mapping[str, Column], periods: Mapping[str, int]
    ) -> tuple[FloatArray, list[Level]]:
        """`latest_features(window, ..., periods)` of a window that `continues`."""
        found: list[_Found] = []
        for name in sorted(window):
            values, period = window[name], periods.get(name, 0)
            baseline, trail = self._extended(self._trails[name], values, period)
            self._trails[name] = trail
            assert trail.recent is not None and trail.deviations is not None
            features = _newest(trail.recent, baseline, trail.deviations,
                               self.baseline_rows, self._windows)
            found.append((name, values, period, *features))
        return _assembled(found)

    def _extended(self, trail: _Trail, values: Column, period: int) -> tuple[float, _Trail]:
        """The newest row's baseline, and the trail with the newest row added (its change
        since one `period` earlier, for a seasonal metric: the rows the features are of)."""
        rows = self.baseline_rows
        keep = max(rows + 2, *self._windows)  # the newest row's features need no more
        slid = len(values) == len(trail.window)  # the oldest row dropped: baselines move
        # A sliding window shorter than the rows the whole computation differences and reads
        # drops rows it reads (and their earlier values): computed whole, as it is.
        if trail.recent is None or trail.deviations is None or (
                slid and len(values) <= max(2 * rows, keep) + period):
            return self._rebuilt(values, keep, period)
        recent = np.append(trail.recent, _newest_change(values, period))[-keep:]
        before = recent[:-1][-rows:]
        if not np.isfinite(before).all():
            return self._rebuilt(values, keep, period)
        # The median is pandas' rolling median for the same rows: the middle one, or the
        # mean of the middle two (a test checks the two paths give identical numbers).
        baseline = median(before) if len(before) >= 2 else float("nan")
        deviation = abs(float(before[-1]) - baseline) if len(before) else float("nan")
        deviations = np.append(trail.deviations, deviation)[-(rows + 1) :]
        return baseline, _Trail(values, recent, deviations)

    def _rebuilt(self, values: Column, keep: int, period: int) -> tuple[float, _Trail]:
        x, baseline, deviations = _deviations(values, self.baseline_rows, period,
                                              max(self._windows))
        return baseline, _Trail(values, x[-keep:].copy(), deviations[-(self.baseline_rows + 1) :])


def _newest_change(values: Column, period: int) -> float:
    """The newest row as the features see it: its value, or with a `period` its change since
    one period earlier (NaN without a row that far back, as `seasonal_difference` has)."""
    if period <= 0:
        return float(values[-1])
    return float(values[-1]) - float(values[-1 - period]) if len(values) > period else math.nan
