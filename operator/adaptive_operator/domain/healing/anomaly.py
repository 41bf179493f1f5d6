"""Multivariate anomaly detection over a service's health metrics.

An IsolationForest (scikit-learn) over causal features of each metric: the robust z-score of
the value against a trailing baseline (median and MAD of the rows *before* it), the robust
z-score of the step from the previous row, a short-term mean shift and a short-term volatility
ratio, and a long mean shift (`long_rows`: a shift held for dozens of rows that no single row
shows); for a metric whose training rows show a period, of its change since one period earlier
instead of its value (seasonal differencing). The forest is trained on recent history and
refit on a schedule; a row's score uses rows up to it only. A point is flagged when its score
stands out from the scores the forest gave its own training rows *and* comes close to (within
`record_margin` of) or beats the highest score (or the `record_quantile`) of the normal rows
among the `record_rows` rows before the persistence window (an incident already flagged does
not count: `anomaly_flags`), for `persistence_k` of the last `persistence_n` rows, *and*
beats the scores of the same phase of the series' previous cycles when the training rows
have a season (`seasonality`: a daily job is not an incident, however high it scores); a
flag is followed by a cool-down so that one incident is one detection.
Judging a score against the score's own recent distribution makes the operating point work
whatever the forest's absolute scale on a given series.

Pure: no clock, no I/O; randomness only through the `random_state` parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import IsolationForest

from adaptive_operator.domain.forecasting.seasonality import (
    season_of,
    seasonal_levels,
    strongest_peak,
)
from adaptive_operator.domain.healing.anomaly_flags import flag_incidents
from adaptive_operator.domain.healing.anomaly_latest import (
    MAD_TO_SIGMA,
    seasonal_difference,
)
from adaptive_operator.domain.healing.anomaly_latest import compress as _compress
from adaptive_operator.domain.healing.detector_settings import (
    DetectorSettings as DetectorSettings,  # re-exported: the detector's callers import both
)
from adaptive_operator.domain.healing.forest_scoring import FastForest

FloatArray = npt.NDArray[np.float64]
Series = Mapping[str, Sequence[float] | npt.NDArray[np.float64]]
BoolArray = npt.NDArray[np.bool_]

FEATURES_PER_METRIC = 5


@dataclass(frozen=True)
class Contribution:
    """How far one metric is from its own baseline at the scored row."""

    metric: str
    value: float
    baseline: float
    z: float

    @property
    def direction(self) -> str:
        return "up" if self.z > 0 else "down" if self.z < 0 else "flat"


@dataclass(frozen=True)
class AnomalyVerdict:
    score: float
    is_anomaly: bool
    contributions: tuple[Contribution, ...] = ()

    def explain(self, limit: int = 3) -> str:
        """One line for an Event: the metrics that deviate most, with their numbers."""
        top = [c for c in self.contributions if abs(c.z) >= 1.0][:limit]
        if not top:
            return f"score {self.score:.2f}; no metric deviates from its baseline"
        parts = [
            f"{c.metric} {c.direction} {c.value:.4g} vs baseline {c.baseline:.4g} (z={c.z:+.1f})"
            for c in top
        ]
        return f"score {self.score:.2f}: " + "; ".join(parts)


@dataclass(frozen=True)
class BatchResult:
    scores: FloatArray
    flags: BoolArray


def metric_features(
    values: Sequence[float] | FloatArray, settings: DetectorSettings, period: int = 0
) -> FloatArray:
    """Causal features of one metric, one row per input row (shape n x FEATURES_PER_METRIC).

    With a `period` (0: none), of the change since one period earlier (seasonal differencing):
    a daily pattern repeating itself is then flat, a day unlike the previous one is not."""
    x = pd.Series(seasonal_difference(values, period))
    baseline, scale = _baseline(x, settings.baseline_rows)
    step = x.diff()
    step_scale = _robust_scale(step.abs(), settings.baseline_rows)
    short = x.rolling(settings.short_rows, min_periods=1)
    level_z = (x - baseline) / scale
    step_z = step / step_scale
    mean_z = (short.mean() - baseline) / scale
    vol = np.log((short.std().fillna(0.0) + scale * 0.1) / (scale * 1.1))
    long_z = (x.rolling(settings.long_rows, min_periods=1).mean() - baseline) / scale
    stacked = np.column_stack([level_z, step_z, mean_z, vol, long_z]).astype(float)
    return _compress(np.nan_to_num(stacked, nan=0.0, posinf=0.0, neginf=0.0))


def find_periods(history: Series, rows: slice, settings: DetectorSettings) -> dict[str, int]:
    """Each metric's period in the rows `rows`: its season (as the repeat rule finds it) when
    the autocorrelation there reaches `difference_min_acf`, else 0 (`seasonal_differencing`)."""
    if not settings.seasonal_differencing:
        return {}
    shortest, longest = settings.season_bounds
    found = {}
    for name in sorted(history):
        values = np.asarray(history[name], dtype=float)[rows]
        lag, acf = strongest_peak(values, shortest, longest, settings.season_min_z)
        found[name] = lag if acf >= settings.difference_min_acf else 0
    return found


def level_zscores(
    values: Sequence[float] | FloatArray, baseline_rows: int, period: int = 0
) -> tuple[FloatArray, FloatArray]:
    """Per row: the trailing baseline (median of earlier rows) and the robust z against it.

    With a `period`, of the change since one period earlier: the baseline is then the value
    one period earlier plus the usual change."""
    raw = pd.Series(np.asarray(values, dtype=float))
    x = pd.Series(seasonal_difference(raw.to_numpy(dtype=float), period))
    baseline, scale = _baseline(x, baseline_rows)
    z = ((x - baseline) / scale).fillna(0.0).to_numpy(dtype=float)
    expected = baseline + (raw.shift(period) if period > 0 else 0.0)
    return expected.fillna(raw).to_numpy(dtype=float), z


def _baseline(x: pd.Series, rows: int) -> tuple[pd.Series, pd.Series]:
    previous = x.shift(1).rolling(rows, min_periods=2)
    median = previous.median()
    deviation = (x.shift(1) - median).abs()
    return median, _robust_scale(deviation, rows, x)


def _robust_scale(deviation: pd.Series, rows: int, level: pd.Series | None = None) -> pd.Series:
    """MAD-based scale of the rows before t, floored so a flat line does not divide by zero."""
    mad = deviation.shift(1).rolling(rows, min_periods=2).median() * MAD_TO_SIGMA
    spread = deviation.shift(1).rolling(rows, min_periods=2).mean()
    floor = 1e-9 if level is None else 1e-6 * level.abs().shift(1).fillna(0.0) + 1e-9
    return pd.Series(np.maximum(np.maximum(mad, 0.5 * spread), floor))


def feature_matrix(
    history: Series, settings: DetectorSettings, periods: Mapping[str, int] | None = None
) -> FloatArray:
    names = sorted(history)
    lengths = {len(history[name]) for name in names}
    if len(lengths) != 1:
        raise ValueError(f"all metrics need the same number of rows, got {sorted(lengths)}")
    found = periods or {}
    return np.hstack(
        [metric_features(history[name], settings, found.get(name, 0)) for name in names]
    )


def fit_forest(train: FloatArray, settings: DetectorSettings, random_state: int
               ) -> IsolationForest:
    """One of a model's forests as scikit-learn fits it."""
    rows = len(train) if settings.max_samples is None else min(settings.max_samples, len(train))
    return IsolationForest(
        n_estimators=settings.n_estimators,
        max_samples=rows,
        random_state=random_state,
    ).fit(train)


