"""The replay simulator: the operator's own decision code run over a recorded load trace.

The contract (issue 3): row i is the load during interval i; the decision for row i is made at
the end of interval i from rows 0..i only. The workload starts with clamp(ceil(first / V)) ready
pods; a pod created at time c is ready at c + S; interval j is served by the pods ready at its
midpoint; a scale-down removes the newest pods first. Time is relative to the first row.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adaptive_operator.domain.common.views import RowsView
from adaptive_operator.domain.scaling.advisor import ForecastAdvisor
from adaptive_operator.domain.scaling.algorithm import (
    MetricReading,
    ScalingHistory,
    ScalingSnapshot,
    ceil_replicas,
    decide,
    default_spec,
)

METRIC_NAME = "load"


class NoForecast:
    """The advisor used until a forecaster is plugged in: never sets a floor or a ceiling."""

    def advise(
        self,
        history: Sequence[float | None],
        interval_seconds: float,
        lookahead_seconds: float,
        target_per_replica: float,
    ) -> int | None:
        return None

    def ceiling(self) -> int | None:
        return None


@dataclass(frozen=True)
class ReplayConfig:
    target_per_replica: float
    startup_seconds: float
    interval_seconds: float
    min_replicas: int = 1
    max_replicas: int = 10_000
    # How far ahead the advisor provisions; None: the start-up time (the pods' own delay).
    lookahead_seconds: float | None = None

    @property
    def lookahead(self) -> float:
        return self.startup_seconds if self.lookahead_seconds is None else self.lookahead_seconds


@dataclass(frozen=True)
class ReplayResult:
    desired_replicas: tuple[int, ...]  # the decision at the end of each interval
    serving_pods: tuple[int, ...]  # pods ready at each interval's midpoint
    reasons: tuple[str, ...]


class PodPool:
    """Pods by the time they become ready; creation order equals ready order (same S)."""

    def __init__(self, initial: int) -> None:
        self._ready_times: list[float] = [float("-inf")] * initial

    def __len__(self) -> int:
        return len(self._ready_times)

    def ready_at(self, time: float) -> int:
        return bisect.bisect_right(self._ready_times, time)

    def resize(self, replicas: int, now: float, startup_seconds: float) -> None:
        missing = replicas - len(self._ready_times)
        if missing > 0:
            self._ready_times.extend([now + startup_seconds] * missing)
        elif missing < 0:
            del self._ready_times[missing:]  # the newest pods are at the end


def initial_replicas(values: Sequence[float | None], config: ReplayConfig) -> int:
    """clamp(ceil(first value / V)); an unavailable first value starts at minReplicas."""
    first = values[0] if values else None
    wanted = (
        config.min_replicas if first is None else ceil_replicas(first / config.target_per_replica)
    )
    return min(max(wanted, config.min_replicas), config.max_replicas)


def snapshot_at(
    pool: PodPool, now: float, value: float | None, config: ReplayConfig
) -> ScalingSnapshot:
    """What the decision sees at `now`: the pods, the ready ones, and the row's load."""
    ready = pool.ready_at(now)
    error = None if value is not None else "metric unavailable"
    return ScalingSnapshot(
        current_replicas=len(pool),
        ready_pods=ready,
        unready_pods=len(pool) - ready,
        metrics=(MetricReading(METRIC_NAME, value, config.target_per_replica, error),),
    )


def replay(
    values: Sequence[float | None],
    config: ReplayConfig,
    advisor: ForecastAdvisor | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Run `scaling.algorithm.decide` once per row, as the operator would with HPA's defaults
    (`progress` is told how many rows are decided, after each)."""
    spec = default_spec(config.min_replicas, config.max_replicas)
    step = config.interval_seconds
    pool = PodPool(initial_replicas(values, config))
    history = ScalingHistory()
    desired: list[int] = []
    serving: list[int] = []
    reasons: list[str] = []
    for i, value in enumerate(values):
        serving.append(pool.ready_at(i * step + step / 2))
        now = (i + 1) * step
        snapshot = snapshot_at(pool, now, value, config)
        floor = ceiling = None
        if advisor is not None:
            seen = RowsView.prefix(values, i + 1)
            floor = advisor.advise(seen, step, config.lookahead, config.target_per_replica)
            ceiling = advisor.ceiling()
        decision = decide(spec, snapshot, history, now, floor, ceiling)
        history = decision.history
        pool.resize(decision.desired_replicas, now, config.startup_seconds)
        desired.append(decision.desired_replicas)
        reasons.append(decision.reason)
        if progress is not None:
            progress(i + 1)
    return ReplayResult(tuple(desired), tuple(serving), tuple(reasons))
