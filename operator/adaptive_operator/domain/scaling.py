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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
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


def ceil_replicas(x: float) -> int:
    return math.ceil(round(x, _CEIL_DIGITS))


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
    ready, unready = _counted_pods(snapshot)
    ratio = total / (target * ready)
    if unready > 0 and ratio > 1.0:
        ratio = total / (target * (ready + unready))
        if abs(1.0 - ratio) <= tolerance or ratio < 1.0:
            return current
    elif abs(1.0 - ratio) <= tolerance:
        return current
    proposal = ceil_replicas(total / target)
    # Rounding must never turn the direction around.
    if (ratio < 1.0 and proposal > current) or (ratio > 1.0 and proposal < current):
        return current
    return proposal


# --- stabilization and policies (normalizeDesiredReplicasWithBehaviors) ----------------------


def stabilize(
    spec: ScalingSpec, current: int, recommended: int, history: ScalingHistory, now: float
) -> int:
    """Scale-up: the lowest recommendation in its window; scale-down: the highest in its."""
    up_cutoff = now - spec.scale_up.stabilization_window_seconds
    down_cutoff = now - spec.scale_down.stabilization_window_seconds
    up = down = recommended
    for rec in history.recommendations:
        if rec.time > up_cutoff:
            up = min(up, rec.replicas)
        if rec.time > down_cutoff:
            down = max(down, rec.replicas)
    return min(max(current, up), down)


def _change_in_period(events: Iterable[ScaleEvent], now: float, period: int, sign: int) -> int:
    cutoff = now - period
    return sum(e.change * sign for e in events if e.time > cutoff and e.change * sign > 0)


def _period_start(current: int, events: tuple[ScaleEvent, ...], now: float, period: int) -> int:
    added = _change_in_period(events, now, period, +1)
    deleted = _change_in_period(events, now, period, -1)
    return current - added + deleted


def scale_up_limit(
    rules: ScalingRules, current: int, events: tuple[ScaleEvent, ...], now: float
) -> int:
    if rules.select_policy == "Disabled" or not rules.policies:
        return current
    pick: Callable[[int, int], int] = min if rules.select_policy == "Min" else max
    limits = []
    for policy in rules.policies:
        start = _period_start(current, events, now, policy.period_seconds)
        if policy.type == "Pods":
            limits.append(start + policy.value)
        else:
            limits.append(ceil_replicas(start * (1 + policy.value / 100)))
    result = limits[0]
    for limit in limits[1:]:
        result = pick(result, limit)
    # Until old scale-ups leave their period, do not scale up further (never below current).
    return max(result, current)


def scale_down_limit(
    rules: ScalingRules, current: int, events: tuple[ScaleEvent, ...], now: float
) -> int:
    if rules.select_policy == "Disabled" or not rules.policies:
        return current
    # For a scale-down the largest change is the smallest replica count.
    pick: Callable[[int, int], int] = max if rules.select_policy == "Min" else min
    limits = []
    for policy in rules.policies:
        start = _period_start(current, events, now, policy.period_seconds)
        if policy.type == "Pods":
            limits.append(start - policy.value)
        else:
            limits.append(int(start * (1 - policy.value / 100)))
    result = limits[0]
    for limit in limits[1:]:
        result = pick(result, limit)
    return min(result, current)


@dataclass(frozen=True)
class _Limited:
    replicas: int
    reason: str | None = None
    detail: str = ""


def apply_rate_and_bounds(
    spec: ScalingSpec, current: int, stabilized: int, events: tuple[ScaleEvent, ...], now: float
) -> _Limited:
    """convertDesiredReplicasWithBehaviorRate: the policies and the min/max bounds."""
    if stabilized > current:
        limit = scale_up_limit(spec.scale_up, current, events, now)
        if spec.max_replicas > limit:
            reason = (
                "ScaleUpDisabled"
                if spec.scale_up.select_policy == "Disabled"
                else "ScaleUpLimitedByPolicy"
            )
            bound, detail = limit, f"the scale-up policies allow at most {limit} now"
        else:
            bound, reason, detail = (
                spec.max_replicas,
                "TooManyReplicas",
                f"maxReplicas is {spec.max_replicas}",
            )
        if stabilized > bound:
            return _Limited(bound, reason, detail)
    elif stabilized < current:
        limit = scale_down_limit(spec.scale_down, current, events, now)
        if spec.min_replicas < limit:
            reason = (
                "ScaleDownDisabled"
                if spec.scale_down.select_policy == "Disabled"
                else "ScaleDownLimitedByPolicy"
            )
            bound, detail = limit, f"the scale-down policies allow at least {limit} now"
        else:
            bound, reason, detail = (
                spec.min_replicas,
                "TooFewReplicas",
                f"minReplicas is {spec.min_replicas}",
            )
        if stabilized < bound:
            return _Limited(bound, reason, detail)
    return _Limited(stabilized)


