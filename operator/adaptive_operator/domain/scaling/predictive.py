"""The predictive advisor: a replica floor from the load forecast, guarded by its realised error.

The replay and the operator call `advise` once per row with the whole history so far (rows 0..i);
the advisor reads only the rows it has not seen, so a call costs O(look-ahead) between refits. It
returns the replicas needed for the chosen quantile of the load over the look-ahead, or None
(reactive only) when the forecast is not trusted; `state` says which and why, for status.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from adaptive_operator.domain.forecasting import Band, EngineSettings, ForecastEngine, ModelKind
from adaptive_operator.domain.forecasting.persistence import PersistenceBand
from adaptive_operator.domain.scaling.operating_point import Objective, OperatingPoint
from adaptive_operator.domain.scaling.replay import ReplayConfig

DAY = 86400.0
# `advise` extending the running engine by at most this many rows, with no fit due, is light.
LIGHT_ROWS = 2


@dataclass(frozen=True)
class PredictiveSettings:
    model: ModelKind = ModelKind.AUTO
    quantile: float = 0.8
    history_seconds: float = 14 * DAY
    refit_seconds: float = DAY / 2
    # The forecast is trusted only after this many cycles of the detected season (3 days of a
    # daily one, 3 minutes of a minutely one); detection is first tried at `min_history_points`.
    min_history_cycles: int = 3
    min_history_points: int = 64
    rechoose_every_refits: int = 4
    scale_down_on_forecast: bool = False
    # The guard: the forecast is used while its realised error at the decision horizon is below
    # this multiple of its reference's (seasonal naive; persistence for seasonal naive itself,
    # see `forecasting.backtest.reference_for`). The 10% above 1 is a tolerance for the noise of
    # the estimate, not a licence to be worse: on a young service the window holds a few dozen
    # rows, and on a clean season a fitted model and seasonal naive are equally good, so their
    # ratio wanders around 1 (on the e2e pattern, about one decision in eight at 1.0 or more);
    # a strict 1.0 switched a sound forecast on and off with that noise.
    max_relative_error: float = 1.1
    error_window_seconds: float = DAY
    # The objective (`operating_point`): unserved demand at most this percent of the demand at
    # least cost, the quantile and scale-down chosen on the service's own last rows; None: the
    # quantile and scale-down above, as set.
    max_unserved_percent: float | None = None
    objective_window_seconds: float = 3 * DAY
    objective_every_seconds: float = DAY
    # While no seasonal forecast is trusted, the floor of persistence with its own realised band
    # at the quantile (`forecasting.persistence`) instead of none (plain reactive scaling).
    persistence_fallback: bool = True


@dataclass(frozen=True)
class ForecastPoint:
    offset_seconds: float
    p50: float
    p_high: float


@dataclass(frozen=True)
class PredictiveState:
    """What status shows: the model, its backtest, whether it is trusted and why, the forecast."""

    model: ModelKind | None = None
    backtest_mase: float | None = None
    reliable: bool = False
    reason: str = "too little history"
    forecast: tuple[ForecastPoint, ...] = ()
    floor_replicas: int | None = None
    # With scale-down on forecast: replicas the whole look-ahead needs at the high quantile, a
    # ceiling the caller may scale down to. Always None when the setting is off.
    scale_down_to: int | None = None
    # The baseline the guard held the model to (`forecasting.backtest.reference_for`).
    reference: str = ""
    # While the floor is the persistence band's: the rise over the last value it provisions for
    # (a coupled downstream follows it, `scaling.coupling`); None otherwise.
    persistence_rise: float | None = None


def _rows(seconds: float, interval: float) -> int:
    return max(1, math.ceil(seconds / interval))


def _engine_settings(settings: PredictiveSettings, interval: float) -> EngineSettings:
    return EngineSettings(
        model=settings.model,
        quantile=settings.quantile,
        window_rows=_rows(settings.history_seconds, interval),
        refit_rows=_rows(settings.refit_seconds, interval),
        min_rows=settings.min_history_points,
        min_cycles=settings.min_history_cycles,
        rechoose_every=settings.rechoose_every_refits,
        error_rows=_rows(settings.error_window_seconds, interval),
        max_relative_error=settings.max_relative_error,
    )


class PredictiveAdvisor:
    """Implements `domain.scaling.advisor.ForecastAdvisor`; one instance per service (it keeps that
    service's history)."""

    def __init__(self, settings: PredictiveSettings | None = None) -> None:
        self.settings = settings or PredictiveSettings()
        self.state = PredictiveState()
        self.band: Band | None = None  # the last forecast, for reports
        self._engine: ForecastEngine | None = None
        self._key: tuple[float, int] | None = None
        self._last: float | None = None
        self._objective: Objective | None = None
        self._fallback: PersistenceBand | None = None

    def advise(
        self,
        history: Sequence[float | None],
        interval_seconds: float,
        lookahead_seconds: float,
        target_per_replica: float,
    ) -> int | None:
        engine = self._engine_for(history, interval_seconds, lookahead_seconds)
        fallback = self._fallback
        for value in history[engine.rows :]:
            row = math.nan if value is None else float(value)
            engine.observe(row)
            if fallback is not None:
                fallback.observe(row)
        self._last = _as_float(history[-1]) if history else None
        band = self.band = engine.forecast()
        self.state = self._judge(engine, band, interval_seconds, target_per_replica)
        self.state = self._with_fallback(self.state, target_per_replica)
        if self._objective is not None:
            config = ReplayConfig(target_per_replica, lookahead_seconds, interval_seconds)
            self.state = self._at_point(self._objective, engine, band, history, config)
        return self.state.floor_replicas

    @property
    def fallback(self) -> PersistenceBand | None:
        """Persistence with its realised band (None when the setting is off)."""
        return self._fallback

    def _with_fallback(self, state: PredictiveState, target: float) -> PredictiveState:
        """An untrusted state with the persistence band's floor (asked on every row, so that
        its quantile refreshes on the same rows whatever the forecast's trust)."""
        if self._fallback is None:
            return state
        floor = self._fallback.floor(self.settings.quantile, target)
        if state.reliable or floor is None:
            return state
        reason = f"{state.reason}; persistence band asks for {floor}"
        return replace(state, floor_replicas=floor, scale_down_to=None, reason=reason,
                       persistence_rise=self._rise(self.settings.quantile))

    def _rise(self, q: float) -> float | None:
        """The persistence band's q-quantile over the look-ahead, minus the last value."""
        band = self._fallback
        high = band.high(q) if band is not None else None
        return None if band is None or high is None else high - band.last

    def _at_point(self, objective: Objective, engine: ForecastEngine, band: Band | None,
                  history: Sequence[float | None], config: ReplayConfig) -> PredictiveState:
        """The state at the objective's operating point (the floor of its quantile, and the
        ceiling when its point scales down on the forecast)."""
        state = self.state
        floor = objective.observe(engine, band, state.reliable, history[-1], config,
                                  self._fallback)
        if not state.reliable:
            rise = None if floor is None else self._rise(objective.point.quantile)
            return replace(state, floor_replicas=floor, persistence_rise=rise)
        point = objective.point
        reason = f"{state.reason}; objective: quantile {point.quantile:g}, scale-down " + (
            "on" if point.scale_down else "off")
        down = floor if point.scale_down else None
        return replace(state, floor_replicas=floor, scale_down_to=down, reason=reason)

    @property
    def engine(self) -> ForecastEngine | None:
        """The running forecast engine (None before the first call)."""
        return self._engine

    def ceiling(self) -> int | None:
        """With scale-down on forecast, the replicas the last trusted forecast needs over the
        whole look-ahead; None otherwise."""
        return self.state.scale_down_to if self.state.reliable else None

    def _engine_for(
        self, history: Sequence[float | None], interval: float, lookahead: float
    ) -> ForecastEngine:
        """The running engine, or a fresh one when the history is not a continuation of what was
        seen (a new trace, a restart) or the interval or look-ahead changed."""
        key = (interval, _rows(lookahead, interval))
        engine = self._continued(history, key)
        if engine is None:
            engine = ForecastEngine(_engine_settings(self.settings, interval), key[1])
            self._engine, self._key = engine, key
            self._fallback = self._new_fallback(interval, key[1])
            self._objective = self._new_objective(interval)
        return engine

    def _new_fallback(self, interval: float, horizon: int) -> PersistenceBand | None:
        if not self.settings.persistence_fallback:
            return None
        return PersistenceBand(_rows(self.settings.error_window_seconds, interval), horizon,
                               self.settings.max_relative_error)

    def _new_objective(self, interval: float) -> Objective | None:
        settings = self.settings
        if settings.max_unserved_percent is None:
            return None
        start = OperatingPoint(settings.quantile, settings.scale_down_on_forecast)
        return Objective(settings.max_unserved_percent,
                         _rows(settings.objective_window_seconds, interval),
                         _rows(settings.objective_every_seconds, interval), start)

    def _continued(
        self, history: Sequence[float | None], key: tuple[float, int]
    ) -> ForecastEngine | None:
        """The running engine if `history` continues what it saw, with the same key."""
        engine = self._engine
        if engine is None or key != self._key or len(history) < engine.rows:
            return None
        seen = engine.rows
        if seen and not _same(_as_float(history[seen - 1]), self._last_seen(engine)):
            return None
        return engine

    def is_light(
        self, history: Sequence[float | None], interval_seconds: float, lookahead_seconds: float
    ) -> bool:
        """Whether `advise` on this history only extends the running engine by a few rows,
        with no model fit due: well under a millisecond, cheaper run in place than handed to
        a worker thread (where it would queue behind the API calls of a thousand services)."""
        return self.fit_needed(history, interval_seconds, lookahead_seconds) is None

    def fit_needed(
        self, history: Sequence[float | None], interval_seconds: float, lookahead_seconds: float
    ) -> str | None:
        """Why `advise` on this history is not light (None: it is): `new` (no engine yet, or
        another interval or look-ahead), `discontinued` (the history does not continue what
        the engine saw), `behind` (more than `LIGHT_ROWS` new rows) or `scheduled` (a refit
        falls due)."""
        key = (interval_seconds, _rows(lookahead_seconds, interval_seconds))
        if self._engine is None or key != self._key:
            return "new"
        engine = self._continued(history, key)
        if engine is None:
            return "discontinued"
        new_rows = len(history) - engine.rows
        if new_rows > LIGHT_ROWS:
            return "behind"
        return "scheduled" if engine.refit_due_after(new_rows) else None

    @staticmethod
    def _last_seen(engine: ForecastEngine) -> float:
        return engine.history.at(engine.rows - 1)

    def _judge(
        self, engine: ForecastEngine, band: Band | None, interval: float, target: float
    ) -> PredictiveState:
        best = engine.scores[0] if engine.scores else None
        mase = best.mase if best is not None else None
        if band is None or engine.tracker is None:
            return PredictiveState(engine.kind, mase, False, engine.status)
        # Whole arrays to floats at once (`tolist`): cheaper per row than indexing numpy.
        forecast = tuple(
            ForecastPoint((h + 1) * interval, p50, high)
            for h, (p50, high) in enumerate(zip(band.p50.tolist(), band.high.tolist(),
                                                strict=True))
        )
        relative, _ = engine.tracker.window.relative_error()
        floor = math.ceil(float(band.high.max()) / target)
        reference = engine.reference
        if relative >= self.settings.max_relative_error:
            reason = f"forecast error {relative:.2f}x {reference}'s: not better"
            return PredictiveState(engine.kind, mase, False, reason, forecast, reference=reference)
        down = floor if self.settings.scale_down_on_forecast else None
        reason = f"forecast error {relative:.2f}x {reference}'s"
        return PredictiveState(engine.kind, mase, True, reason, forecast, floor, down, reference)


def _as_float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


class RecordingAdvisor:
    """A `PredictiveAdvisor` that keeps, per decision, the floor it gave and the forecast it made
    for the next row (median and high quantile; NaN without a forecast), for reports and plots."""

    def __init__(self, settings: PredictiveSettings | None = None) -> None:
        self.inner = PredictiveAdvisor(settings)
        self.floors: list[int | None] = []
        self.p50: list[float] = []
        self.high: list[float] = []

    def advise(
        self,
        history: Sequence[float | None],
        interval_seconds: float,
        lookahead_seconds: float,
        target_per_replica: float,
    ) -> int | None:
        floor = self.inner.advise(history, interval_seconds, lookahead_seconds, target_per_replica)
        forecast = self.inner.state.forecast
        self.floors.append(floor)
        self.p50.append(forecast[0].p50 if forecast else math.nan)
        self.high.append(forecast[0].p_high if forecast else math.nan)
        return floor

    def ceiling(self) -> int | None:
        return self.inner.ceiling()