@dataclass
class Model:
    # The fitted forests as numpy tables; the score is the mean of theirs. scikit-learn's
    # own objects are dropped once copied: ~150 objects per forest of 30 trees that every
    # full garbage collection would walk, for each service, to score nothing.
    fast: tuple[FastForest, ...]
    threshold: float
    envelope: FloatArray  # per level or step column: the largest |value| in training
    season: int = 0  # rows per cycle of the training rows, 0 if they have none
    periods: dict[str, int] = field(default_factory=dict)  # differencing per metric, 0: none
    train_scores: FloatArray = field(default_factory=lambda: np.zeros(0))


def _level_and_step(features: FloatArray) -> FloatArray:
    return np.concatenate([features[:, i::FEATURES_PER_METRIC] for i in (0, 1)], axis=1)


def beyond_training(model: Model, rows: FloatArray, settings: DetectorSettings) -> BoolArray:
    """Rows outside what the forest was trained on (only with `settings.beyond_training`)."""
    if not settings.beyond_training:
        return np.zeros(len(rows), dtype=bool)
    outside: BoolArray = np.any(np.abs(_level_and_step(rows)) > model.envelope, axis=1)
    result: BoolArray = outside & deviates(rows, settings)
    return result


def fit_model(train: FloatArray, settings: DetectorSettings, random_state: int,
               season: int = 0, periods: Mapping[str, int] | None = None) -> Model:
    fast = tuple(FastForest.of(fit_forest(train, settings, random_state * settings.forests + i))
                 for i in range(settings.forests))
    train_scores = np.mean([forest.scores(train) for forest in fast], axis=0)
    envelope = np.abs(_level_and_step(train)).max(axis=0)
    return Model(fast, threshold_of(train_scores, settings), envelope,
                 season, dict(periods or {}), train_scores)


