"""HPA v2's algorithm: tables mirroring the upstream controller tests, and its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.domain.scaling import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    MetricReading,
    Recommendation,
    ScaleEvent,
    ScalingHistory,
    ScalingPolicy,
    ScalingRules,
    ScalingSnapshot,
    ScalingSpec,
    apply_rate_and_bounds,
    compact_recommendations,
    decide,
    default_spec,
    propose_replicas,
    scale_down_limit,
    scale_up_limit,
    stabilize,
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


# --- the replica calculator, for a workload total -------------------------------------------


@pytest.mark.parametrize(
    ("snap", "tolerance", "expected"),
    [
        pytest.param(snapshot(3, 90.0), 0.1, 9, id="scale-up-to-total-over-target"),
        pytest.param(snapshot(3, 15.0), 0.1, 2, id="scale-down-to-total-over-target"),
        pytest.param(snapshot(3, 31.5), 0.1, 3, id="within-tolerance-above-holds"),
        pytest.param(snapshot(3, 27.5), 0.1, 3, id="within-tolerance-below-holds"),
        pytest.param(snapshot(3, 33.5), 0.1, 4, id="just-beyond-tolerance-scales-up"),
        pytest.param(snapshot(3, 31.5), 0.0, 4, id="zero-tolerance-scales-on-any-excess"),
        pytest.param(snapshot(5, 0.0), 0.1, 0, id="zero-load-proposes-zero"),
        pytest.param(
            snapshot(1, 1.1, target=0.1), 0.1, 11, id="float-quotient-is-not-rounded-up-twice"
        ),
        pytest.param(
            snapshot(5, 40.0, ready=3, unready=2),
            0.1,
            5,
            id="unready-pods-count-as-zero-and-flip-the-scale-up-to-a-hold",
        ),
        pytest.param(
            snapshot(5, 52.0, ready=3, unready=2),
            0.1,
            5,
            id="unready-pods-counted-as-zero-land-within-tolerance",
        ),
        pytest.param(
            snapshot(5, 150.0, ready=3, unready=2),
            0.1,
            15,
            id="unready-pods-do-not-stop-a-large-scale-up",
        ),
        pytest.param(
            snapshot(5, 10.0, ready=3, unready=2),
            0.1,
            1,
            id="unready-pods-are-ignored-on-scale-down",
        ),
        pytest.param(
            snapshot(5, 28.0, ready=3, unready=2),
            0.1,
            5,
            id="ready-pods-within-tolerance-hold-despite-unready",
        ),
        pytest.param(
            ScalingSnapshot(4, 0, 0, (reading(80.0),)),
            0.1,
            8,
            id="no-pod-counts-means-every-replica-is-ready",
        ),
        pytest.param(
            snapshot(5, 30.0, ready=2),
            0.1,
            5,
            id="pods-missing-from-the-count-never-turn-a-scale-up-into-a-scale-down",
        ),
        pytest.param(snapshot(3, None), 0.1, None, id="unreadable-metric-proposes-nothing"),
        pytest.param(snapshot(3, float("nan")), 0.1, None, id="nan-is-unreadable"),
        pytest.param(snapshot(3, -1.0), 0.1, None, id="negative-total-is-unreadable"),
        pytest.param(
            snapshot(3, 50.0, ready=0, unready=3),
            0.1,
            None,
            id="no-ready-pods-means-no-metrics-as-upstream",
        ),
    ],
)
def test_propose_replicas(snap: ScalingSnapshot, tolerance: float, expected: int | None) -> None:
    assert propose_replicas(snap.metrics[0], snap, tolerance) == expected


# --- behavior policies and bounds (upstream TestScalingWithRules) -------------------------------


@pytest.mark.parametrize(
    (
        "current",
        "desired",
        "min_r",
        "max_r",
        "up",
        "down",
        "up_events",
        "down_events",
        "expected",
        "reason",
    ),
    [
        pytest.param(5, 7, 3, 8, None, None, (), (), 7, None, id="within-range"),
        pytest.param(3, 1, 2, 8, None, None, (), (), 2, "TooFewReplicas", id="below-min"),
        pytest.param(
            20,
            1000,
            1,
            10,
            None,
            None,
            (),
            (),
            10,
            "TooManyReplicas",
            id="max-is-the-limit-when-below-the-scale-up-limit",
        ),
        pytest.param(
            100, 1000, 100, 150, None, None, (), (), 150, "TooManyReplicas", id="desired-above-max"
        ),
        pytest.param(
            3,
            1000,
            1,
            2000,
            rules(percent=1, percent_period=60),
            None,
            (),
            (),
            4,
            "ScaleUpLimitedByPolicy",
            id="one-percent-rounds-up-to-one-pod",
        ),
        pytest.param(
            1000,
            3,
            3,
            2000,
            None,
            rules(pods=20, pods_period=60),
            (),
            (),
            980,
            "ScaleDownLimitedByPolicy",
            id="pods-policy-limits-scale-down",
        ),
        pytest.param(
            10,
            50,
            1,
            1000,
            None,
            None,
            (),
            (),
            20,
            "ScaleUpLimitedByPolicy",
            id="default-scale-up-doubles",
        ),
        pytest.param(
            2,
            50,
            1,
            1000,
            None,
            None,
            (),
            (),
            6,
            "ScaleUpLimitedByPolicy",
            id="default-scale-up-adds-four-pods-when-small",
        ),
        pytest.param(
            10,
            500,
            1,
            1000,
            rules(100, 60, 100, 60),
            None,
            (),
            (),
            110,
            "ScaleUpLimitedByPolicy",
            id="pods-policy-larger-than-percent-policy",
        ),
        pytest.param(
            10,
            500,
            1,
            1000,
            rules(2, 60, 100, 60),
            None,
            (),
            (),
            20,
            "ScaleUpLimitedByPolicy",
            id="percent-policy-larger-than-pods-policy",
        ),
        pytest.param(
            10,
            500,
            1,
            1000,
            rules(2, 60, 100, 60, select="Min"),
            None,
            (),
            (),
            12,
            "ScaleUpLimitedByPolicy",
            id="select-min-takes-the-smaller-change-up",
        ),
        pytest.param(
            10,
            50,
            1,
            1000,
            rules(100, 60),
            None,
            (),
            (),
            50,
            None,
            id="large-pods-policy-does-not-limit",
        ),
        pytest.param(
            10,
            50,
            1,
            1000,
            rules(30, 60),
            None,
            (),
            (),
            40,
            "ScaleUpLimitedByPolicy",
            id="pods-policy-limits-scale-up",
        ),
        pytest.param(
            10,
            50,
            1,
            1000,
            rules(percent=200, percent_period=60),
            None,
            (),
            (),
            30,
            "ScaleUpLimitedByPolicy",
            id="percent-policy-limits-scale-up",
        ),
        pytest.param(
            10,
            50,
            1,
            1000,
            rules(4, 15, select="Disabled"),
            None,
            (),
            (),
            10,
            "ScaleUpDisabled",
            id="disabled-scale-up-holds",
        ),
        pytest.param(
            100,
            2,
            1,
            1000,
            None,
            rules(20, 60, 1, 60, 300),
            (),
            (),
            80,
            "ScaleDownLimitedByPolicy",
            id="scale-down-pods-larger-than-percent",
        ),
        pytest.param(
            100,
            2,
            1,
            1000,
            None,
            rules(2, 60, 1, 60, 300),
            (),
            (),
            98,
            "ScaleDownLimitedByPolicy",
            id="scale-down-percent-larger-than-pods",
        ),
        pytest.param(
            100,
            2,
            1,
            1000,
            None,
            rules(2, 60, 1, 60, 300, select="Min"),
            (),
            (),
            99,
            "ScaleDownLimitedByPolicy",
            id="select-min-takes-the-smaller-change-down",
        ),
        pytest.param(
            10,
            0,
            1,
            1000,
            None,
            rules(100, 60, window=300),
            (),
            (),
            1,
            "TooFewReplicas",
            id="large-pods-policy-limited-by-min",
        ),
        pytest.param(
            10,
            2,
            5,
            1000,
            None,
            rules(percent=100, percent_period=60),
            (),
            (),
            5,
            "TooFewReplicas",
            id="large-percent-policy-limited-by-min",
        ),
        pytest.param(
            10,
            2,
            1,
            1000,
            None,
            rules(5, 60),
            (),
            (),
            5,
            "ScaleDownLimitedByPolicy",
            id="pods-policy-limits-scale-down-small",
        ),
        pytest.param(
            10,
            5,
            1,
            1000,
            None,
            rules(percent=50, percent_period=60),
            (),
            (),
            5,
            None,
            id="percent-policy-exactly-allows-desired",
        ),
        pytest.param(
            10,
            2,
            1,
            1000,
            None,
            rules(4, 15, select="Disabled"),
            (),
            (),
            10,
            "ScaleDownDisabled",
            id="disabled-scale-down-holds",
        ),
        pytest.param(
            100,
            500,
            1,
            200,
            rules(300, 60),
            None,
            spread([1, 5, 9], 120),
            (),
            200,
            "TooManyReplicas",
            id="max-limits-large-pods-policy-with-events",
        ),
        pytest.param(
            100,
            500,
            1,
            1000,
            rules(5, 120),
            None,
            spread([1, 5, 9], 120),
            (),
            100,
            "ScaleUpLimitedByPolicy",
            id="recent-scale-ups-stop-further-scale-up",
        ),
        pytest.param(
            100,
            500,
            1,
            1000,
            rules(150, 120),
            None,
            spread([1, 5, 9], 120),
            (),
            235,
            "ScaleUpLimitedByPolicy",
            id="pods-policy-counts-from-period-start",
        ),
        pytest.param(
            100,
            500,
            1,
            1000,
            rules(percent=200, percent_period=120),
            None,
            spread([1, 5, 9], 120),
            (),
            255,
            "ScaleUpLimitedByPolicy",
            id="percent-policy-counts-from-period-start",
        ),
        pytest.param(
            100,
            500,
            1,
            1000,
            rules(150, 60),
            None,
            spread([1, 5, 9], 120),
            (),
            241,
            "ScaleUpLimitedByPolicy",
            id="only-events-within-the-period-count",
        ),
        pytest.param(
            6,
            24,
            1,
            1000,
            rules(percent=300, percent_period=300),
            None,
            spread([4], 120),
            spread([2], 120, -1),
            16,
            "ScaleUpLimitedByPolicy",
            id="scale-up-period-start-counts-ups-and-downs",
        ),
        pytest.param(
            10,
            5,
            1,
            1000,
            None,
            None,
            (),
            spread([1, 5, 9], 120, -1),
            5,
            None,
            id="default-scale-down-ignores-old-events",
        ),
        pytest.param(
            100,
            2,
            1,
            1000,
            None,
            rules(5, 120),
            (),
            spread([1, 5, 9], 120, -1),
            100,
            "ScaleDownLimitedByPolicy",
            id="recent-scale-downs-stop-further-scale-down",
        ),
        pytest.param(
            100,
            0,
            1,
            1000,
            None,
            rules(percent=50, percent_period=120),
            (),
            spread([2, 4, 6], 120, -1),
            56,
            "ScaleDownLimitedByPolicy",
            id="percent-scale-down-counts-from-period-start",
        ),
        pytest.param(
            10,
            1,
            1,
            1000,
            None,
            rules(percent=50, percent_period=180),
            spread([2], 120),
            spread([4], 120, -1),
            6,
            "ScaleDownLimitedByPolicy",
            id="scale-down-period-start-counts-ups-and-downs",
        ),
        pytest.param(
            10,
            5,
            1,
            1000,
            None,
            rules(percent=1000, percent_period=120),
            (),
            spread([10, 10, 10], 120, -1),
            5,
            None,
            id="huge-percent-scale-down-is-not-limited",
        ),
        pytest.param(
            100,
            0,
            5,
            1000,
            None,
            rules(130, 120),
            (),
            spread([1, 5, 9], 120, -1),
            5,
            "TooFewReplicas",
            id="min-limits-large-pods-policy-with-events",
        ),
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


# --- stabilization (upstream TestNormalizeDesiredReplicas / WithBehavior) -----------------------


def recs(*pairs: tuple[int, float]) -> ScalingHistory:
    return ScalingHistory(tuple(Recommendation(NOW - age, r) for r, age in pairs))


@pytest.mark.parametrize(
    ("history", "current", "recommended", "up_window", "expected"),
    [
        pytest.param(recs(), 100, 5, 0, 5, id="empty-history-scales-down-at-once"),
        pytest.param(recs((4, 120), (5, 60)), 5, 3, 0, 5, id="recent-higher-recommendation-holds"),
        pytest.param(recs((1, 120), (2, 60)), 5, 3, 0, 3, id="recent-lower-recommendations-allow"),
        pytest.param(recs((10, 600), (9, 540)), 5, 3, 0, 3, id="old-recommendations-are-ignored"),
        pytest.param(
            recs((10, 600), (4, 60), (5, 120), (9, 540)),
            5,
            3,
            0,
            5,
            id="highest-recommendation-within-window",
        ),
        pytest.param(recs((10, 300)), 5, 3, 0, 3, id="window-edge-is-excluded"),
        pytest.param(recs((5, 30), (3, 60)), 2, 8, 90, 3, id="scale-up-window-takes-the-lowest"),
        pytest.param(recs((2, 120)), 2, 8, 90, 8, id="scale-up-window-ignores-older"),
        pytest.param(recs((6, 30)), 4, 2, 0, 4, id="stabilized-never-overshoots-current"),
    ],
)
def test_stabilize(
    history: ScalingHistory, current: int, recommended: int, up_window: int, expected: int
) -> None:
    spec = ScalingSpec(1, 1000, rules(4, 15, window=up_window), DEFAULT_SCALE_DOWN)
    assert stabilize(spec, current, recommended, history, NOW) == expected


# --- the whole decision ------------------------------------------------------------------------

SPEC = default_spec(min_replicas=2, max_replicas=20)
WARM = recs((1, 200))  # a low recommendation: scale-down stabilization does not interfere


@pytest.mark.parametrize(
    ("snap", "history", "floor", "expected", "reason", "able"),
    [
        pytest.param(snapshot(4, 70.0), WARM, None, 7, "ScaleUp", True, id="scale-up"),
        pytest.param(snapshot(4, 30.0), WARM, None, 3, "ScaleDown", True, id="scale-down"),
        pytest.param(
            snapshot(4, 42.0), WARM, None, 4, "WithinTolerance", True, id="within-tolerance"
        ),
        pytest.param(
            snapshot(4, 200.0),
            WARM,
            None,
            8,
            "ScaleUpLimitedByPolicy",
            True,
            id="scale-up-limited-by-four-pods-policy",
        ),
        pytest.param(
            snapshot(10, 500.0), WARM, None, 20, "TooManyReplicas", True, id="clamped-to-max"
        ),
        pytest.param(snapshot(4, 0.0), WARM, None, 2, "TooFewReplicas", True, id="clamped-to-min"),
        pytest.param(
            snapshot(4, 30.0, 70.0), WARM, None, 7, "ScaleUp", True, id="largest-metric-wins"
        ),
        pytest.param(
            snapshot(4, 70.0, None),
            WARM,
            None,
            7,
            "ScaleUp",
            True,
            id="unreadable-metric-does-not-block-scale-up",
        ),
        pytest.param(
            snapshot(4, 10.0, None),
            WARM,
            None,
            4,
            "FailedGetMetrics",
            False,
            id="unreadable-metric-blocks-scale-down",
        ),
        pytest.param(
            snapshot(4, None, None),
            WARM,
            None,
            4,
            "FailedGetMetrics",
            False,
            id="all-metrics-unreadable-hold",
        ),
        pytest.param(
            snapshot(4, None),
            WARM,
            9,
            4,
            "FailedGetMetrics",
            False,
            id="a-forecast-does-not-replace-missing-metrics",
        ),
        pytest.param(
            snapshot(0, 90.0),
            WARM,
            None,
            0,
            "ScalingDisabled",
            False,
            id="zero-replicas-disables-scaling",
        ),
        pytest.param(
            snapshot(25, 10.0),
            WARM,
            None,
            20,
            "TooManyReplicas",
            True,
            id="above-max-returns-to-max-first",
        ),
        pytest.param(
            snapshot(1, 500.0),
            WARM,
            None,
            2,
            "TooFewReplicas",
            True,
            id="below-min-returns-to-min-first",
        ),
        pytest.param(
            snapshot(4, 20.0),
            recs((10, 600), (4, 60)),
            None,
            4,
            "ScaleDownStabilized",
            True,
            id="scale-down-stabilized",
        ),
        pytest.param(
            snapshot(10, 20.0),
            ScalingHistory(),
            None,
            10,
            "ScaleDownStabilized",
            True,
            id="fresh-history-never-scales-down-at-once",
        ),
        pytest.param(
            snapshot(4, 20.0), WARM, 6, 6, "ScaleUp", True, id="forecast-floor-raises-the-proposal"
        ),
        pytest.param(
            snapshot(4, 70.0),
            WARM,
            6,
            7,
            "ScaleUp",
            True,
            id="forecast-floor-below-the-metrics-changes-nothing",
        ),
        pytest.param(
            snapshot(4, 10.0, None),
            WARM,
            8,
            8,
            "ScaleUp",
            True,
            id="forecast-floor-may-scale-up-with-a-metric-missing",
        ),
    ],
)
def test_decide(
    snap: ScalingSnapshot,
    history: ScalingHistory,
    floor: int | None,
    expected: int,
    reason: str,
    able: bool,
) -> None:
    decision = decide(SPEC, snap, history, NOW, floor)
    assert (decision.desired_replicas, decision.reason, decision.able_to_scale) == (
        expected,
        reason,
        able,
    )
    assert str(expected) in decision.message


def test_decision_message_explains_with_the_numbers() -> None:
    decision = decide(SPEC, snapshot(4, 70.0), WARM, NOW)
    assert decision.message == "scaled to 7 from 4 because m0=70 (target 10/replica -> 7)"
    assert decision.proposals == (("m0", 7),)
    assert decision.recommended_replicas == 7


def test_failed_metrics_message_names_the_metric() -> None:
    decision = decide(SPEC, snapshot(4, 10.0, None), WARM, NOW)
    assert "m1: query failed" in decision.message
    assert decision.proposals == (("m0", 1), ("m1", None))


def test_history_records_recommendation_and_scale_event_and_prunes_old_ones() -> None:
    old = ScalingHistory((Recommendation(NOW - 301, 9),), (ScaleEvent(NOW - 16, 3),))
    decision = decide(SPEC, snapshot(4, 70.0), old, NOW)
    assert decision.history == ScalingHistory((Recommendation(NOW, 7),), (ScaleEvent(NOW, 3),))


def test_hold_on_failed_metrics_keeps_history_unchanged_but_pruned() -> None:
    history = ScalingHistory((Recommendation(NOW - 10, 5),), (ScaleEvent(NOW - 5, 1),))
    assert decide(SPEC, snapshot(4, None), history, NOW).history == history


def test_limited_flag_follows_the_policies() -> None:
    assert decide(SPEC, snapshot(4, 200.0), WARM, NOW).limited
    assert not decide(SPEC, snapshot(4, 70.0), WARM, NOW).limited


def test_consecutive_scale_ups_respect_the_period() -> None:
    spec = ScalingSpec(1, 1000, rules(4, 60), DEFAULT_SCALE_DOWN)
    first = decide(spec, snapshot(10, 1000.0), WARM, NOW)
    second = decide(spec, snapshot(first.desired_replicas, 1000.0), first.history, NOW + 30)
    third = decide(spec, snapshot(second.desired_replicas, 1000.0), second.history, NOW + 61)
    assert [first.desired_replicas, second.desired_replicas, third.desired_replicas] == [14, 14, 18]


# --- invariants ---------------------------------------------------------------------------------

policies = st.builds(
    ScalingPolicy, st.sampled_from(["Pods", "Percent"]), st.integers(1, 300), st.integers(1, 600)
)
scaling_rules = st.builds(
    ScalingRules,
    st.integers(0, 600),
    st.sampled_from(["Max", "Min", "Disabled"]),
    st.lists(policies, min_size=1, max_size=3).map(tuple),
)


@st.composite
def specs(draw: st.DrawFn) -> ScalingSpec:
    low = draw(st.integers(1, 50))
    high = draw(st.integers(low, 200))
    return ScalingSpec(low, high, draw(scaling_rules), draw(scaling_rules), draw(st.floats(0, 0.5)))


values = st.one_of(st.none(), st.floats(0, 5000, allow_nan=False))
histories = st.builds(
    ScalingHistory,
    st.lists(
        st.builds(Recommendation, st.floats(NOW - 900, NOW), st.integers(0, 300)), max_size=6
    ).map(tuple),
    st.lists(
        st.builds(ScaleEvent, st.floats(NOW - 900, NOW), st.integers(-50, 50)), max_size=6
    ).map(tuple),
)


@st.composite
def snapshots(draw: st.DrawFn) -> ScalingSnapshot:
    current = draw(st.integers(1, 250))
    unready = draw(st.integers(0, current))
    metrics = draw(
        st.lists(st.builds(reading, values, st.floats(0.5, 100)), min_size=1, max_size=3)
    )
    return ScalingSnapshot(current, current - unready, unready, tuple(metrics))


@settings(max_examples=150, deadline=None)
@given(specs(), snapshots(), histories, st.one_of(st.none(), st.integers(0, 400)))
def test_desired_is_always_within_bounds(
    spec: ScalingSpec, snap: ScalingSnapshot, history: ScalingHistory, floor: int | None
) -> None:
    decision = decide(spec, snap, history, NOW, floor)
    if decision.able_to_scale:
        assert spec.min_replicas <= decision.desired_replicas <= spec.max_replicas
    else:
        assert decision.desired_replicas == snap.current_replicas


@settings(max_examples=150, deadline=None)
@given(specs(), snapshots(), histories, st.one_of(st.none(), st.integers(0, 400)))
def test_never_scales_down_while_a_metric_is_unreadable(
    spec: ScalingSpec, snap: ScalingSnapshot, history: ScalingHistory, floor: int | None
) -> None:
    broken = (*snap.metrics, reading(None, name="broken"))
    snap = ScalingSnapshot(snap.current_replicas, snap.ready_pods, snap.unready_pods, broken)
    decision = decide(spec, snap, history, NOW, floor)
    in_bounds = spec.min_replicas <= snap.current_replicas <= spec.max_replicas
    if in_bounds:
        assert decision.desired_replicas >= snap.current_replicas


@settings(max_examples=150, deadline=None)
@given(specs(), snapshots(), histories, st.one_of(st.none(), st.integers(0, 400)))
def test_never_exceeds_the_policy_limits(
    spec: ScalingSpec, snap: ScalingSnapshot, history: ScalingHistory, floor: int | None
) -> None:
    current = snap.current_replicas
    if not spec.min_replicas <= current <= spec.max_replicas:
        return
    decision = decide(spec, snap, history, NOW, floor)
    events = history.scale_events
    assert decision.desired_replicas <= max(
        scale_up_limit(spec.scale_up, current, events, NOW), current
    )
    assert decision.desired_replicas >= min(
        scale_down_limit(spec.scale_down, current, events, NOW), current
    )


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
