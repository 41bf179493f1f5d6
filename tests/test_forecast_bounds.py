"""The forecast's floor and ceiling in the scaling decision (scale-down on forecast)."""

from __future__ import annotations

import pytest

from adaptive_operator.domain.scaling.algorithm import (
    DEFAULT_SCALE_UP,
    ForecastBounds,
    ScalingHistory,
    ScalingSnapshot,
    ScalingSpec,
    decide,
    default_spec,
    with_forecast,
)
from scaling_builders import NOW, recs, rules, snapshot

SPEC = default_spec(min_replicas=2, max_replicas=20)
WARM = recs((1, 200))  # a low recommendation: scale-down stabilization does not interfere


@pytest.mark.parametrize(
    ("snap", "spec", "history", "ceiling", "expected", "reason"),
    [
        pytest.param(
            snapshot(10, 95.0),
            SPEC,
            WARM,
            6,
            6,
            "ScaleDown",
            id="ceiling-scales-down-what-the-metrics-would-hold",
        ),
        pytest.param(
            snapshot(10, 60.0),
            SPEC,
            WARM,
            4,
            4,
            "ScaleDown",
            id="ceiling-below-the-metrics-scale-down-goes-further",
        ),
        pytest.param(
            snapshot(10, 30.0),
            SPEC,
            WARM,
            5,
            3,
            "ScaleDown",
            id="ceiling-above-the-metrics-changes-nothing",
        ),
        pytest.param(
            snapshot(4, 70.0),
            SPEC,
            WARM,
            5,
            7,
            "ScaleUp",
            id="ceiling-never-cuts-a-scale-up-the-metrics-ask-for",
        ),
        pytest.param(
            snapshot(10, 95.0),
            SPEC,
            recs((10, 60)),
            6,
            10,
            "ScaleDownStabilized",
            id="ceiling-waits-for-the-stabilization-window",
        ),
        pytest.param(
            snapshot(10, 95.0),
            ScalingSpec(2, 20, DEFAULT_SCALE_UP, rules(1, 60)),
            WARM,
            6,
            9,
            "ScaleDownLimitedByPolicy",
            id="ceiling-within-the-scale-down-policy",
        ),
        pytest.param(
            snapshot(4, 40.0),
            SPEC,
            WARM,
            1,
            2,
            "TooFewReplicas",
            id="ceiling-below-min-replicas-stops-at-min",
        ),
        pytest.param(
            snapshot(10, 95.0, None),
            SPEC,
            WARM,
            6,
            10,
            "FailedGetMetrics",
            id="ceiling-never-scales-down-with-a-metric-unreadable",
        ),
    ],
)
def test_decide_with_a_forecast_ceiling(
    snap: ScalingSnapshot,
    spec: ScalingSpec,
    history: ScalingHistory,
    ceiling: int,
    expected: int,
    reason: str,
) -> None:
    decision = decide(spec, snap, history, NOW, None, ceiling)
    assert (decision.desired_replicas, decision.reason) == (expected, reason)


@pytest.mark.parametrize(
    ("reactive", "current", "bounds", "expected"),
    [
        pytest.param(5, 5, ForecastBounds(), (5, None), id="no-forecast"),
        pytest.param(5, 5, ForecastBounds(8, None), (8, "the forecast"), id="floor-above"),
        pytest.param(5, 5, ForecastBounds(3, None), (5, None), id="floor-below"),
        pytest.param(
            5,
            6,
            ForecastBounds(3, 3),
            (3, "the forecast's ceiling"),
            id="ceiling-lowers-a-scale-down",
        ),
        pytest.param(8, 6, ForecastBounds(3, 3), (8, None), id="ceiling-ignored-on-a-scale-up"),
        pytest.param(
            5, 5, ForecastBounds(7, 7), (7, "the forecast"), id="equal-bounds-above-act-as-floor"
        ),
    ],
)
def test_with_forecast(
    reactive: int, current: int, bounds: ForecastBounds, expected: tuple[int, str | None]
) -> None:
    assert with_forecast(reactive, current, bounds) == expected


def test_ceiling_decision_says_why() -> None:
    decision = decide(SPEC, snapshot(10, 95.0), WARM, NOW, 6, 6)
    assert decision.message == (
        "scaled to 6 from 10 because the forecast needs at most 6 over the look-ahead; "
        "metrics: m0=95 (target 10/replica -> 10)"
    )
