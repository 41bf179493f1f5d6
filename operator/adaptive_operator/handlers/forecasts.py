"""A service's forecasting state (in its scaling daemon's memory): per metric, history and advisor
(`domain.scaling.forecast_memory`, with what they cost in memory).

Kept in memory only (status is no place for fast-changing history; docs/architecture.md): after a
start, or when the query, the sync period or the history window changes, the history is
backfilled from Prometheus range queries, so a restart loses nothing but the fitting time. Each
sync then places the value it read on the history's grid and asks the advisor for a floor.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from adaptive_operator import logs
from adaptive_operator.adapters import telemetry
from adaptive_operator.adapters.prometheus import PrometheusError, Target, ignored_text
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec, MetricSpec
from adaptive_operator.api.predictive import PredictiveSpec
from adaptive_operator.domain.common.times import grid_window
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.forecast import MetricForecast, ServiceForecast, combine
from adaptive_operator.domain.scaling.forecast_history import MetricHistory, chunk_ranges, joined
from adaptive_operator.domain.scaling.forecast_memory import (
    WARMING_UP,
    FitFor,
    MetricMemory,
    advisor_settings,
    history_rows,
    service_look_ahead,
)
from adaptive_operator.domain.scaling.lookahead import LookAhead
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor, PredictiveState
from adaptive_operator.handlers.warmup import Ranges, WarmUps
from adaptive_operator.handlers.warmup import running as warmup_running

log = logs.get(__name__)


async def backfill(url: Target, query: str, step: float, capacity: int, now: float,
                   ranges: Ranges) -> tuple[MetricHistory, str]:
    """The last `capacity` rows up to `now`, by range queries of at most 11,000 points each,
    and what was ignored in them ("" when nothing was)."""
    origin, end = grid_window(now, step, capacity)
    answers = [await ranges.series(url, query, first, last, step)
               for first, last in chunk_ranges(origin, end, step)]
    history, ignored = joined(origin, step, capacity, [(a.values, a.ignored) for a in answers])
    if ignored:
        # Left as gaps in the history (never read as load): said once, with the counts.
        log.warning("forecast history samples ignored", query=query, ignored=dict(ignored),
                    message=ignored_text(ignored))
    return history, ignored_text(ignored)


Source = tuple[Target, str, float, int]  # url, query, period, history seconds
Advice = tuple[int | None, PredictiveState]  # the floor (None: reactive only), and why


@dataclass
class MetricForecaster(MetricMemory):
    """One metric's memory, and its warm-up: the history's backfill and the advisor's first fit
    run in the background (`WarmUps`); until they are done the metric says it is warming up and
    the service scales reactively."""

    warming: asyncio.Task[None] | None = None
    # A refit running in the background, and the floor and state the syncs use meanwhile.
    refitting: asyncio.Task[None] | None = None
    advised: Advice | None = None

    def observe(self, source: Source, reading: MetricReading, now: float,
                warm: Callable[[], asyncio.Task[None]]) -> str | None:
        """None when the history is there (the reading placed on it); else why not, a
        warm-up having been started if none runs for this source."""
        running = self.warming if warmup_running(self.warming) else None
        if running is not None and source != self.source:
            running.cancel()
            running = None
        waiting = self.take(source, now, reading.value, warming=running is not None)
        if waiting is not None:
            self.advised = None  # another history comes: nothing of the old advisor holds
            if running is None:
                self.warming = warm()
        return waiting

    async def warm_up(self, url: Target, query: str, period: float, capacity: int, now: float,
                      fit: FitFor, fits: WarmUps) -> None:
        """Backfill, place the readings taken meanwhile, and make the first fit."""
        try:
            history, ignored = await backfill(url, query, period, capacity, now, fits.ranges)
        except PrometheusError as err:  # tried again next sync; until then reactive only
            self.failure = str(err)
            return
        log.info("forecast history backfilled", query=query, rows=history.kept, step=period)
        rows = self.backfilled(history, ignored, fit)
        assert self.advisor is not None
        # Fitting is CPU work (statsmodels): off the event loop, one at a time.
        advisor = self.advisor
        telemetry.FORECAST_FITS.labels("first").inc()
        floor = await fits.fit(functools.partial(advisor.advise, rows, period, fit.ahead,
                                                 fit.target_per_replica))
        self.advised = floor, advisor.state

    async def follow(self, url: Target, query: str, period: float, predictive: PredictiveSpec,
                     reading: MetricReading, now: float, ranges: Ranges) -> None:
        """A history only (no advisor), backfilled in place when needed, else the reading
        appended (a coupled service's upstream); raises PrometheusError."""
        if not self.extend((url, query, period, predictive.history_seconds), now,
                           reading.value):
            capacity = history_rows(predictive.history_seconds, period)
            self.history, self.ignored = await backfill(url, query, period, capacity, now,
                                                        ranges)

    def stop(self) -> None:
        for task in (self.warming, self.refitting):
            if task is not None:
                task.cancel()

    def advise(self, fit: FitFor, fits: WarmUps) -> Advice:
        """The floor and state: this sync's when the advisor only extends its fit by a row or
        two (in place: a worker thread would only add a wait); when a refit is due, it runs in
        the background (`refit`) and the syncs meanwhile keep the floor and state advised last.
        The refits of every service fall due together (their histories were backfilled
        together): awaited by each sync on the shared worker threads, they queued ahead of
        every other blocking call, as the detector's fits did (docs/forecasting.md)."""
        if warmup_running(self.refitting):
            return self.last_advised()
        before = self.made_for
        advisor, view = self.advisor_for(fit.settings, fit.ahead)
        if before is not None and self.made_for != before:
            # A new advisor forgets the model and fits from scratch: worth a line.
            log.info("forecast restarted", look_ahead=fit.ahead, was=before[1],
                     settings_changed=before[0] != fit.settings)
        assert self.history is not None
        step = self.history.step
        reason = advisor.fit_needed(view, step, fit.ahead)
        if reason is None:
            self.advised = (advisor.advise(view, step, fit.ahead, fit.target_per_replica),
                            advisor.state)
            return self.advised
        telemetry.FORECAST_FITS.labels(reason).inc()
        self.refitting = fits.start(functools.partial(self.refit, advisor, self.history,
                                                      self.base, step, fit, fits))
        return self.last_advised()

    def last_advised(self) -> Advice:
        """What the syncs keep while a refit runs: the floor and state advised last (none
        after a new advisor: the sync is then reactive only, as while the forecast warms up)."""
        return self.advised or (None, PredictiveState(reason=WARMING_UP))

    async def refit(self, advisor: PredictiveAdvisor, history: MetricHistory, base: int,
                    step: float, fit: FitFor, fits: WarmUps) -> None:
        """`advisor` fitted on a worker thread (through the fit gate) on the rows of `history`
        from `base` as they are when its turn comes; its floor and state are the syncs' from
        then on, unless another advisor replaced it meanwhile."""

        def made() -> Callable[[], int | None]:
            start = base
            if advisor.engine is None:
                # A new advisor reads every row from its first, which the rows added while it
                # queued may have pushed out of the ring: it starts from the oldest kept now.
                start = history.first_kept
                if advisor is self.advisor:
                    self.base = start  # the rows the syncs show it from then on
            rows = history.frozen().view(start)  # the syncs go on appending while it runs
            return functools.partial(advisor.advise, rows, step, fit.ahead,
                                     fit.target_per_replica)

        try:
            floor = await fits.fit_made(made)
        except Exception as err:  # a model that cannot be fitted is no reason to stop syncing
            log.exception("forecast refit failed", error=logs.error_text(err))
            self.advisor = None  # made afresh at the next sync, on the rows kept
            return
        if advisor is self.advisor:
            self.advised = floor, advisor.state


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
        ahead = service_look_ahead(predictive, startups, period, self.look_ahead)
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
        tasks = [task for m in self.metrics.values() for task in (m.warming, m.refitting)
                 if task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, metric: MetricSpec, reading: MetricReading, url: Target, period: float,
                   predictive: PredictiveSpec, ahead: LookAhead, now: float) -> MetricForecast:
        forecaster = self.metrics.setdefault(metric.name, MetricForecaster())
        fit = FitFor(advisor_settings(predictive, period), ahead.seconds,
                     metric.target_per_replica)
        capacity = history_rows(predictive.history_seconds, period)
        waiting = forecaster.observe(
            (url, metric.query, period, predictive.history_seconds), reading, now,
            lambda: self.warmups.start(lambda: forecaster.warm_up(
                url, metric.query, period, capacity, now, fit, self.warmups)))
        if waiting is not None:  # until then this metric runs reactive only
            return MetricForecast(metric.name, None, PredictiveState(reason=waiting))
        floor, state = forecaster.advise(fit, self.warmups)
        return MetricForecast(metric.name, floor, state, forecaster.ignored)
