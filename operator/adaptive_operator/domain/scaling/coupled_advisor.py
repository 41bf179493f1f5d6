"""Coupled scaling in a replay: a `ForecastAdvisor` made of the service's own forecast and the
coupled one, fed by upstream traces that run their own advisors row by row (causal: an upstream
is read up to the row being decided, and its forecast is the one it made at that row).

An upstream may itself be coupled (a chain a -> b -> c): its median path is then its coupled
forecast while that is trusted, else its own forecast while that is trusted, else none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from adaptive_operator.domain.common.views import RowsView
from adaptive_operator.domain.scaling.advisor import PathAdvisor
from adaptive_operator.domain.scaling.coupling import (
    CoupledForecaster,
    CouplingSettings,
    UpstreamInput,
)
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor


class OwnAdvisor(PredictiveAdvisor):
    """The service's own forecast, with its median path for a downstream."""

    def median_path(self) -> tuple[float, ...]:
        if not self.state.reliable:
            return ()
        return tuple(p.p50 for p in self.state.forecast)

    def persistence_rise(self) -> float | None:
        return self.state.persistence_rise


class UpstreamTrace:
    """An upstream's whole trace and its advisor, advised once per row (memoised, so that two
    downstreams of one upstream see the same forecast)."""

    def __init__(self, values: Sequence[float | None], advisor: PathAdvisor,
                 target_per_replica: float) -> None:
        self.values = values
        self.advisor = advisor
        self.target = target_per_replica
        self._rows = -1
        self._path: tuple[float, ...] = ()
        self._rise: float | None = None

    def at(self, rows: int, interval: float, lookahead: float) -> UpstreamInput:
        if rows > len(self.values):
            raise ValueError("the upstream trace is shorter than the downstream's")
        seen = RowsView.prefix(self.values, rows)
        if rows != self._rows:
            self.advisor.advise(seen, interval, lookahead, self.target)
            self._rows, self._path = rows, self.advisor.median_path()
            self._rise = self.advisor.persistence_rise()
        return UpstreamInput(seen, self._path, self._rise)


class CoupledAdvisor:
    """The floor is the higher of the own forecast's and the trusted coupled forecast's."""

    def __init__(self, own: OwnAdvisor | None, upstreams: Sequence[UpstreamTrace],
                 settings: CouplingSettings | None = None) -> None:
        self.own = own
        self.upstreams = tuple(upstreams)
        self.coupled = CoupledForecaster(settings)
        self.floors: list[int | None] = []  # the coupled floor per row, for reports

    def advise(self, history: Sequence[float | None], interval_seconds: float,
               lookahead_seconds: float, target_per_replica: float) -> int | None:
        own_floor = None
        if self.own is not None:
            own_floor = self.own.advise(history, interval_seconds, lookahead_seconds,
                                        target_per_replica)
        own_path = self.own.median_path() if self.own is not None else ()
        # The replay passes the start-up as the look-ahead, but a pod asked for at the end of
        # row i serves from the row after it is ready: one row more, as the operator's own
        # look-ahead (start-up + one period, `domain.lookahead`) has.
        horizon = max(1, math.ceil(lookahead_seconds / interval_seconds)) + 1
        inputs = [u.at(len(history), interval_seconds, lookahead_seconds)
                  for u in self.upstreams]
        # The own forecast beyond its last point is that point (it provisions no further).
        own_median = own_path[min(horizon, len(own_path)) - 1] if own_path else None
        coupled = self.coupled.advise(history, inputs, own_median, horizon, target_per_replica)
        self.floors.append(coupled)
        floors = [f for f in (own_floor, coupled) if f is not None]
        return max(floors) if floors else None

    def ceiling(self) -> int | None:
        ceiling = self.own.ceiling() if self.own is not None else None
        coupled = self.coupled.state.floor_replicas if self.coupled.state.trusted else None
        if ceiling is None or coupled is None:
            return ceiling
        return max(ceiling, coupled)

    def persistence_rise(self) -> float | None:
        """The own forecast's (the coupled one is followed through its own upstreams)."""
        return self.own.persistence_rise() if self.own is not None else None

    def median_path(self) -> tuple[float, ...]:
        if self.coupled.state.trusted:
            return self.coupled.state.forecast
        return self.own.median_path() if self.own is not None else ()
