"""Load-aware rebalancing: hot shards give slots to cold ones, with hysteresis and a cap."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.domain.sharding.rebalancing import (
    RebalancePolicy,
    imbalance,
    rebalance,
    shard_loads,
)
from adaptive_operator.domain.sharding.slots import apply_moves, initial_assignment, shard_counts


def predicted_loads(
    before: tuple[int, ...], after: tuple[int, ...], loads: list[float]
) -> list[float]:
    """Loads after the moves, with each shard's load spread evenly over its slots."""
    counts = shard_counts(before, len(loads))
    result = [0.0] * len(loads)
    for source, target in zip(before, after, strict=True):
        result[target] += loads[source] / counts[source]
    return result


@pytest.mark.parametrize(
    ("loads", "expected"),
    [
        pytest.param([1.0, 1.0, 1.0], 0.0, id="even-load"),
        pytest.param([3.0, 1.0], 0.5, id="hot-shard-half-above-mean"),
        pytest.param([0.0, 0.0], 0.0, id="no-load-is-not-imbalance"),
        pytest.param([], 0.0, id="no-shards"),
    ],
)
def test_imbalance(loads: list[float], expected: float) -> None:
    assert imbalance(loads) == pytest.approx(expected)


def test_below_threshold_nothing_moves() -> None:
    decision = rebalance(initial_assignment(2, 100), [1.1, 1.0], RebalancePolicy(0.2))
    assert not decision.triggered
    assert decision.plan.moves == ()
    assert "within" in decision.reason


def test_hot_shard_gives_slots_to_the_cold_one() -> None:
    before = initial_assignment(2, 100)
    decision = rebalance(before, [3.0, 1.0], RebalancePolicy(0.2, 0.1))
    assert decision.triggered
    assert all((m.source, m.target) == (0, 1) for m in decision.plan.moves)
    assert decision.predicted_imbalance <= 0.1 + 1e-9
    after_loads = predicted_loads(before, decision.plan.after, [3.0, 1.0])
    assert imbalance(after_loads) == pytest.approx(decision.predicted_imbalance)
    assert not decision.active


def test_hot_shard_gives_its_highest_slots_as_one_range() -> None:
    decision = rebalance(initial_assignment(2, 100), [3.0, 1.0], RebalancePolicy(0.2, 0.1))
    (move,) = decision.plan.moves
    assert move.end == 50


def test_cap_limits_moves_and_keeps_rebalancing_active() -> None:
    decision = rebalance(initial_assignment(2, 100), [3.0, 1.0], RebalancePolicy(0.2, 0.0, 5))
    assert decision.plan.slots_moved == 5
    assert decision.active


@pytest.mark.parametrize(
    ("active", "triggered"),
    [
        pytest.param(False, False, id="idle-stays-idle-between-target-and-threshold"),
        pytest.param(True, True, id="active-continues-down-to-the-target"),
    ],
)
def test_hysteresis(active: bool, triggered: bool) -> None:
    # imbalance 0.15: above the target 0.1, below the threshold 0.2
    policy = RebalancePolicy(0.2, 0.1)
    decision = rebalance(initial_assignment(2, 100), [1.15, 0.85], policy, active)
    assert decision.triggered is triggered


def test_a_single_hot_slot_cannot_be_split() -> None:
    decision = rebalance((0, 1, 1, 1), [10.0, 1.0], RebalancePolicy(0.2))
    assert decision.triggered
    assert decision.plan.moves == ()


@pytest.mark.parametrize(
    ("assignment", "loads"),
    [
        pytest.param((0, 1, 2), [1.0, 1.0], id="shard-without-load"),
        pytest.param((0, 1), [1.0, float("nan")], id="nan-load"),
        pytest.param((0, 1), [1.0, -1.0], id="negative-load"),
    ],
)
def test_bad_loads_are_refused(assignment: tuple[int, ...], loads: list[float]) -> None:
    with pytest.raises(ValueError):
        rebalance(assignment, loads, RebalancePolicy(0.2))


@pytest.mark.parametrize(
    ("threshold", "hysteresis", "cap"),
    [
        pytest.param(0.1, 0.2, 1, id="hysteresis-above-threshold"),
        pytest.param(-0.1, 0.0, 1, id="negative-threshold"),
        pytest.param(0.1, 0.0, -1, id="negative-cap"),
    ],
)
def test_bad_policies_are_refused(threshold: float, hysteresis: float, cap: int) -> None:
    with pytest.raises(ValueError):
        RebalancePolicy(threshold, hysteresis, cap)


@settings(max_examples=80, deadline=None)
@given(
    loads=st.lists(st.floats(0.0, 1000.0), min_size=1, max_size=8),
    slots_per_shard=st.integers(1, 40),
    cap=st.integers(0, 200),
    threshold=st.floats(0.0, 1.0),
)
def test_rebalancing_never_worsens_and_respects_the_cap(
    loads: list[float], slots_per_shard: int, cap: int, threshold: float
) -> None:
    before = initial_assignment(len(loads), len(loads) * slots_per_shard)
    decision = rebalance(before, loads, RebalancePolicy(threshold, threshold / 2, cap))
    assert decision.plan.slots_moved <= cap
    assert apply_moves(before, decision.plan.moves) == decision.plan.after
    assert set(decision.plan.after) <= set(range(len(loads)))
    after_loads = predicted_loads(before, decision.plan.after, loads)
    assert imbalance(after_loads) <= decision.imbalance + 1e-9
    assert imbalance(after_loads) == pytest.approx(decision.predicted_imbalance, abs=1e-9)


def vector(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"metric": {"shard": shard}, "value": [0, value]} for shard, value in pairs]


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        pytest.param(vector(("1", "2.5"), ("0", "1")), [1.0, 2.5], id="numbers-in-any-order"),
        pytest.param(vector(("cache-0", "1"), ("cache-1", "3")), [1.0, 3.0],
                     id="statefulset-names"),
        pytest.param(vector(("0", "1"), ("1", "1"), ("2", "9")), [1.0, 1.0],
                     id="shard-being-removed-is-ignored"),
    ],
)
def test_shard_loads_from_a_prometheus_vector(
    series: list[dict[str, Any]], expected: list[float]
) -> None:
    assert shard_loads(series, 2) == expected


@pytest.mark.parametrize(
    ("series", "message"),
    [
        pytest.param(vector(("0", "1")), r"no series for shards \[1\]", id="missing-shard"),
        pytest.param(vector(("0", "1"), ("0", "2"), ("1", "1")), "more than one",
                     id="duplicate-shard"),
        pytest.param([{"metric": {}, "value": [0, "1"]}], "no shard label", id="no-label"),
        pytest.param(vector(("0", "NaN"), ("1", "1")), "finite", id="nan-load"),
    ],
)
def test_unusable_load_data_is_refused(series: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        shard_loads(series, 2)
