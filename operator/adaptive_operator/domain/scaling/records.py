"""The records of the scaling domain: spec, snapshot, history and decision (plain, frozen data).

`adaptive_operator.domain.scaling.algorithm` re-exports all of them: import from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]

# ceil() of a quotient computed in floating point: 1.1 / 0.1 is 11.000000000000002, which must
# give 11 replicas, not 12. Upstream avoids this with milli-quantities; rounding does the same.
_CEIL_DIGITS = 9


@dataclass(frozen=True)
class ScalingPolicy:
    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int
    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]


DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_seconds=0,
    select_policy="Max",
    policies=(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)),
)
DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_seconds=300,
    select_policy="Max",
    policies=(ScalingPolicy("Percent", 100, 15),),
)


@dataclass(frozen=True)
class ScalingSpec:
    min_replicas: int
    max_replicas: int
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN
    tolerance: float = 0.1


@dataclass(frozen=True)
class MetricReading:
    """One metric: `value` is the workload's TOTAL (None when it could not be read)."""

    name: str
    value: float | None
    target_per_replica: float
    error: str | None = None


@dataclass(frozen=True)
class ScalingSnapshot:
    current_replicas: int
    ready_pods: int
    unready_pods: int
    metrics: tuple[MetricReading, ...]


@dataclass(frozen=True)
class Recommendation:
    time: float
    replicas: int


@dataclass(frozen=True)
class ScaleEvent:
    time: float
    change: int  # +n up, -n down


@dataclass(frozen=True)
class ScalingHistory:
    recommendations: tuple[Recommendation, ...] = ()
    scale_events: tuple[ScaleEvent, ...] = ()


@dataclass(frozen=True)
class ScalingDecision:
    desired_replicas: int
    reason: str
    message: str
    proposals: tuple[tuple[str, int | None], ...]
    limited: bool
    able_to_scale: bool
    history: ScalingHistory  # already updated and pruned: store it as is
    recommended_replicas: int | None = None  # before stabilization and policies; None on a hold


def default_spec(
    min_replicas: int = 1, max_replicas: int = 10_000, tolerance: float = 0.1
) -> ScalingSpec:
    """HPA v2's defaults for everything but the replica bounds."""
    return ScalingSpec(min_replicas=min_replicas, max_replicas=max_replicas, tolerance=tolerance)


# A replica count is an int32 in the API; a huge spike (load / target beyond float range)
# proposes this many, which max_replicas then bounds, instead of overflowing.
MAX_REPLICA_COUNT = 2**31 - 1


def ceil_replicas(x: float) -> int:
    if not x < MAX_REPLICA_COUNT:  # also inf (and nan, which callers never pass)
        return MAX_REPLICA_COUNT
    return math.ceil(round(x, _CEIL_DIGITS))
