"""HPA v2's stabilization windows, behavior policies and min/max bounds, and the history they read.

Upstream: normalizeDesiredReplicasWithBehaviors, stabilizeRecommendationWithBehaviors,
convertDesiredReplicasWithBehaviorRate and the scale-event bookkeeping of the HPA controller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from adaptive_operator.domain.scaling.records import (
    Recommendation,
    ScaleEvent,
    ScalingHistory,
    ScalingRules,
    ScalingSpec,
    ceil_replicas,
)

_Timed = TypeVar("_Timed", Recommendation, ScaleEvent)

# --- stabilization and policies (normalizeDesiredReplicasWithBehaviors) ----------------------


def stabilize(
    spec: ScalingSpec, current: int, recommended: int, history: ScalingHistory, now: float
) -> int:
    """Scale-up: the lowest recommendation in its window; scale-down: the highest in its."""
    up_cutoff = now - spec.scale_up.stabilization_window_seconds
    down_cutoff = now - spec.scale_down.stabilization_window_seconds
    recs = history.recommendations
    # Generators over the window rather than a Python loop: the replay calls this per row.
    up = min((r.replicas for r in recs if r.time > up_cutoff), default=recommended)
    down = max((r.replicas for r in recs if r.time > down_cutoff), default=recommended)
    up, down = min(up, recommended), max(down, recommended)
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
class Limited:
    replicas: int
    reason: str | None = None
    detail: str = ""


def apply_rate_and_bounds(
    spec: ScalingSpec, current: int, stabilized: int, events: tuple[ScaleEvent, ...], now: float
) -> Limited:
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
            return Limited(bound, reason, detail)
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
            return Limited(bound, reason, detail)
    return Limited(stabilized)


# --- history ----------------------------------------------------------------------------------


def _within(records: tuple[_Timed, ...], cutoff: float) -> tuple[_Timed, ...]:
    """Records after the cutoff; the same tuple when none is older (the common case)."""
    if all(r.time > cutoff for r in records):
        return records
    return tuple(r for r in records if r.time > cutoff)


def prune_history(spec: ScalingSpec, history: ScalingHistory, now: float) -> ScalingHistory:
    """Keep only what can still matter: recommendations in a window, events in a period."""
    window = max(
        spec.scale_up.stabilization_window_seconds, spec.scale_down.stabilization_window_seconds
    )
    periods = [p.period_seconds for p in spec.scale_up.policies + spec.scale_down.policies]
    period = max(periods, default=0)
    recs = _within(history.recommendations, now - window)
    events = _within(history.scale_events, now - period)
    if recs is history.recommendations and events is history.scale_events:
        return history
    return ScalingHistory(recs, events)


def compact_recommendations(
    recommendations: tuple[Recommendation, ...], now: float, up_window: int
) -> tuple[Recommendation, ...]:
    """Drop the recommendations no later decision can see; decisions stay the same.

    Outside the scale-up window only the scale-down maximum reads a recommendation, and an
    older one at or below a newer one's replicas never sets that maximum (the newer one stays in
    the window at least as long). With short rows this keeps the stored history a few entries
    long instead of window / interval.
    """
    up_cutoff = now - up_window
    kept: list[Recommendation] = []
    highest = -1
    for rec in reversed(sorted(recommendations, key=lambda r: r.time)):
        if rec.time > up_cutoff or rec.replicas > highest:
            kept.append(rec)
            highest = max(highest, rec.replicas)
    kept.reverse()
    return tuple(kept)


def record_decision(
    spec: ScalingSpec,
    history: ScalingHistory,
    now: float,
    recommended: int,
    current: int,
    desired: int,
) -> ScalingHistory:
    events = history.scale_events
    if desired != current:
        events = (*events, ScaleEvent(now, desired - current))
    recs = (*history.recommendations, Recommendation(now, recommended))
    up_window = spec.scale_up.stabilization_window_seconds
    return ScalingHistory(compact_recommendations(recs, now, up_window), events)
