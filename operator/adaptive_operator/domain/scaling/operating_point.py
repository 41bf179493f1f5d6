"""The operating point on the trade-off between unserved demand and replica-hours.

The forecast engine does not depend on the quantile asked of it or on the decisions taken, so
while it runs it can record, row by row, the floor every candidate quantile would give. Replaying
the operator's own decision code over the service's recent rows with each candidate's floors (and
with or without scale-down on the forecast) draws the service's own cost curve; an objective
("unserved demand at most x% of the demand") then picks its cheapest point, or, when no point
meets it, the point that serves the most.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adaptive_operator.domain.forecasting import Band, ForecastEngine
from adaptive_operator.domain.forecasting.persistence import PersistenceBand
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay
from adaptive_operator.domain.scaling.replay_metrics import replay_metrics

CANDIDATE_QUANTILES = (0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass(frozen=True)
class OperatingPoint:
    quantile: float
    scale_down: bool


@dataclass(frozen=True)
class PointFigures:
    point: OperatingPoint
    unserved_percent: float
    replica_hours: float


def candidate_floors(
    engine: ForecastEngine, band: Band | None, trusted: bool, target: float,
    quantiles: Sequence[float],
) -> dict[float, int | None]:
    """The floor each quantile gives on this row (None for all when there is no trusted band).
    Every quantile asked keeps its own cached band (`ErrorWindow.quantiles`), so a quantile's
    floor here is the floor a service configured with it computes."""
    out: dict[float, int | None] = dict.fromkeys(quantiles)
    if band is None or engine.tracker is None:
        return out
    window = engine.tracker.window
    for q in quantiles:
        high = window.quantiles(q)[1]  # asked on every row with a band, as the engine does
        if trusted:
            out[q] = math.ceil(float(np.maximum(band.point + high, 0.0).max()) / target)
    return out


def fallback_floors(
    fallback: PersistenceBand | None, target: float, quantiles: Sequence[float],
) -> dict[float, int | None]:
    """The persistence band's floor per quantile (None for all without one). Asked on every row,
    like the forecast's band, so that each quantile refreshes as a service's own would."""
    if fallback is None:
        return dict.fromkeys(quantiles)
    return {q: fallback.floor(q, target) for q in quantiles}


def with_fallback(
    trusted: dict[float, int | None], fallback: dict[float, int | None],
) -> dict[float, int | None]:
    """Per quantile, the trusted forecast's floor, else the persistence band's."""
    return {q: fallback.get(q) if floor is None else floor for q, floor in trusted.items()}


class ScheduledAdvisor:
    """A replay advisor handing out floors (and ceilings) recorded beforehand, row by row."""

    def __init__(self, floors: Sequence[int | None], ceilings: Sequence[int | None] = ()) -> None:
        self._floors, self._ceilings, self._row = floors, ceilings, -1

    def advise(
        self, history: Sequence[float | None], interval_seconds: float,
        lookahead_seconds: float, target_per_replica: float,
    ) -> int | None:
        self._row = len(history) - 1
        return self._floors[self._row]

    def ceiling(self) -> int | None:
        return self._ceilings[self._row] if self._ceilings else None


class FloorRecord:
    """The last `capacity` rows: the load and the floor of each candidate quantile."""

    def __init__(self, capacity: int, quantiles: Sequence[float] = CANDIDATE_QUANTILES) -> None:
        self.quantiles = tuple(quantiles)
        self.values: deque[float | None] = deque(maxlen=capacity)
        self.floors = {q: deque[int | None](maxlen=capacity) for q in self.quantiles}
        self.ceilings = {q: deque[int | None](maxlen=capacity) for q in self.quantiles}

    def add(self, value: float | None, floors: dict[float, int | None],
            ceilings: dict[float, int | None] | None = None) -> None:
        """A row: its load, each quantile's floor, and the ceiling scale-down on the forecast
        would use (the trusted forecast's floor only; `floors` when not given)."""
        self.values.append(value)
        ceilings = floors if ceilings is None else ceilings
        for q in self.quantiles:
            self.floors[q].append(floors[q])
            self.ceilings[q].append(ceilings[q])

    def curve(self, config: ReplayConfig) -> list[PointFigures]:
        """Each candidate point replayed over the recorded rows, with the operator's decision
        code and the replay's pod model."""
        values = list(self.values)
        out = []
        for q in self.quantiles:
            floors, ceilings = list(self.floors[q]), list(self.ceilings[q])
            for down in (False, True):
                result = replay(values, config, ScheduledAdvisor(floors, ceilings if down else ()))
                m = replay_metrics(values, result.serving_pods, result.desired_replicas,
                                   config.target_per_replica, config.interval_seconds)
                out.append(PointFigures(OperatingPoint(q, down), 100.0 * m.unserved,
                                        m.replica_hours))
        return out


def cheapest_within(curve: Sequence[PointFigures], max_unserved_percent: float) -> OperatingPoint:
    """The cheapest point whose unserved demand is within the objective; else the one serving
    the most (the cheaper of equals)."""
    fits = [p for p in curve if p.unserved_percent <= max_unserved_percent]
    if fits:
        return min(fits, key=lambda p: (p.replica_hours, p.unserved_percent)).point
    return min(curve, key=lambda p: (p.unserved_percent, p.replica_hours)).point


class Objective:
    """A service's objective: it records its own rows and, once per `every` rows, moves its
    operating point to the cheapest one within `max_unserved_percent` on the last rows."""

    def __init__(self, max_unserved_percent: float, rows: int, every: int,
                 start: OperatingPoint) -> None:
        quantiles = sorted({*CANDIDATE_QUANTILES, start.quantile})
        self.max_unserved_percent = max_unserved_percent
        self.record = FloorRecord(rows, quantiles)
        self.point = start
        self.every = max(1, every)
        self._since = 0

    def observe(self, engine: ForecastEngine, band: Band | None, trusted: bool,
                value: float | None, config: ReplayConfig,
                fallback: PersistenceBand | None = None) -> int | None:
        """Record this row; the floor at the current operating point."""
        target, quantiles = config.target_per_replica, self.record.quantiles
        ceilings = candidate_floors(engine, band, trusted, target, quantiles)
        floors = with_fallback(ceilings, fallback_floors(fallback, target, quantiles))
        self.record.add(value, floors, ceilings)
        self._since += 1
        if self._since >= self.every and len(self.record.values) >= self.every:
            curve = self.record.curve(config)
            self.point = cheapest_within(curve, self.max_unserved_percent)
            self._since = 0
        return floors[self.point.quantile]