# --- history ----------------------------------------------------------------------------------


def prune_history(spec: ScalingSpec, history: ScalingHistory, now: float) -> ScalingHistory:
    """Keep only what can still matter: recommendations in a window, events in a period."""
    window = max(
        spec.scale_up.stabilization_window_seconds, spec.scale_down.stabilization_window_seconds
    )
    periods = [p.period_seconds for p in spec.scale_up.policies + spec.scale_down.policies]
    period = max(periods, default=0)
    recs = tuple(r for r in history.recommendations if r.time > now - window)
    events = tuple(e for e in history.scale_events if e.time > now - period)
    if len(recs) == len(history.recommendations) and len(events) == len(history.scale_events):
        return history
    return ScalingHistory(recs, events)


def _record(
    history: ScalingHistory, now: float, recommended: int, current: int, desired: int
) -> ScalingHistory:
    events = history.scale_events
    if desired != current:
        events = (*events, ScaleEvent(now, desired - current))
    return ScalingHistory((*history.recommendations, Recommendation(now, recommended)), events)


# --- the decision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Proposal:
    proposals: tuple[tuple[str, int | None], ...]
    errors: tuple[str, ...]
    recommended: int | None
    driver: str


def _propose_all(spec: ScalingSpec, snapshot: ScalingSnapshot, floor: int | None) -> _Proposal:
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
    if floor is not None and floor > replicas:
        replicas, driver = floor, "the forecast"
    return _Proposal(proposals, errors, replicas, driver)


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
    current: int, recommended: int, stabilized: int, limited: _Limited, why: str
) -> tuple[str, str]:
    desired = limited.replicas
    if limited.reason is not None:
        return (
            limited.reason,
            f"scaled to {desired} instead of {stabilized} because {limited.detail}; {why}",
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


def decide(
    spec: ScalingSpec,
    snapshot: ScalingSnapshot,
    history: ScalingHistory,
    now: float,
    floor_replicas: int | None = None,
) -> ScalingDecision:
    """The replicas the workload should have now, why, and the history to store."""
    history = prune_history(spec, history, now)
    current = snapshot.current_replicas
    if current == 0:
        return _hold(
            snapshot, "ScalingDisabled", "scaling is disabled since the replica count is 0", history
        )
    out = _out_of_bounds(spec, snapshot, history, now)
    if out is not None:
        return out
    proposal = _propose_all(spec, snapshot, floor_replicas)
    if proposal.recommended is None:
        why = "; ".join(proposal.errors) or "no metrics configured"
        return _hold(
            snapshot,
            "FailedGetMetrics",
            f"kept {current}: cannot read any metric ({why})",
            history,
            proposal.proposals,
        )
    if proposal.errors and proposal.recommended < current:
        return _hold(
            snapshot,
            "FailedGetMetrics",
            f"kept {current}: would scale down to {proposal.recommended} but a metric is "
            f"unreadable ({'; '.join(proposal.errors)})",
            history,
            proposal.proposals,
        )
    if not history.recommendations and spec.scale_down.stabilization_window_seconds > 0:
        # Upstream seeds a fresh window with the current size so that a (re)start never scales
        # down at once; a stored history makes this a no-op after the first decision.
        history = replace(history, recommendations=(Recommendation(now, current),))
    recommended = proposal.recommended
    stabilized = stabilize(spec, current, recommended, history, now)
    limited = apply_rate_and_bounds(spec, current, stabilized, history.scale_events, now)
    why = _describe_metrics(snapshot, proposal)
    if proposal.driver == "the forecast":
        why = f"the forecast asks for at least {recommended}" + (f"; metrics: {why}" if why else "")
    reason, message = _explain(current, recommended, stabilized, limited, why)
    return ScalingDecision(
        desired_replicas=limited.replicas,
        reason=reason,
        message=message,
        proposals=proposal.proposals,
        limited=limited.reason is not None,
        able_to_scale=True,
        history=_record(history, now, recommended, current, limited.replicas),
        recommended_replicas=recommended,
    )
