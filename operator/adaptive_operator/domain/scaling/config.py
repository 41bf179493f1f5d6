"""From the AdaptiveService models to the scaling domain's records, and the history back to status.

HPA's defaults are applied here, per direction, for whatever the user left out; the CRD leaves
those fields empty so that a later change of default reaches existing objects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from adaptive_operator.api import adaptive_service as api
from adaptive_operator.api.base import MAX_HISTORY_RECORDS
from adaptive_operator.domain.scaling.algorithm import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Recommendation,
    ScaleEvent,
    ScalingHistory,
    ScalingPolicy,
    ScalingRules,
    ScalingSpec,
    seeded,
)

_T = TypeVar("_T", Recommendation, ScaleEvent)


def rules_from_model(model: api.ScalingRules | None, default: ScalingRules) -> ScalingRules:
    if model is None:
        return default
    window = model.stabilization_window_seconds
    if window is None:
        window = default.stabilization_window_seconds
    policies = default.policies
    if model.policies is not None:
        policies = tuple(ScalingPolicy(p.type, p.value, p.period_seconds) for p in model.policies)
    return ScalingRules(
        stabilization_window_seconds=window,
        select_policy=model.select_policy or default.select_policy,
        policies=policies,
    )


def spec_from_model(spec: api.AdaptiveServiceSpec) -> ScalingSpec:
    behavior = spec.behavior or api.Behavior()
    return ScalingSpec(
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        scale_up=rules_from_model(behavior.scale_up, DEFAULT_SCALE_UP),
        scale_down=rules_from_model(behavior.scale_down, DEFAULT_SCALE_DOWN),
        tolerance=spec.tolerance,
    )


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _newest(records: tuple[_T, ...]) -> list[_T]:
    """The newest MAX_HISTORY_RECORDS records: status must stay small (an older one dropped
    only makes a later decision forget it, never fail)."""
    return sorted(records, key=lambda r: r.time)[-MAX_HISTORY_RECORDS:]


def history_to_status(history: ScalingHistory) -> api.StabilizationHistory:
    return api.StabilizationHistory(
        recommendations=[
            api.RecommendationRecord(time=_moment(r.time), replicas=r.replicas)
            for r in _newest(history.recommendations)
        ],
        scale_events=[
            api.ScaleEventRecord(time=_moment(e.time), change=e.change)
            for e in _newest(history.scale_events)
        ],
    )


def history_from_status(status: api.StabilizationHistory | None) -> ScalingHistory:
    """The stored history (after an operator restart); an empty one when there is none."""
    if status is None:
        return ScalingHistory()
    return ScalingHistory(
        recommendations=tuple(
            Recommendation(_seconds(r.time), r.replicas) for r in status.recommendations
        ),
        scale_events=tuple(ScaleEvent(_seconds(e.time), e.change) for e in status.scale_events),
    )


def restored_history(status: api.StabilizationHistory | None, current: int, now: float,
                     window_seconds: float) -> ScalingHistory:
    """The stored history after a restart or a handover, seeded as upstream's controller
    seeds its window on every start (`seeded`), so a restart never scales down within the
    window; with it, status needs the history only when a value or a scale event changes, not
    each new time of a repeated value (what that loses: a value above the current count may
    leave the window early by the time since it was last written)."""
    return seeded(history_from_status(status), current, now, window_seconds)


def history_changed(written: ScalingHistory | None, new: ScalingHistory) -> bool:
    """Whether status must get `new`, given the history last written there: a scale event, or
    a value recommended or gone from the windows (the limits a restarted operator must see).
    A recommendation repeating a value only moves that value's time, which a restart's seed
    stands in for (a write per service and minute for it was nearly all the operator's status
    writes in steady state: an API call each, and a watch event for every replica)."""
    if written is None or written.scale_events != new.scale_events:
        return True
    return {r.replicas for r in written.recommendations} != {
        r.replicas for r in new.recommendations}
