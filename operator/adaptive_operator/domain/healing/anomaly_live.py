"""The operator's live detector: fit on a service's recent history, then, every sync, the
verdict of the newest row of its window.

The verdict is `anomaly`'s (the forest's score, the gate, the record, persistence and
cool-down over the scores of the window's tail); what makes it cheap enough to run every sync
for a thousand services is that a window is usually the previous one plus a row: the newest
row's features then come from what the previous call left (`anomaly_latest.LatestFeatures`),
the earlier rows' scores are remembered, and when none of the last `persistence_n` rows could
exceed (their scores under the threshold or no metric moving, and none beyond training), the
newest row cannot be flagged, so the record, the season and the flags are not looked at.
Any other window is scored whole (`AnomalyDetector.score`).

Pure: no clock, no I/O; randomness only through the `random_state` parameter.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from adaptive_operator.domain.healing.anomaly import (
    AnomalyVerdict,
    Contribution,
    DetectorSettings,
    FloatArray,
    Model,
    Series,
    beyond_training,
    deviates,
    feature_matrix,
    find_periods,
    fit_model,
    level_zscores,
    raw_scores,
    repeats_season,
    smoothed,
    training_season,
)
from adaptive_operator.domain.healing.anomaly_flags import flag_incidents
from adaptive_operator.domain.healing.anomaly_latest import LatestFeatures


@dataclass
class AnomalyDetector:
    """The operator's detector: fit on recent history, then score the latest row of a window."""

    settings: DetectorSettings = field(default_factory=DetectorSettings)
    random_state: int = 0
    _model: Model | None = field(default=None, init=False, repr=False)
    _metrics: tuple[str, ...] = field(default=(), init=False, repr=False)
    _rows: _ScoredRows | None = field(default=None, init=False, repr=False)
    _latest: LatestFeatures = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._latest = LatestFeatures(self.settings.baseline_rows, self.settings.short_rows,
                                      self.settings.long_rows)

    def fit(self, history: Series) -> AnomalyDetector:
        s = self.settings
        every = feature_matrix(history, s)
        features = every[s.warm_up_rows :][-s.train_rows :]
        if len(features) < s.min_train_rows:
            raise ValueError(
                f"need at least {s.rows_to_fit} rows to fit "
                f"({s.warm_up_rows} of them warm-up), got {len(every)}"
            )
        rows = slice(max(s.warm_up_rows, len(every) - s.train_rows), len(every))  # = features
        season = training_season(history, rows, s)
        periods = find_periods(history, rows, s)
        if any(periods.values()):
            features = feature_matrix(history, s, periods)[rows]
        self._model = fit_model(features, self.settings, self.random_state, season, periods)
        self._metrics = tuple(sorted(history))
        self._rows = None  # rows scored by the previous model are scored again
        return self

    @property
    def fitted(self) -> bool:
        return self._model is not None

    @property
    def threshold(self) -> float | None:
        """The score a row must reach in the fitted model (None before a fit)."""
        return None if self._model is None else self._model.threshold

    @property
    def season(self) -> int:
        """The season (rows) a row's score must beat the earlier cycles of, in the fitted
        model; 0 for none or before a fit."""
        return 0 if self._model is None else self._model.season

    @property
    def differenced(self) -> dict[str, int]:
        """The metrics judged by their change since one period earlier, and their periods
        (rows), in the fitted model; empty before a fit."""
        if self._model is None:
            return {}
        return {name: period for name, period in self._model.periods.items() if period}

    def score(self, window: Series) -> AnomalyVerdict:
        """Verdict for the last row of `window` (recent rows of every metric, oldest first).

        The window should span the baseline; persistence and cool-down look at its tail.
        """
        return self._score(_columns(window))

    def score_latest(self, window: Series) -> AnomalyVerdict:
        """`score(window)` for a window that is the previous call's plus one row (its oldest
        row dropped or not): only the new row is computed, the earlier rows' scores are
        remembered (all are scored again after a fit, or for any other window)
        (benchmarks/scale_hotspots.py); the operator calls it once per new row."""
        model = self._model
        if model is None:
            raise RuntimeError("fit the detector before scoring")
        values = _columns(window)
        rows = self._rows
        if rows is None or tuple(values) != self._metrics or not self._latest.continues(values):
            return self._score(values)
        features, levels = self._latest.advance(values, model.periods)
        contributions = by_deviation([Contribution(*level) for level in levels])
        s = self.settings
        rows.add(float(raw_scores(model, features)[0]), bool(deviates(features, s)[0]),
                 bool(beyond_training(model, features, s)[0]))
        if rows.quiet(s.persistence_n, model.threshold, s.smooth_rows):
            newest = rows.smoothed(len(rows.scores) - 1, s.smooth_rows)
            return AnomalyVerdict(newest, False, contributions)
        return self._verdict(model, rows, contributions)

    def _score(self, window: dict[str, list[float]]) -> AnomalyVerdict:
        if self._model is None:
            raise RuntimeError("fit the detector before scoring")
        if tuple(window) != self._metrics:
            raise ValueError(f"window metrics {list(window)} differ from {list(self._metrics)}")
        self._rows = self._score_window(self._model, window)
        self._latest.restart(window)
        return self._verdict(self._model, self._rows, self._contributions(window))

    def _score_window(self, model: Model, window: Series) -> _ScoredRows:
        features = feature_matrix(window, self.settings, model.periods)
        s = self.settings
        tail = s.persistence_n + s.cooldown_rows + s.record_rows
        scores = raw_scores(model, features[-tail:])
        # Like the batch's unscored first rows: the window's warm-up rows count for nothing.
        warm = max(0, s.warm_up_rows - (len(features) - len(scores)))
        scores[:warm] = 0.0
        moved = deviates(features[-tail:], s)
        beyond = beyond_training(model, features[-tail:], s)
        moved[:warm] = False
        beyond[:warm] = False
        return _ScoredRows.of(tail, scores, moved, beyond)

    def _verdict(self, model: Model, rows: _ScoredRows,
                 contributions: tuple[Contribution, ...]) -> AnomalyVerdict:
        scores = smoothed(np.asarray(rows.scores, dtype=float), self.settings.smooth_rows)
        regular = repeats_season(scores, model.season, self.settings)
        moved = np.asarray(rows.deviates, dtype=bool)
        gate = (scores >= model.threshold) & moved & ~regular
        beyond = np.asarray(rows.beyond, dtype=bool) & ~regular
        flags = flag_incidents(scores, gate, beyond, self.settings, rows.limit + 1, ~moved)
        return AnomalyVerdict(float(scores[-1]), bool(flags[-1]), contributions)

    def _contributions(self, window: Series) -> tuple[Contribution, ...]:
        found = []
        periods = self._model.periods if self._model else {}
        for metric in self._metrics:
            values = np.asarray(window[metric], dtype=float)
            baseline, z = level_zscores(values, self.settings.baseline_rows,
                                        periods.get(metric, 0))
            found.append(Contribution(metric, float(values[-1]), float(baseline[-1]), float(z[-1])))
        return by_deviation(found)