def threshold_of(train_scores: FloatArray, settings: DetectorSettings) -> float:
    """The score a row must reach: the training scores' `train_quantile` (or their mean plus
    `train_sigmas` standard deviations), moved by the sensitivity (0.5 leaves it there),
    at most 1."""
    if settings.train_sigmas > 0:
        upper = float(np.mean(train_scores) + settings.train_sigmas * np.std(train_scores))
    else:
        upper = float(np.quantile(train_scores, settings.train_quantile))
    return min(upper + settings.margin * (1.0 - 2.0 * settings.sensitivity), 1.0)


def training_season(history: Series, rows: slice, settings: DetectorSettings) -> int:
    """The season of the training rows `rows` of `history` (0: none, or seasons are off)."""
    if not settings.season_repeats:
        return 0
    shortest, longest = settings.season_bounds
    window = {name: np.asarray(values, dtype=float)[rows] for name, values in history.items()}
    return season_of(window, shortest, longest, settings.season_min_z)


def repeats_season(scores: FloatArray, seasons: npt.NDArray[np.intp] | int,
                   settings: DetectorSettings) -> BoolArray:
    """Rows whose score does not beat the same phase of the previous cycles: a regular event."""
    levels = seasonal_levels(scores, seasons, settings.season_slack_rows, settings.season_repeats)
    result: BoolArray = scores <= levels
    return result


def raw_scores(model: Model, rows: FloatArray) -> FloatArray:
    # sklearn's score_samples is minus the paper's anomaly score s in (0, 1]; the numpy tables
    # give the same numbers without its ~10 ms of overhead per call. The mean over the forests.
    raw = np.mean([forest.scores(rows) for forest in model.fast], axis=0)
    scores: FloatArray = np.clip(raw, 0.0, 1.0).astype(float)
    return scores


def detect_series(
    values: Sequence[float] | FloatArray, settings: DetectorSettings, random_state: int,
    progress: Callable[[int], None] | None = None,
) -> BatchResult:
    """Score a whole univariate series causally (the `detect` command and the benchmark)."""
    return detect_batch({"value": values}, settings, random_state, progress)


def detect_batch(
    history: Series, settings: DetectorSettings, random_state: int,
    progress: Callable[[int], None] | None = None,
) -> BatchResult:
    """Score every row causally and flag it at the operating point of `settings` (`progress`:
    as `score_batch`'s)."""
    return judge(score_batch(history, settings, random_state, progress), settings)


@dataclass(frozen=True)
class ScoredBatch:
    """What the forests say of every row, before any operating point is applied; the
    operating point's knobs (`OPERATING_POINT_KNOBS`) can then be varied without a refit."""

    scores: FloatArray
    deviation: FloatArray  # per row, the largest |compressed level or step z| of any metric
    outside: BoolArray  # per row, level or step beyond every training row's
    seasons: npt.NDArray[np.intp]
    blocks: tuple[tuple[int, FloatArray], ...]  # (first row, training scores) per fit


