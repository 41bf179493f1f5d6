"""HorizontalPodAutoscaler v2's algorithm, as a pure function over a snapshot.

The steps and their order follow the upstream controller (pkg/controller/podautoscaler):
per-metric proposals with tolerance (replica calculator, AverageValue over a workload total),
the largest proposal wins, unreadable metrics never allow a scale-down, then stabilization over
the recorded recommendations, then the behavior policies over their periods, then min/max.
Upstream keeps recommendations and scale events in memory; here they are an input and an output
(`ScalingHistory`) so the caller can store them in status and survive a restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from adaptive_operator.domain.scaling.behavior import (
    Limited,
    apply_rate_and_bounds,
    compact_recommendations,
    prune_history,
    record_decision,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)
from adaptive_operator.domain.scaling.records import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    MetricReading,
    PolicyType,
    Recommendation,
    ScaleEvent,
    ScalingDecision,
    ScalingHistory,
    ScalingPolicy,
    ScalingRules,
    ScalingSnapshot,
    ScalingSpec,
    SelectPolicy,
    ceil_replicas,
    default_spec,
)

__all__ = [
    "DEFAULT_SCALE_DOWN",
    "DEFAULT_SCALE_UP",
    "ForecastBounds",
    "MetricReading",
    "PolicyType",
    "Recommendation",
    "ScaleEvent",
    "ScalingDecision",
    "ScalingHistory",
    "ScalingPolicy",
    "ScalingRules",
    "ScalingSnapshot",
    "ScalingSpec",
    "SelectPolicy",
    "apply_rate_and_bounds",
    "ceil_replicas",
    "compact_recommendations",
    "decide",
    "default_spec",
    "metric_error",
    "propose_replicas",
    "prune_history",
    "scale_down_limit",
    "scale_up_limit",
    "stabilize",
    "with_forecast",
]

# --- per-metric proposal (the replica calculator) -------------------------------------------


def _counted_pods(snapshot: ScalingSnapshot) -> tuple[int, int]:
    """Ready and unready pods; a snapshot without pod counts means every replica is ready."""
    if snapshot.ready_pods + snapshot.unready_pods == 0:
        return snapshot.current_replicas, 0
    return snapshot.ready_pods, snapshot.unready_pods


def metric_error(reading: MetricReading, snapshot: ScalingSnapshot) -> str | None:
    """Why a reading cannot be used, or None when it can."""
    if reading.value is None:
        return reading.error or "no value"
    if not math.isfinite(reading.value) or reading.value < 0:
        return f"unusable value {reading.value}"
    if _counted_pods(snapshot)[0] == 0:
        # Upstream: "did not receive metrics for targeted pods (pods might be unready)".
        return "no ready pods"
    return None


def propose_replicas(
    reading: MetricReading, snapshot: ScalingSnapshot, tolerance: float
) -> int | None:
    """Replicas for one metric, as the upstream replica calculator does for a total.

    The total is what the ready pods served. Towards a scale-up, unready pods count as serving
    zero (so a starting pod is not double-counted); if that flips the direction or lands within
    tolerance, hold. Towards a scale-down, unready pods are ignored.
    """
    if metric_error(reading, snapshot) is not None:
        return None
    total = float(reading.value or 0.0)
    target = reading.target_per_replica
    current = snapshot.current_replicas
    ratio = _usage_ratio(total, target, *_counted_pods(snapshot), tolerance)
    if ratio is None:
        return current
    proposal = ceil_replicas(total / target)
    return proposal if _same_direction(ratio, proposal, current) else current


def _usage_ratio(
    total: float, target: float, ready: int, unready: int, tolerance: float
) -> float | None:
    """The usage ratio that decides, or None when it says hold."""
    ratio = total / (target * ready)
    if unready > 0 and ratio > 1.0:
        ratio = total / (target * (ready + unready))
        if ratio < 1.0:
            return None
    return None if abs(1.0 - ratio) <= tolerance else ratio


def _same_direction(ratio: float, proposal: int, current: int) -> bool:
    """Rounding (or pods missing from the count) must never turn the direction around."""
    if ratio < 1.0:
        return proposal <= current
    return proposal >= current


# --- the decision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Proposal:
    proposals: tuple[tuple[str, int | None], ...]
    errors: tuple[str, ...]
    recommended: int | None
    driver: str


FLOOR = "the forecast"
CEILING = "the forecast's ceiling"


@dataclass(frozen=True)
class ForecastBounds:
    """What a trusted forecast says about the replicas over the look-ahead: `floor` raises the
    recommendation to it; `ceiling` (only with scale-down on forecast) lowers it to it."""

    floor: int | None = None
    ceiling: int | None = None
    floor_source: str = FLOOR  # what the floor is for, in the explanation


def with_forecast(reactive: int, current: int, bounds: ForecastBounds) -> tuple[int, str | None]:
    """The recommendation once the forecast is applied, and which bound drove it (None: neither).

    The floor wins when it is above the metrics' proposal. The ceiling lowers a proposal that does
    not scale up: the forecast may scale down on its own, but a scale-up the metrics ask for now
    (load already above capacity) is never cut by a forecast."""
    if bounds.floor is not None and bounds.floor > reactive:
        return bounds.floor, bounds.floor_source
    if bounds.ceiling is not None and bounds.ceiling < reactive <= current:
        return bounds.ceiling, CEILING
    return reactive, None


def _propose_all(spec: ScalingSpec, snapshot: ScalingSnapshot, bounds: ForecastBounds) -> _Proposal:
    proposals = tuple(
        (m.name, propose_replicas(m, snapshot, spec.tolerance)) for m in snapshot.metrics
    )
    errors = tuple(
        f"{m.name}: {metric_error(m, snapshot)}"
        for m in snapshot.metrics
        if metric_error(m, snapshot)
    )
    valid = [(replicas, name) for name, replicas in proposals if replicas is not None]
    if not valid:
        return _Proposal(proposals, errors, None, "")
    replicas, driver = max(valid, key=lambda pair: pair[0])
    replicas, bound = with_forecast(replicas, snapshot.current_replicas, bounds)
    return _Proposal(proposals, errors, replicas, bound or driver)


def _hold(
    snapshot: ScalingSnapshot,
    reason: str,
    message: str,
    history: ScalingHistory,
    proposals: tuple[tuple[str, int | None], ...] = (),
) -> ScalingDecision:
    return ScalingDecision(
        desired_replicas=snapshot.current_replicas,
        reason=reason,
        message=message,
        proposals=proposals,
        limited=False,
        able_to_scale=False,
        history=history,
    )


def _out_of_bounds(
    spec: ScalingSpec, snapshot: ScalingSnapshot, history: ScalingHistory, now: float
) -> ScalingDecision | None:
    """Upstream moves a target outside [min, max] straight back, before looking at metrics."""
    current = snapshot.current_replicas
    if spec.min_replicas <= current <= spec.max_replicas:
        return None
    if current > spec.max_replicas:
        desired, reason, bound = (
            spec.max_replicas,
            "TooManyReplicas",
            f"maxReplicas {spec.max_replicas}",
        )
    else:
        desired, reason, bound = (
            spec.min_replicas,
            "TooFewReplicas",
            f"minReplicas {spec.min_replicas}",
        )
    message = f"scaled to {desired} because {current} replicas is outside the bound {bound}"
    events = (*history.scale_events, ScaleEvent(now, desired - current))
    return ScalingDecision(
        desired, reason, message, (), True, True, replace(history, scale_events=events)
    )


def _describe_metrics(snapshot: ScalingSnapshot, proposal: _Proposal) -> str:
    parts = []
    for reading, (_, replicas) in zip(snapshot.metrics, proposal.proposals, strict=True):
        if replicas is not None:
            parts.append(
                f"{reading.name}={reading.value:g} "
                f"(target {reading.target_per_replica:g}/replica -> {replicas})"
            )
    return ", ".join(parts)


def _explain(
    current: int, recommended: int, stabilized: int, limited: Limited, why: str
) -> tuple[str, str]:
    desired = limited.replicas
    if limited.reason is not None:
        verb = "kept" if desired == current else "scaled to"
        return (
            limited.reason,
            f"{verb} {desired} instead of {stabilized} because {limited.detail}; {why}",
        )
    if stabilized != recommended:
        reason = "ScaleUpStabilized" if recommended > current else "ScaleDownStabilized"
        side = "lower" if reason == "ScaleUpStabilized" else "higher"
        return reason, (
            f"kept {desired} instead of {recommended}: recent recommendations within the "
            f"stabilization window were {side}; {why}"
        )
    if desired > current:
        return "ScaleUp", f"scaled to {desired} from {current} because {why}"
    if desired < current:
        return "ScaleDown", f"scaled to {desired} from {current} because {why}"
    return "WithinTolerance", f"kept {desired} because {why}"


def _bound_why(driver: str, floor_source: str, recommended: int, metrics: str) -> str:
    if driver == floor_source:
        why = f"{floor_source} asks for at least {recommended}"
    elif driver == CEILING:
        why = f"the forecast needs at most {recommended} over the look-ahead"
    else:
        return metrics
    return why + (f"; metrics: {metrics}" if metrics else "")


def _before_metrics(
    spec: ScalingSpec, snapshot: ScalingSnapshot, history: ScalingHistory, now: float
) -> ScalingDecision | None:
    """Upstream decides these without looking at metrics: scaling disabled, out of bounds."""
    if snapshot.current_replicas == 0:
        message = "scaling is disabled since the replica count is 0"
        return _hold(snapshot, "ScalingDisabled", message, history)
    return _out_of_bounds(spec, snapshot, history, now)


def _metrics_hold(
    snapshot: ScalingSnapshot, proposal: _Proposal, history: ScalingHistory
) -> ScalingDecision | None:
    """Hold when no metric can be read, or when an unreadable one would let us scale down."""
    current = snapshot.current_replicas
    errors = "; ".join(proposal.errors)
    if proposal.recommended is None:
        message = f"kept {current}: cannot read any metric ({errors or 'no metrics configured'})"
    elif proposal.errors and proposal.recommended < current:
        message = (
            f"kept {current}: would scale down to {proposal.recommended} but a metric is "
            f"unreadable ({errors})"
        )
    else:
        return None
    return _hold(snapshot, "FailedGetMetrics", message, history, proposal.proposals)


def seeded(history: ScalingHistory, current: int, now: float,
           window_seconds: float) -> ScalingHistory:
    """`history` with the current size recommended `now` when scale-down stabilization is on:
    upstream's controller seeds its window so whenever it starts on a service (a new one, or
    any after its own restart, as it keeps no history across one), so a start never scales
    down at once."""
    if window_seconds <= 0:
        return history
    return replace(history, recommendations=(*history.recommendations,
                                             Recommendation(now, current)))


def decide(
    spec: ScalingSpec,
    snapshot: ScalingSnapshot,
    history: ScalingHistory,
    now: float,
    floor_replicas: int | None = None,
    ceiling_replicas: int | None = None,
    floor_source: str = FLOOR,
) -> ScalingDecision:
    """The replicas the workload should have now, why, and the history to store.

    The floor (from the forecast, or a healing scale-out: `floor_source`) and the forecast's
    ceiling (`with_forecast`) replace the metrics' proposal before
    stabilization, the behavior policies and min/max, which all still apply."""
    # Only a service that never decided before is new; a stored history whose entries all aged
    # out of the window (rows longer than the window, a long metrics outage) is not.
    fresh = not history.recommendations
    history = prune_history(spec, history, now)
    current = snapshot.current_replicas
    early = _before_metrics(spec, snapshot, history, now)
    if early is not None:
        return early
    bounds = ForecastBounds(floor_replicas, ceiling_replicas, floor_source)
    proposal = _propose_all(spec, snapshot, bounds)
    held = _metrics_hold(snapshot, proposal, history)
    if held is not None or proposal.recommended is None:
        return held or _hold(snapshot, "FailedGetMetrics", "no metrics", history)
    if fresh:  # a stored history makes this a no-op after the first decision
        history = seeded(history, current, now, spec.scale_down.stabilization_window_seconds)
    recommended = proposal.recommended
    stabilized = stabilize(spec, current, recommended, history, now)
    limited = apply_rate_and_bounds(spec, current, stabilized, history.scale_events, now)
    metrics = _describe_metrics(snapshot, proposal)
    why = _bound_why(proposal.driver, floor_source, recommended, metrics)
    reason, message = _explain(current, recommended, stabilized, limited, why)
    return ScalingDecision(
        desired_replicas=limited.replicas,
        reason=reason,
        message=message,
        proposals=proposal.proposals,
        limited=limited.reason is not None,
        able_to_scale=True,
        history=record_decision(spec, history, now, recommended, current, limited.replicas),
        recommended_replicas=recommended,
    )
