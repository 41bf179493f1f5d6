"""Conditions of an AdaptiveService after a sync, and their transition times."""

from __future__ import annotations

import pytest

from adaptive_operator.domain.common.conditions import Condition, merge_conditions
from adaptive_operator.domain.common.times import timestamp
from adaptive_operator.domain.scaling.algorithm import ScalingDecision, ScalingHistory
from adaptive_operator.domain.scaling.status import Problem, SyncOutcome, sync_conditions


def decision(replicas: int = 3, *, limited: bool = False, able: bool = True,
             reason: str = "ScaleUp") -> ScalingDecision:
    return ScalingDecision(replicas, reason, f"scaled to {replicas}", (("rps", replicas),),
                           limited, able, ScalingHistory())


def by_type(outcome: SyncOutcome) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in sync_conditions(outcome)}


@pytest.mark.parametrize(("outcome", "expected"), [
    pytest.param(SyncOutcome("Active", decision()), {
        "MetricsAvailable": ("True", "AllMetricsRead"),
        "ScalingActive": ("True", "ValidMetricFound"),
        "ScalingLimited": ("False", "DesiredWithinRange"),
        "Ready": ("True", "Scaling")}, id="healthy-active-service-is-ready"),
    pytest.param(SyncOutcome("DryRun", decision()), {
        "ScalingActive": ("True", "DryRun"), "Ready": ("True", "DryRun")},
        id="dry-run-is-active-and-says-so"),
    pytest.param(SyncOutcome("Paused", decision()), {
        "ScalingActive": ("False", "Paused"), "Ready": ("False", "Paused")},
        id="paused-holds-and-is-not-ready"),
    pytest.param(SyncOutcome("Active", decision(limited=True, reason="TooManyReplicas")), {
        "ScalingLimited": ("True", "TooManyReplicas"), "Ready": ("True", "Scaling")},
        id="limited-by-max-is-still-ready"),
    pytest.param(SyncOutcome("Active", None, blocker=Problem("ConflictingAutoscaler", "hpa x")), {
        "ScalingActive": ("False", "ConflictingAutoscaler"),
        "MetricsAvailable": ("Unknown", "NotQueried"),
        "Ready": ("False", "ConflictingAutoscaler")}, id="another-autoscaler-blocks"),
    pytest.param(SyncOutcome("Active", decision(able=False, reason="FailedGetMetrics"),
                             metric_problem=Problem("PrometheusUnreachable", "down"),
                             all_metrics_failed=True), {
        "MetricsAvailable": ("False", "PrometheusUnreachable"),
        "ScalingActive": ("False", "FailedGetMetrics"),
        "Ready": ("False", "FailedGetMetrics")}, id="prometheus-down-stops-scaling"),
    pytest.param(SyncOutcome("Active", decision(), metric_problem=Problem("QueryFailed", "bad")), {
        "MetricsAvailable": ("False", "QueryFailed"),
        "ScalingActive": ("True", "ValidMetricFound"),
        "Ready": ("False", "QueryFailed")}, id="one-bad-metric-of-several-is-not-ready"),
])
def test_conditions_after_a_sync(outcome: SyncOutcome,
                                 expected: dict[str, tuple[str, str]]) -> None:
    got = by_type(outcome)
    for kind, value in expected.items():
        assert got[kind] == value, kind


def test_transition_time_moves_only_when_status_changes() -> None:
    first = merge_conditions([], [Condition("Ready", "True", "Scaling", "ok")], 1000.0, 1)
    same = merge_conditions(first, [Condition("Ready", "True", "Scaling", "still ok")], 2000.0, 2)
    flipped = merge_conditions(same, [Condition("Ready", "False", "Paused", "paused")], 3000.0, 2)
    assert same[0]["lastTransitionTime"] == timestamp(1000.0)
    assert same[0]["message"] == "still ok" and same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] == timestamp(3000.0)


def test_other_conditions_are_kept() -> None:
    kept = {"type": "ForecastReliable", "status": "True", "reason": "X", "message": "",
            "lastTransitionTime": timestamp(0)}
    merged = merge_conditions([kept], [Condition("Ready", "True", "Scaling", "ok")], 10.0, 1)
    assert [c["type"] for c in merged] == ["ForecastReliable", "Ready"]
