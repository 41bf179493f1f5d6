"""What an AdaptiveService's conditions say after one sync: a pure function of its outcome."""

from __future__ import annotations

from dataclasses import dataclass

from adaptive_operator.domain.common.conditions import Condition
from adaptive_operator.domain.scaling.algorithm import MetricReading, ScalingDecision
from adaptive_operator.domain.scaling.writes import WriteCheck


@dataclass(frozen=True)
class Problem:
    reason: str  # CamelCase
    message: str


@dataclass(frozen=True)
class SyncOutcome:
    mode: str  # Active, DryRun or Paused
    decision: ScalingDecision | None  # None when nothing could be decided
    blocker: Problem | None = None  # the target is missing, another autoscaler owns it, ...
    metric_problem: Problem | None = None  # the first metric that could not be read
    all_metrics_failed: bool = False
    readings: tuple[MetricReading, ...] = ()
    conflict: Problem | None = None  # another client keeps changing the replicas: stand aside
    writes: WriteCheck | None = None  # what the target said about the last replica writes
    ready_pods: int | None = None  # the target's Ready pods as observed (for /metrics)


def metrics_condition(outcome: SyncOutcome) -> Condition:
    problem = outcome.metric_problem
    if problem is not None:
        return Condition("MetricsAvailable", "False", problem.reason, problem.message)
    if outcome.blocker is not None:
        return Condition("MetricsAvailable", "Unknown", "NotQueried",
                         "metrics are not read while scaling is blocked")
    return Condition("MetricsAvailable", "True", "AllMetricsRead", "every metric was read")


def active_condition(outcome: SyncOutcome) -> Condition:
    if outcome.blocker is not None:
        return Condition("ScalingActive", "False", outcome.blocker.reason, outcome.blocker.message)
    if outcome.conflict is not None:
        return Condition("ScalingActive", "False", outcome.conflict.reason,
                         outcome.conflict.message)
    if outcome.mode == "Paused":
        return Condition("ScalingActive", "False", "Paused",
                         "mode is Paused: the operator observes and holds the replicas")
    decision = outcome.decision
    if decision is None or outcome.all_metrics_failed or not decision.able_to_scale:
        message = decision.message if decision else "no metric could be read"
        return Condition("ScalingActive", "False", "FailedGetMetrics", message)
    if outcome.mode == "DryRun":
        return Condition("ScalingActive", "True", "DryRun",
                         f"recommends {decision.desired_replicas} replicas; mode is DryRun, "
                         "so nothing is changed")
    return Condition("ScalingActive", "True", "ValidMetricFound",
                     "the replica count is computed from the metrics")


def limited_condition(outcome: SyncOutcome) -> Condition:
    decision = outcome.decision
    if decision is not None and decision.limited:
        return Condition("ScalingLimited", "True", decision.reason, decision.message)
    return Condition("ScalingLimited", "False", "DesiredWithinRange",
                     "the desired count is within the bounds and policies")


def sync_conditions(outcome: SyncOutcome) -> list[Condition]:
    """MetricsAvailable, ScalingActive, ScalingLimited and the summary Ready."""
    metrics = metrics_condition(outcome)
    active = active_condition(outcome)
    limited = limited_condition(outcome)
    if active.status == "True" and metrics.status == "True":
        ready = Condition("Ready", "True", "Scaling" if outcome.mode == "Active" else outcome.mode,
                          active.message)
    else:
        broken = active if active.status != "True" else metrics
        ready = Condition("Ready", "False", broken.reason, broken.message)
    return [metrics, active, limited, ready]
