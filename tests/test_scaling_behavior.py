"""Stabilization, behavior policies and bounds: tables mirroring upstream horizontal_test.go."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.domain.scaling.algorithm import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Recommendation,
    ScaleEvent,
    ScalingHistory,
    ScalingRules,
    ScalingSpec,
    apply_rate_and_bounds,
    compact_recommendations,
    stabilize,
)
from scaling_builders import NOW, recs, rules, spread

# --- behavior policies and bounds (upstream TestScalingWithRules) -------------------------------


# fmt: off
@pytest.mark.parametrize(
    ("current", "desired", "min_r", "max_r", "up", "down", "up_events", "down_events", "expected",
    "reason"),
    [
        pytest.param(5, 7, 3, 8, None, None, (), (), 7, None,
                     id="within-range"),
        pytest.param(3, 1, 2, 8, None, None, (), (), 2, "TooFewReplicas",
                     id="below-min"),
        pytest.param(20, 1000, 1, 10, None, None, (), (), 10, "TooManyReplicas",
                     id="max-is-the-limit-when-below-the-scale-up-limit"),
        pytest.param(100, 1000, 100, 150, None, None, (), (), 150, "TooManyReplicas",
                     id="desired-above-max"),
        pytest.param(3, 1000, 1, 2000, rules(percent=1, percent_period=60), None, (), (), 4,
                     "ScaleUpLimitedByPolicy",
                     id="one-percent-rounds-up-to-one-pod"),
        pytest.param(1000, 3, 3, 2000, None, rules(pods=20, pods_period=60), (), (), 980,
                     "ScaleDownLimitedByPolicy",
                     id="pods-policy-limits-scale-down"),
        pytest.param(10, 50, 1, 1000, None, None, (), (), 20, "ScaleUpLimitedByPolicy",
                     id="default-scale-up-doubles"),
        pytest.param(2, 50, 1, 1000, None, None, (), (), 6, "ScaleUpLimitedByPolicy",
                     id="default-scale-up-adds-four-pods-when-small"),
        pytest.param(10, 500, 1, 1000, rules(100, 60, 100, 60), None, (), (), 110,
                     "ScaleUpLimitedByPolicy",
                     id="pods-policy-larger-than-percent-policy"),
        pytest.param(10, 500, 1, 1000, rules(2, 60, 100, 60), None, (), (), 20,
                     "ScaleUpLimitedByPolicy",
                     id="percent-policy-larger-than-pods-policy"),
        pytest.param(10, 500, 1, 1000, rules(2, 60, 100, 60, select="Min"), None, (), (), 12,
                     "ScaleUpLimitedByPolicy",
                     id="select-min-takes-the-smaller-change-up"),
        pytest.param(10, 50, 1, 1000, rules(100, 60), None, (), (), 50, None,
                     id="large-pods-policy-does-not-limit"),
        pytest.param(10, 50, 1, 1000, rules(30, 60), None, (), (), 40, "ScaleUpLimitedByPolicy",
                     id="pods-policy-limits-scale-up"),
        pytest.param(10, 50, 1, 1000, rules(percent=200, percent_period=60), None, (), (), 30,
                     "ScaleUpLimitedByPolicy",
                     id="percent-policy-limits-scale-up"),
        pytest.param(10, 50, 1, 1000, rules(4, 15, select="Disabled"), None, (), (), 10,
                     "ScaleUpDisabled",
                     id="disabled-scale-up-holds"),
        pytest.param(100, 2, 1, 1000, None, rules(20, 60, 1, 60, 300), (), (), 80,
                     "ScaleDownLimitedByPolicy",
                     id="scale-down-pods-larger-than-percent"),
        pytest.param(100, 2, 1, 1000, None, rules(2, 60, 1, 60, 300), (), (), 98,
                     "ScaleDownLimitedByPolicy",
                     id="scale-down-percent-larger-than-pods"),
        pytest.param(100, 2, 1, 1000, None, rules(2, 60, 1, 60, 300, select="Min"), (), (), 99,
                     "ScaleDownLimitedByPolicy",
                     id="select-min-takes-the-smaller-change-down"),
        pytest.param(10, 0, 1, 1000, None, rules(100, 60, window=300), (), (), 1, "TooFewReplicas",
                     id="large-pods-policy-limited-by-min"),
        pytest.param(10, 2, 5, 1000, None, rules(percent=100, percent_period=60), (), (), 5,
                     "TooFewReplicas",
                     id="large-percent-policy-limited-by-min"),
        pytest.param(10, 2, 1, 1000, None, rules(5, 60), (), (), 5, "ScaleDownLimitedByPolicy",
                     id="pods-policy-limits-scale-down-small"),
        pytest.param(10, 5, 1, 1000, None, rules(percent=50, percent_period=60), (), (), 5, None,
                     id="percent-policy-exactly-allows-desired"),
        pytest.param(10, 2, 1, 1000, None, rules(4, 15, select="Disabled"), (), (), 10,
                     "ScaleDownDisabled",
                     id="disabled-scale-down-holds"),
        pytest.param(100, 500, 1, 200, rules(300, 60), None, spread([1, 5, 9], 120), (), 200,
                     "TooManyReplicas",
                     id="max-limits-large-pods-policy-with-events"),
        pytest.param(100, 500, 1, 1000, rules(5, 120), None, spread([1, 5, 9], 120), (), 100,
                     "ScaleUpLimitedByPolicy",
                     id="recent-scale-ups-stop-further-scale-up"),
        pytest.param(100, 500, 1, 1000, rules(150, 120), None, spread([1, 5, 9], 120), (), 235,
                     "ScaleUpLimitedByPolicy",
                     id="pods-policy-counts-from-period-start"),
        pytest.param(100, 500, 1, 1000, rules(percent=200, percent_period=120), None, spread([1, 5,
                     9], 120), (), 255, "ScaleUpLimitedByPolicy",
                     id="percent-policy-counts-from-period-start"),
        pytest.param(100, 500, 1, 1000, rules(150, 60), None, spread([1, 5, 9], 120), (), 241,
                     "ScaleUpLimitedByPolicy",
                     id="only-events-within-the-period-count"),
        pytest.param(6, 24, 1, 1000, rules(percent=300, percent_period=300), None, spread([4], 120),
                     spread([2], 120, -1), 16, "ScaleUpLimitedByPolicy",
                     id="scale-up-period-start-counts-ups-and-downs"),
        pytest.param(10, 5, 1, 1000, None, None, (), spread([1, 5, 9], 120, -1), 5, None,
                     id="default-scale-down-ignores-old-events"),
        pytest.param(100, 2, 1, 1000, None, rules(5, 120), (), spread([1, 5, 9], 120, -1), 100,
                     "ScaleDownLimitedByPolicy",
                     id="recent-scale-downs-stop-further-scale-down"),
        pytest.param(100, 0, 1, 1000, None, rules(percent=50, percent_period=120), (), spread([2, 4,
                     6], 120, -1), 56, "ScaleDownLimitedByPolicy",
                     id="percent-scale-down-counts-from-period-start"),
        pytest.param(10, 1, 1, 1000, None, rules(percent=50, percent_period=180), spread([2], 120),
                     spread([4], 120, -1), 6, "ScaleDownLimitedByPolicy",
                     id="scale-down-period-start-counts-ups-and-downs"),
        pytest.param(10, 5, 1, 1000, None, rules(percent=1000, percent_period=120), (), spread([10,
                     10, 10], 120, -1), 5, None,
                     id="huge-percent-scale-down-is-not-limited"),
        pytest.param(100, 0, 5, 1000, None, rules(130, 120), (), spread([1, 5, 9], 120, -1), 5,
                     "TooFewReplicas",
                     id="min-limits-large-pods-policy-with-events"),
    ],
)
def test_policies_and_bounds(
    current: int,
    desired: int,
    min_r: int,
    max_r: int,
    up: ScalingRules | None,
    down: ScalingRules | None,
    up_events: tuple[ScaleEvent, ...],
    down_events: tuple[ScaleEvent, ...],
    expected: int,
    reason: str | None,
) -> None:
    spec = ScalingSpec(min_r, max_r, up or DEFAULT_SCALE_UP, down or DEFAULT_SCALE_DOWN)
    limited = apply_rate_and_bounds(spec, current, desired, up_events + down_events, NOW)
    assert (limited.replicas, limited.reason) == (expected, reason)
# fmt: on


# --- stabilization (upstream TestNormalizeDesiredReplicas / WithBehavior) -----------------------


# fmt: off
@pytest.mark.parametrize(
    ("history", "current", "recommended", "up_window", "expected"),
    [
        pytest.param(recs(), 100, 5, 0, 5,
                     id="empty-history-scales-down-at-once"),
        pytest.param(recs((4, 120), (5, 60)), 5, 3, 0, 5,
                     id="recent-higher-recommendation-holds"),
        pytest.param(recs((1, 120), (2, 60)), 5, 3, 0, 3,
                     id="recent-lower-recommendations-allow"),
        pytest.param(recs((10, 600), (9, 540)), 5, 3, 0, 3,
                     id="old-recommendations-are-ignored"),
        pytest.param(recs((10, 600), (4, 60), (5, 120), (9, 540)), 5, 3, 0, 5,
                     id="highest-recommendation-within-window"),
        pytest.param(recs((10, 300)), 5, 3, 0, 3,
                     id="window-edge-is-excluded"),
        pytest.param(recs((5, 30), (3, 60)), 2, 8, 90, 3,
                     id="scale-up-window-takes-the-lowest"),
        pytest.param(recs((2, 120)), 2, 8, 90, 8,
                     id="scale-up-window-ignores-older"),
        pytest.param(recs((6, 30)), 4, 2, 0, 4,
                     id="stabilized-never-overshoots-current"),
    ],
)
def test_stabilize(
    history: ScalingHistory, current: int, recommended: int, up_window: int, expected: int
) -> None:
    spec = ScalingSpec(1, 1000, rules(4, 15, window=up_window), DEFAULT_SCALE_DOWN)
    assert stabilize(spec, current, recommended, history, NOW) == expected
# fmt: on


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.builds(Recommendation, st.floats(NOW - 900, NOW), st.integers(0, 30)), max_size=12),
    st.integers(0, 600),
    st.integers(0, 600),
    st.floats(0, 900),
    st.integers(1, 30),
    st.integers(0, 30),
)
def test_compacted_history_gives_the_same_stabilization_later(
    recs_: list[Recommendation],
    up_window: int,
    down_window: int,
    later: float,
    current: int,
    recommended: int,
) -> None:
    spec = ScalingSpec(1, 100, rules(4, 15, window=up_window), rules(4, 15, window=down_window))
    full = ScalingHistory(tuple(recs_))
    compacted = ScalingHistory(compact_recommendations(full.recommendations, NOW, up_window))
    assert len(compacted.recommendations) <= len(full.recommendations)
    assert stabilize(spec, current, recommended, compacted, NOW + later) == stabilize(
        spec, current, recommended, full, NOW + later
    )


def test_compaction_keeps_only_a_descending_staircase_outside_the_up_window() -> None:
    history = tuple(
        Recommendation(NOW - age, r) for r, age in ((3, 50), (9, 40), (5, 30), (7, 20), (2, 10))
    )
    assert [r.replicas for r in compact_recommendations(history, NOW, 0)] == [9, 7, 2]
    assert [r.replicas for r in compact_recommendations(history, NOW, 25)] == [9, 7, 2]
    assert [r.replicas for r in compact_recommendations(history, NOW, 35)] == [9, 5, 7, 2]