# The settings `judge` reads: changing only these leaves a `ScoredBatch` valid.
OPERATING_POINT_KNOBS = (
    "sensitivity", "train_quantile", "train_sigmas", "margin", "persistence_k", "persistence_n",
    "cooldown_rows", "record_margin", "record_quantile", "min_deviation_z", "beyond_training",
    "smooth_rows", "rearm_rows",
)


def score_batch(history: Series, settings: DetectorSettings, random_state: int,
                progress: Callable[[int], None] | None = None) -> ScoredBatch:
    """Refit every `refit_every` rows on the rows before the block, then score the block in
    one vectorised call (the model never saw the rows it scores); `progress` is told how many
    rows are scored after each block."""
    features = feature_matrix(history, settings)
    n = len(features)
    by_periods: dict[tuple[tuple[str, int], ...], FloatArray] = {(): features}
    scores, deviation = np.zeros(n), np.zeros(n)
    outside = np.zeros(n, dtype=bool)
    seasons = np.zeros(n, dtype=np.intp)
    blocks = []
    first = settings.min_train_rows + settings.warm_up_rows
    for start in range(first, n, settings.refit_every):
        rows = slice(max(settings.warm_up_rows, start - settings.train_rows), start)
        periods = find_periods(history, rows, settings)
        features = _differenced(history, settings, periods, by_periods)
        model = fit_model(features[rows], settings, random_state)
        block = slice(start, start + settings.refit_every)
        scores[block] = raw_scores(model, features[block])
        deviation[block] = np.abs(_level_and_step(features[block])).max(axis=1)
        outside[block] = np.any(np.abs(_level_and_step(features[block])) > model.envelope, axis=1)
        seasons[block] = training_season(history, rows, settings)
        blocks.append((start, model.train_scores))
        if progress is not None:
            progress(min(start + settings.refit_every, n))
    return ScoredBatch(scores, deviation, outside, seasons, tuple(blocks))


def judge(scored: ScoredBatch, settings: DetectorSettings) -> BatchResult:
    """The flags of a scored batch at the operating point of `settings` (see `flag_incidents`),
    and the scores they were judged by (`smoothed` over `smooth_rows`)."""
    scores = smoothed(scored.scores, settings.smooth_rows)
    above = np.zeros(len(scores), dtype=bool)
    for start, train_scores in scored.blocks:
        block = slice(start, start + settings.refit_every)
        above[block] = scores[block] >= threshold_of(train_scores, settings)
    moved = scored.deviation >= np.log1p(settings.min_deviation_z)
    beyond = scored.outside & moved if settings.beyond_training else np.zeros_like(moved)
    regular = repeats_season(scores, scored.seasons, settings)
    flags = flag_incidents(scores, above & moved & ~regular, beyond & ~regular, settings,
                           settings.cooldown_rows + 1, ~moved)
    return BatchResult(scores, flags)


def smoothed(scores: FloatArray, rows: int) -> FloatArray:
    """Each row's mean of its score and the `rows - 1` scores before it (fewer at the start):
    causal, a row's value uses rows up to it only."""
    if rows <= 1:
        return scores
    total = np.array(scores, dtype=float)
    for back in range(1, min(rows, len(total))):
        total[back:] += scores[:-back]  # the row's own first, then older ones (as `quiet` adds)
    result: FloatArray = total / np.minimum(np.arange(1, len(total) + 1), rows)
    return result


def _differenced(
    history: Series,
    settings: DetectorSettings,
    periods: Mapping[str, int],
    cache: dict[tuple[tuple[str, int], ...], FloatArray],
) -> FloatArray:
    """The feature matrix with `periods`' seasonal differencing, computed once per periods."""
    key = tuple(sorted(p for p in periods.items() if p[1]))
    if key not in cache:
        cache[key] = feature_matrix(history, settings, periods)
    return cache[key]


def deviates(features: FloatArray, settings: DetectorSettings) -> BoolArray:
    """Rows where some metric's level or step is at least `min_deviation_z` robust sigmas off.

    A point where no metric moves is not an anomaly worth acting on, whatever the forest says
    (a flat line scores the same everywhere).
    """
    level_and_step = _level_and_step(features)
    result: BoolArray = np.abs(level_and_step).max(axis=1) >= np.log1p(settings.min_deviation_z)
    return result
