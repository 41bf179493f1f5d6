"""Builders shared by the scaling tests (upstream-style rules and evenly spread events)."""

from __future__ import annotations

from adaptive_operator.domain.scaling.algorithm import (
    MetricReading,
    Recommendation,
    ScaleEvent,
    ScalingHistory,
    ScalingPolicy,
    ScalingRules,
    ScalingSnapshot,
)

NOW = 10_000.0


def reading(value: float | None, target: float = 10.0, name: str = "rps") -> MetricReading:
    return MetricReading(name, value, target, None if value is not None else "query failed")


def snapshot(
    current: int,
    *values: float | None,
    ready: int | None = None,
    unready: int = 0,
    target: float = 10.0,
) -> ScalingSnapshot:
    metrics = tuple(reading(v, target, f"m{i}") for i, v in enumerate(values))
    return ScalingSnapshot(current, current - unready if ready is None else ready, unready, metrics)


def rules(
    pods: int = 0,
    pods_period: int = 0,
    percent: int = 0,
    percent_period: int = 0,
    window: int = 0,
    select: str = "Max",
) -> ScalingRules:
    """Like upstream's generateScalingRules: a policy for every non-zero value."""
    policies = []
    if pods:
        policies.append(ScalingPolicy("Pods", pods, pods_period))
    if percent:
        policies.append(ScalingPolicy("Percent", percent, percent_period))
    return ScalingRules(window, select, tuple(policies))  # type: ignore[arg-type]


def spread(changes: list[int], period: int, sign: int = 1) -> tuple[ScaleEvent, ...]:
    """Like upstream's generateEventsUniformDistribution: events spread over the period."""
    segment = period / len(changes)
    return tuple(
        ScaleEvent(NOW - (period - segment * (i + 1) + segment / 2), sign * c)
        for i, c in enumerate(changes)
    )


def recs(*pairs: tuple[int, float]) -> ScalingHistory:
    return ScalingHistory(tuple(Recommendation(NOW - age, r) for r, age in pairs))
