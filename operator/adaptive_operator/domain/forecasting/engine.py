"""The amortised forecasting loop for one service: observe a row, refit on a schedule, forecast.

A refit (detect seasonality, clean, fit the model on coarse points, interpolate its path) runs
every `refit_rows` rows; the model is re-chosen by backtest every `rechoose_every` refits, and
at the next refit when its realised error reaches the guard's limit (it then sits that choice
out). Between refits a row costs O(horizon): the tracker scores, moves the level and forecasts.
Refits happen only at a row where a forecast is asked for, so a row-by-row run is exactly
reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from adaptive_operator.domain.forecasting.backtest import (
    CANDIDATES,
    Plan,
    Score,
    rank,
    reference_for,
)
from adaptive_operator.domain.forecasting.baseline import Resolution, baseline_path
from adaptive_operator.domain.forecasting.cleaning import (
    MAD_TO_SIGMA,
    aggregate,
    clip_outliers,
    fill_gaps,
    mark_outages,
)
from adaptive_operator.domain.forecasting.models import ModelKind
from adaptive_operator.domain.forecasting.seasonality import detect_periods
from adaptive_operator.domain.forecasting.tracker import ErrorWindow, Tracker

FloatArray = NDArray[np.float64]

DETECTION_POINTS = 2048
# A re-detected period within this fraction of the current one is the same season: keeping the
# current resolution avoids re-choosing the model because the ACF peak moved by a row.
PERIOD_JITTER = 0.05


@dataclass(frozen=True)
class EngineSettings:
    model: ModelKind = ModelKind.AUTO
    quantile: float = 0.9
    window_rows: int = 20160
    refit_rows: int = 720
    # Detection is first tried at `min_rows`; a model is trusted only with `min_cycles` cycles of
    # the detected primary period, so the warm-up follows the service's own seasonality.
    min_rows: int = 64
    min_cycles: int = 3
    rechoose_every: int = 4
    points_per_period: int = 48
    backtest_origins: int = 2
    error_rows: int = 1440
    max_relative_error: float = 1.1  # the guard's limit (`PredictiveSettings`)


@dataclass(frozen=True)
class Band:
    """A forecast for rows +1..+horizon: point, median and the chosen high quantile."""

    point: FloatArray
    p50: FloatArray
    high: FloatArray


class History:
    """The last `capacity` rows in one numpy array, appended in amortised O(1)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data = np.empty(min(capacity, 1024) * 2)
        self.start = 0
        self.stop = 0
        self.total = 0

    def append(self, value: float) -> None:
        if self.stop == len(self.data):
            self._make_room()
        self.data[self.stop] = value
        self.stop += 1
        self.total += 1
        if self.stop - self.start > self.capacity:
            self.start += 1

    def _make_room(self) -> None:
        kept = self.data[self.start : self.stop].copy()
        size = max(len(self.data), 2 * min(self.capacity, max(len(kept), 1)))
        self.data = np.empty(size)
        self.data[: len(kept)] = kept
        self.start, self.stop = 0, len(kept)

    def values(self) -> FloatArray:
        return self.data[self.start : self.stop]

    def at(self, row: int) -> float:
        """The value of absolute row `row`, NaN when it is out of the window."""
        offset = row - (self.total - (self.stop - self.start))
        if offset < 0 or row >= self.total:
            return math.nan
        return float(self.data[self.start + offset])


def detect(y: FloatArray) -> tuple[int, ...]:
    """Seasonal periods in fine rows, detected on a series cleaned at a coarse resolution."""
    factor = max(1, math.ceil(len(y) / DETECTION_POINTS))
    coarse = aggregate(mark_outages(y, 3 * factor), factor)
    if np.isfinite(coarse).sum() < len(coarse) // 2:
        return ()
    filled = clip_outliers(fill_gaps(coarse, 1))
    return tuple(p * factor for p in detect_periods(filled))


def level_clip(y: FloatArray) -> float:
    """How far one row may pull the level: several robust standard deviations of a step."""
    finite = y[np.isfinite(y)]
    if len(finite) < 3:
        return math.inf
    step = float(np.median(np.abs(np.diff(finite)))) * MAD_TO_SIGMA
    return max(5.0 * step, 0.05 * float(np.median(np.abs(finite))), 1e-9)


