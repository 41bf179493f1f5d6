"""A service's forecasting state (in its scaling daemon's memory): per metric, history and advisor.

Kept in memory only (status is no place for fast-changing history; docs/architecture.md): after a
start, or when the query, the sync period or the history window changes, the history is
backfilled from Prometheus range queries, so a restart loses nothing but the fitting time. Each
sync then places the value it read on the history's grid and asks the advisor for a floor.

Memory per service and metric (computed from the array sizes, not measured here): the ring of
`historySeconds / syncPeriodSeconds` rows at 8 bytes, the engine's own numpy window (up to 2x
that) and its error window (a day of rows x the look-ahead's rows). With the defaults (14 days)
and a 15 s sync: 80,640 rows -> 0.65 + 1.3 + ~0.46 MB = ~2.4 MB, so ~2.4 GB for 1,000 services;
with a 60 s sync, a quarter of that.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from adaptive_operator import logs
from adaptive_operator.adapters.prometheus import PrometheusError, Target, ignored_text
from adaptive_operator.adapters.range_batch import aligned
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec, MetricSpec
from adaptive_operator.api.base import MAX_HISTORY_ROWS, MAX_LOOK_AHEAD_ROWS
from adaptive_operator.api.predictive import PredictiveSpec
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.forecast import MetricForecast, ServiceForecast, combine
from adaptive_operator.domain.scaling.forecast_history import (
    MetricHistory,
    capacity_rows,
    chunk_ranges,
)
from adaptive_operator.domain.scaling.lookahead import LookAhead, look_ahead, within_rows
from adaptive_operator.domain.scaling.predictive import (
    PredictiveAdvisor,
    PredictiveSettings,
    PredictiveState,
)
from adaptive_operator.handlers.warmup import Ranges, WarmUps

log = logs.get(__name__)


async def backfill(url: Target, query: str, step: float, capacity: int, now: float,
                   ranges: Ranges) -> tuple[MetricHistory, str]:
    """The last `capacity` rows up to `now`, by range queries of at most 11,000 points each,
    and what was ignored in them ("" when nothing was)."""
    now = aligned(now, step)  # on the grid: services starting together share the queries
    origin = now - (capacity - 1) * step
    values: list[float | None] = []
    ignored: Counter[str] = Counter()
    for start, end in chunk_ranges(origin, now, step):
        series = await ranges.series(url, query, start, end, step)
        values.extend(series.values)
        ignored.update(series.ignored)
    if ignored:
        # Left as gaps in the history (never read as load): said once, with the counts.
        log.warning("forecast history samples ignored", query=query, ignored=dict(ignored),
                    message=ignored_text(ignored))
    return MetricHistory.backfilled(origin, step, capacity, values), ignored_text(ignored)


MAX_ERROR_ROWS = 5760


def advisor_settings(predictive: PredictiveSpec, period: float) -> PredictiveSettings:
    """The advisor's settings; its error window keeps at most MAX_ERROR_ROWS rows (a day at the
    default 15 s sync), as it holds one error per look-ahead row for each."""
    defaults = PredictiveSettings()
    return PredictiveSettings(
        model=predictive.model,
        quantile=predictive.quantile,
        history_seconds=min(float(predictive.history_seconds), MAX_HISTORY_ROWS * period),
        scale_down_on_forecast=predictive.scale_down_on_forecast,
        error_window_seconds=min(defaults.error_window_seconds, MAX_ERROR_ROWS * period),
        max_unserved_percent=(
            predictive.objective.max_unserved_percent if predictive.objective else None),
    )


WARMING_UP = "forecast warming up: history backfill and first fit in progress"
Source = tuple[Target, str, float, int]  # url, query, period, history seconds


@dataclass(frozen=True)
class FitFor:
    """What the first fit is made for (the advisor's settings, the look-ahead, the target)."""

    settings: PredictiveSettings
    ahead: float
    target_per_replica: float


@dataclass
class MetricForecaster:
    """One metric's history and advisor; rebuilt when what they were made for changes.

    The history's backfill and the advisor's first fit run in the background (`WarmUps`):
    until they are done the metric says it is warming up and the service scales reactively;
    the readings taken meanwhile are kept and placed on the history once it is there."""

    source: Source | None = None
    history: MetricHistory | None = None
    advisor: PredictiveAdvisor | None = None
    made_for: tuple[PredictiveSettings, float] | None = None  # settings, look-ahead
    base: int = 0
    ignored: str = ""
    warming: asyncio.Task[None] | None = None
    failure: str = ""  # why the last backfill failed ("" when it did not)
    pending: list[tuple[float, float | None]] = field(default_factory=list)

    def observe(self, source: Source, reading: MetricReading, now: float,
                warm: Callable[[], asyncio.Task[None]]) -> str | None:
        """None when the history is there (the reading placed on it); else why not, a
        warm-up having been started if none runs for this source."""
        running = self.running()
        if running is not None:
            if source == self.source:
                self.pending.append((now, reading.value))
                return WARMING_UP
            running.cancel()
        if source == self.source and self.history is not None:
            self._place(now, reading.value)
            return None
        failed, self.failure = self.failure, ""
        self.source, self.history, self.advisor = source, None, None
        self.pending = [(now, reading.value)]
        self.warming = warm()
        return f"history backfill failed: {failed}" if failed else WARMING_UP

    def running(self) -> asyncio.Task[None] | None:
        """The warm-up, while it runs."""
        return self.warming if self.warming is not None and not self.warming.done() else None

    def _place(self, now: float, value: float | None) -> None:
        """The readings taken while warming, then this one, on the history."""
        assert self.history is not None
        for at, kept in self.pending:
            self.history.record(at, kept)
        self.pending = []
        self.history.record(now, value)

    async def warm_up(self, url: Target, query: str, period: float, capacity: int, now: float,
                      fit: FitFor, fits: WarmUps) -> None:
        """Backfill, place the readings taken meanwhile, and make the first fit."""
        try:
            history, ignored = await backfill(url, query, period, capacity, now, fits.ranges)
        except PrometheusError as err:  # tried again next sync; until then reactive only
            self.failure = str(err)
            return
        log.info("forecast history backfilled", query=query, rows=history.kept, step=period)
        for at, value in self.pending:
            history.record(at, value)
        self.pending = []
        self.history, self.ignored = history, ignored
        self.advisor, self.made_for = PredictiveAdvisor(fit.settings), (fit.settings, fit.ahead)
        self.base = history.first_kept
        # Fitting is CPU work (statsmodels): off the event loop, one at a time.
        await fits.fit(functools.partial(self.advisor.advise, history.view(self.base), period,
                                         fit.ahead, fit.target_per_replica))

    async def follow(self, url: Target, query: str, period: float, predictive: PredictiveSpec,
                     reading: MetricReading, now: float, ranges: Ranges) -> None:
        """A history only (no advisor), backfilled in place when needed, else the reading
        appended (a coupled service's upstream); raises PrometheusError."""
        source = (url, query, period, predictive.history_seconds)
        if source == self.source and self.history is not None:
            self.history.record(now, reading.value)
            return
        self.source, self.history, self.advisor = source, None, None
        capacity = min(capacity_rows(predictive.history_seconds, period), MAX_HISTORY_ROWS)
        self.history, self.ignored = await backfill(url, query, period, capacity, now, ranges)

    def stop(self) -> None:
        if self.warming is not None:
            self.warming.cancel()

    async def advise(self, settings: PredictiveSettings, ahead: float,
                     target_per_replica: float) -> tuple[int | None, PredictiveState]:
        assert self.history is not None
        if self.advisor is None or self.made_for != (settings, ahead):
            # A new advisor starts from the oldest row still kept.
            self.advisor, self.made_for = PredictiveAdvisor(settings), (settings, ahead)
            self.base = self.history.first_kept
        advisor, view = self.advisor, self.history.view(self.base)
        step = self.history.step
        if advisor.is_light(view, step, ahead):
            # A row or two onto a fitted model: in place (a worker thread would only add a wait).
            return advisor.advise(view, step, ahead, target_per_replica), advisor.state
        # Fitting is CPU work (statsmodels): off the event loop, so other services keep syncing.
        floor = await asyncio.to_thread(advisor.advise, view, step, ahead, target_per_replica)
        return floor, advisor.state


@dataclass
class ServiceForecaster:
    warmups: WarmUps = field(default_factory=WarmUps)
    metrics: dict[str, MetricForecaster] = field(default_factory=dict)
    look_ahead: float | None = None

    async def update(self, spec: AdaptiveServiceSpec, url: Target,
                     readings: Sequence[MetricReading], startups: Sequence[float],
                     now: float) -> ServiceForecast:
        predictive = spec.predictive
        assert predictive is not None
        period = float(spec.sync_period_seconds)
        ahead = within_rows(look_ahead(predictive.look_ahead_seconds, startups, period,
                                       self.look_ahead, predictive.look_ahead_factor),
                            period, MAX_LOOK_AHEAD_ROWS)
        self.look_ahead = ahead.seconds
        self._keep_only({m.name for m in spec.metrics})
        results = []
        for metric, reading in zip(spec.metrics, readings, strict=True):
            results.append(await self._one(metric, reading, url, period, predictive, ahead, now))
        return combine(tuple(results), ahead)

    def _keep_only(self, names: set[str]) -> None:
        """The metrics the spec still names; the others' warm-ups are dropped."""
        for gone in [v for k, v in self.metrics.items() if k not in names]:
            gone.stop()
        self.metrics = {k: v for k, v in self.metrics.items() if k in names}

    def stop(self) -> None:
        """The service is gone, or predictive is off: its warm-ups are dropped."""
        for forecaster in self.metrics.values():
            forecaster.stop()

    async def settled(self) -> None:
        """Until every warm-up begun has ended (for tests and a clean stop)."""
        tasks = [m.warming for m in self.metrics.values() if m.warming is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, metric: MetricSpec, reading: MetricReading, url: Target, period: float,
                   predictive: PredictiveSpec, ahead: LookAhead, now: float) -> MetricForecast:
        forecaster = self.metrics.setdefault(metric.name, MetricForecaster())
        settings = advisor_settings(predictive, period)
        capacity = min(capacity_rows(predictive.history_seconds, period), MAX_HISTORY_ROWS)
        fit = FitFor(settings, ahead.seconds, metric.target_per_replica)
        waiting = forecaster.observe(
            (url, metric.query, period, predictive.history_seconds), reading, now,
            lambda: self.warmups.start(lambda: forecaster.warm_up(
                url, metric.query, period, capacity, now, fit, self.warmups)))
        if waiting is not None:  # until then this metric runs reactive only
            return MetricForecast(metric.name, None, PredictiveState(reason=waiting))
        floor, state = await forecaster.advise(settings, ahead.seconds, metric.target_per_replica)
        return MetricForecast(metric.name, floor, state, forecaster.ignored)
