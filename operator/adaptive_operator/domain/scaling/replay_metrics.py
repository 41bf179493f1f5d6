"""How a replay served its load: the figures the benchmark and `backtest` compare policies on.

Row j's demand is served up to the capacity of the pods ready at its midpoint (pods x target per
replica); what exceeds it is unserved. Rows with an unavailable value count for nothing.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ReplayMetrics:
    unserved: float  # fraction of the demand above the serving capacity
    under_time: float  # fraction of the known rows whose demand exceeded capacity
    replica_hours: float
    scale_changes: int


def replay_metrics(
    values: Sequence[float | None],
    serving: Sequence[int],
    desired: Sequence[int],
    target_per_replica: float,
    interval_seconds: float,
) -> ReplayMetrics:
    demand = served = 0.0
    under = known = 0
    for value, pods in zip(values, serving, strict=True):
        if value is None:
            continue
        capacity = pods * target_per_replica
        known += 1
        demand += value
        served += min(value, capacity)
        under += value > capacity
    return ReplayMetrics(
        unserved=1.0 - served / demand if demand > 0 else 0.0,
        under_time=under / known if known else math.nan,
        replica_hours=sum(serving) * interval_seconds / 3600.0,
        scale_changes=sum(a != b for a, b in itertools.pairwise(desired)),
    )