@dataclass
class ForecastEngine:
    settings: EngineSettings
    horizon: int
    history: History = field(init=False)
    kind: ModelKind | None = None
    resolution: Resolution | None = None
    scores: tuple[Score, ...] = ()
    tracker: Tracker | None = None
    base: FloatArray = field(default_factory=lambda: np.empty(0))
    base_start: int = 0
    fitted_at: int | None = None
    due_at: int | None = None
    reference: str = "seasonal naive"  # the baseline the guard holds the model to (backtest.py)
    reference_lag: int = 0
    refits: int = 0
    status: str = "too little history"

    def __post_init__(self) -> None:
        self.history = History(self.settings.window_rows)

    @property
    def rows(self) -> int:
        return self.history.total

    def observe(self, value: float) -> None:
        row = self.rows
        self.history.append(value)
        if self.tracker is not None and self._covers(row, row):
            reference = self._reference_forecast(row)
            self.tracker.observe(row, value, float(self.base[row - self.base_start]), reference)

    def forecast(self) -> Band | None:
        """Refit if due, then the band for the next `horizon` rows (None without a model)."""
        if self._refit_due():
            self._refit()
        row = self.rows - 1
        if self.tracker is None or not self._covers(row + 1, row + self.horizon):
            return None
        ahead = self.base[row + 1 - self.base_start : row + 1 + self.horizon - self.base_start]
        point = np.maximum(self.tracker.predict(row, ahead), 0.0)
        mid, high = self.tracker.window.quantiles(self.settings.quantile)
        return Band(point, np.maximum(point + mid, 0.0), np.maximum(point + high, 0.0))

    def _covers(self, first: int, last: int) -> bool:
        return self.base_start <= first and last < self.base_start + len(self.base)

    def _reference_forecast(self, row: int) -> float:
        if self.reference_lag <= 0:
            return math.nan
        return self.history.at(row - self.reference_lag)

    def _refit_due(self) -> bool:
        return self.refit_due_after(0)

    def refit_due_after(self, new_rows: int) -> bool:
        """Whether a refit is due once `new_rows` more rows are observed."""
        due = self.settings.min_rows if self.due_at is None else self.due_at
        return self.rows + new_rows >= due

    def _schedule(self, periods: tuple[int, ...]) -> None:
        """When to refit next: every `refit_rows`, and at least twice per primary cycle; with no
        season yet, once the history has grown by a quarter (cheap on a long flat history), or
        as soon as the history holds `min_cycles` of a season that is detected but still short."""
        rows, settings = self.rows, self.settings
        if not periods:
            step = min(settings.refit_rows, rows // 4)
        elif rows < settings.min_cycles * periods[0]:
            step = settings.min_cycles * periods[0] - rows
        else:
            step = self._refit_step(periods[0])
        self.due_at = rows + max(1, step)

    def _refit_step(self, period: int) -> int:
        return max(1, min(self.settings.refit_rows, period // 2))

    def _refit(self) -> None:
        y = self.history.values()
        self.fitted_at = self.rows
        periods = detect(y)
        self._schedule(periods)
        if not periods:
            self._drop_model("no seasonality detected in the history")
            return
        cycles = len(y) / periods[0]
        if cycles < self.settings.min_cycles:
            self._drop_model(
                f"too little history: {cycles:.1f} of {self.settings.min_cycles} cycles of the "
                f"{periods[0]}-row season"
            )
            return
        resolution = self._stable(Resolution.for_periods(periods, self.settings.points_per_period))
        losing = self._losing()
        rechoose = self.kind is None or self.refits % self.settings.rechoose_every == 0
        self.refits += 1
        if rechoose or losing is not None or resolution != self.resolution:
            self._choose(y, resolution, losing)
        if self.kind is None:
            return
        self._fit(y, resolution)

    def _stable(self, resolution: Resolution) -> Resolution:
        current = self.resolution
        if current is None or len(current.fine_periods) != len(resolution.fine_periods):
            return resolution
        pairs = zip(current.fine_periods, resolution.fine_periods, strict=True)
        if all(abs(a - b) <= PERIOD_JITTER * a for a, b in pairs):
            return current
        return resolution

    def _drop_model(self, reason: str) -> None:
        self.kind, self.tracker, self.scores, self.resolution = None, None, (), None
        self.status = reason

    def _losing(self) -> ModelKind | None:
        """The automatically chosen model, when its realised error has reached the guard's
        limit against its reference: the backtest preferred it on a few dozen rows, the
        realised rows since say otherwise, so it sits out the next choice (the others, seasonal
        naive among them, get their chance) instead of keeping the service reactive until the
        next scheduled re-choice."""
        tracker = self.tracker
        if self.settings.model is not ModelKind.AUTO or tracker is None:
            return None
        relative, _ = tracker.window.relative_error()
        return self.kind if relative >= self.settings.max_relative_error else None

    def _choose(
        self, y: FloatArray, resolution: Resolution, losing: ModelKind | None = None
    ) -> None:
        named = self.settings.model
        offered: tuple[ModelKind, ...] = CANDIDATES if named is ModelKind.AUTO else (named,)
        kinds = tuple(k for k in offered if k is not losing) or offered
        span = self._refit_step(resolution.fine_periods[0])
        plan = Plan(resolution, self.horizon, span,
                    self.settings.backtest_origins, level_clip(y))
        scores = rank(y, kinds, plan)
        if not scores:
            self._drop_model("too little history for a backtest")
            return
        self.scores = tuple(scores)
        self.tracker = self._new_tracker(scores[0], level_clip(y), resolution.fine_periods[0])
        self.kind = scores[0].kind

    def _new_tracker(self, score: Score, clip: float, period: int) -> Tracker:
        """The chosen model's tracker. When the re-choice kept the model and its reference, the
        realised errors so far are still that model's and stay in the window; otherwise the
        window starts from the backtest's (a window re-seeded from the short backtest at every
        re-choice made the guard's ratio noisy on a young service)."""
        reference = reference_for(score.kind, period, self.horizon)
        kept = (score.kind, reference.name, reference.lag) == (
            self.kind, self.reference, self.reference_lag)
        if self.tracker is not None and kept:
            window = self.tracker.window
        else:
            window = ErrorWindow(self.settings.error_rows, self.horizon)
            window.seed(score.errors, score.reference)
        self.reference, self.reference_lag = reference.name, reference.lag
        return Tracker(self.horizon, score.alpha, clip, window)

    def _fit(self, y: FloatArray, resolution: Resolution) -> None:
        assert self.kind is not None and self.tracker is not None
        assert self.due_at is not None
        steps = self.due_at - self.rows + self.horizon + 1  # the rows until the next refit
        base = baseline_path(y, self.kind, resolution, steps)
        if base is None:
            self._drop_model("no data in the history window")
            return
        self.resolution = resolution
        self.base, self.base_start = base, self.rows
        self.tracker.level = 0.0
        self.tracker.clip = level_clip(y)
        self.status = "ok"
