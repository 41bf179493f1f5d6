"""One metric's forecast memory, kept by its service's scaling daemon: the history, the advisor
fitted on it, and the readings taken while the history was being backfilled. Pure: the daemon
(handlers/forecasts) runs the backfill and the fits, and says when they are done.

Memory per service and metric (computed from the array sizes, not measured here): the ring of
`historySeconds / syncPeriodSeconds` rows at 8 bytes, the engine's own numpy window (up to 2x
that) and its error window (a day of rows x the look-ahead's rows). With the defaults (14 days)
and a 15 s sync: 80,640 rows -> 0.65 + 1.3 + ~0.46 MB = ~2.4 MB, so ~2.4 GB for 1,000 services;
with a 60 s sync, a quarter of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from adaptive_operator.api.base import MAX_HISTORY_ROWS, MAX_LOOK_AHEAD_ROWS
from adaptive_operator.api.predictive import PredictiveSpec
from adaptive_operator.domain.common.views import RowsView
from adaptive_operator.domain.scaling.forecast_history import MetricHistory, capacity_rows
from adaptive_operator.domain.scaling.lookahead import LookAhead, look_ahead, within_rows
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor, PredictiveSettings

MAX_ERROR_ROWS = 5760
WARMING_UP = "forecast warming up: history backfill and first fit in progress"


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


def history_rows(history_seconds: float, period: float) -> int:
    """The rows a history keeps: the spec's history, at most MAX_HISTORY_ROWS."""
    return min(capacity_rows(history_seconds, period), MAX_HISTORY_ROWS)


def service_look_ahead(predictive: PredictiveSpec, startups: Sequence[float], period: float,
                       previous: float | None) -> LookAhead:
    """This sync's look-ahead (the spec's, else learned from the pods' start-ups), at most
    MAX_LOOK_AHEAD_ROWS periods."""
    return within_rows(look_ahead(predictive.look_ahead_seconds, startups, period, previous,
                                  predictive.look_ahead_factor),
                       period, MAX_LOOK_AHEAD_ROWS)


@dataclass(frozen=True)
class FitFor:
    """What the first fit is made for (the advisor's settings, the look-ahead, the target)."""

    settings: PredictiveSettings
    ahead: float
    target_per_replica: float


@dataclass
class MetricMemory:
    """One metric's history and advisor; rebuilt when what they were made for changes.

    `source` is what the history was read from (compared only). Until the history is there
    the readings wait in `pending`, and are placed on it, in order, once it is."""

    source: object = None
    history: MetricHistory | None = None
    advisor: PredictiveAdvisor | None = None
    made_for: tuple[PredictiveSettings, float] | None = None  # settings, look-ahead
    base: int = 0
    ignored: str = ""
    failure: str = ""  # why the last backfill failed ("" when it did not)
    pending: list[tuple[float, float | None]] = field(default_factory=list)

    def take(self, source: object, now: float, value: float | None,
             warming: bool) -> str | None:
        """None when the history is there (the reading placed on it); else why not. `warming`:
        a backfill of this source runs. Another source starts over: a backfill is then due."""
        if warming:
            self.pending.append((now, value))
            return WARMING_UP
        if source == self.source and self.history is not None:
            self.place(now, value)
            return None
        failed, self.failure = self.failure, ""
        self.source, self.history, self.advisor = source, None, None
        self.pending = [(now, value)]
        return f"history backfill failed: {failed}" if failed else WARMING_UP

    def extend(self, source: object, now: float, value: float | None) -> bool:
        """A history only (no advisor: a coupled service's upstream). True when this source's
        is there (the reading placed on it); else it is dropped and a backfill is due."""
        if source == self.source and self.history is not None:
            self.place(now, value)
            return True
        self.source, self.history, self.advisor = source, None, None
        return False

    def place(self, now: float, value: float | None) -> None:
        """The readings taken while warming, then this one, on the history."""
        assert self.history is not None
        for at, kept in self.pending:
            self.history.record(at, kept)
        self.pending = []
        self.history.record(now, value)

    def backfilled(self, history: MetricHistory, ignored: str, fit: FitFor) -> RowsView:
        """The backfilled history, the readings taken meanwhile on it, and a new advisor made
        for `fit`; the rows its first fit reads."""
        for at, value in self.pending:
            history.record(at, value)
        self.pending = []
        self.history, self.ignored = history, ignored
        self.advisor, self.made_for = PredictiveAdvisor(fit.settings), (fit.settings, fit.ahead)
        self.base = history.first_kept
        return history.view(self.base)

    def advisor_for(self, settings: PredictiveSettings,
                    ahead: float) -> tuple[PredictiveAdvisor, RowsView]:
        """The advisor made for these settings and look-ahead (a new one starts from the oldest
        row still kept), and the rows it reads."""
        assert self.history is not None
        if self.advisor is None or self.made_for != (settings, ahead):
            self.advisor, self.made_for = PredictiveAdvisor(settings), (settings, ahead)
            self.base = self.history.first_kept
        return self.advisor, self.history.view(self.base)