def _columns(window: Series) -> dict[str, list[float]]:
    """The window's metrics in name order, as lists of their own (the caller's may change)."""
    return {name: _listed(window[name]) for name in sorted(window)}


def _listed(values: Sequence[float] | FloatArray) -> list[float]:
    listed: list[float] = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return listed


def by_deviation(found: list[Contribution]) -> tuple[Contribution, ...]:
    return tuple(sorted(found, key=lambda c: -abs(c.z)))


@dataclass
class _ScoredRows:
    """Per row of the verdict's tail (its newest `limit` rows), what the verdicts of later
    rows need from it."""

    limit: int
    scores: deque[float]
    deviates: deque[bool]
    beyond: deque[bool]

    @classmethod
    def of(cls, limit: int, scores: Iterable[float], moved: Iterable[bool],
           beyond: Iterable[bool]) -> _ScoredRows:
        return cls(limit, deque(map(float, scores), limit), deque(map(bool, moved), limit),
                   deque(map(bool, beyond), limit))

    def add(self, score: float, moved: bool, beyond: bool) -> None:
        self.scores.append(score)
        self.deviates.append(moved)
        self.beyond.append(beyond)

    def quiet(self, rows: int, threshold: float, smooth_rows: int = 1) -> bool:
        """Whether none of the newest `rows` rows can exceed: a row exceeds only when it
        passes the gate (its score, `smoothed` over `smooth_rows`, at the threshold and a
        metric moving) or lies beyond training, so then the newest row cannot be flagged
        (`flag_incidents` needs an exceeding row among the last `persistence_n`)."""
        newest = range(len(self.scores) - 1, max(-1, len(self.scores) - 1 - rows), -1)
        return not any(self.beyond[i] or (self.deviates[i]
                                          and self.smoothed(i, smooth_rows) >= threshold)
                       for i in newest)

    def smoothed(self, row: int, rows: int) -> float:
        """`anomaly.smoothed` at `row` (the same additions in the same order)."""
        total = self.scores[row]
        for back in range(1, min(rows, row + 1)):
            total += self.scores[row - back]
        return total / min(row + 1, rows)
