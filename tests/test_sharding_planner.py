"""The slot planner: balanced, minimal, every slot owned, deterministic."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.domain.sharding.slots import (
    Move,
    apply_moves,
    group_moves,
    initial_assignment,
    is_balanced,
    minimum_moves,
    plan,
    quotas,
    ranges_of,
    shard_counts,
    validate_assignment,
)


def moved(before: Sequence[int], after: Sequence[int]) -> int:
    return sum(1 for b, a in zip(before, after, strict=True) if b != a)


def brute_force_minimum(before: Sequence[int], shards_to: int) -> int:
    """Fewest changed slots over every balanced assignment: independent of the planner's proof."""
    return min(
        moved(before, candidate)
        for candidate in itertools.product(range(shards_to), repeat=len(before))
        if is_balanced(candidate, shards_to)
    )


@pytest.mark.parametrize(
    ("shards", "slots", "expected"),
    [
        pytest.param(1, 4, (0, 0, 0, 0), id="one-shard-owns-everything"),
        pytest.param(3, 10, (0, 0, 0, 0, 1, 1, 1, 2, 2, 2), id="first-shard-takes-the-remainder"),
        pytest.param(4, 2, (0, 1), id="more-shards-than-slots-leaves-shards-empty"),
    ],
)
def test_initial_assignment_is_contiguous_and_balanced(
    shards: int, slots: int, expected: tuple[int, ...]
) -> None:
    assert initial_assignment(shards, slots) == expected


@pytest.mark.parametrize(
    ("shards", "slots"),
    [pytest.param(0, 10, id="no-shards"), pytest.param(2, 0, id="no-slots")],
)
def test_initial_assignment_refuses_empty_sizes(shards: int, slots: int) -> None:
    with pytest.raises(ValueError):
        initial_assignment(shards, slots)


def test_redis_sized_initial_assignment_has_contiguous_ranges() -> None:
    expected = [(0, 5462, 0), (5462, 10923, 1), (10923, 16384, 2)]
    assert ranges_of(initial_assignment(3, 16384)) == expected


@pytest.mark.parametrize(
    ("before", "shards_to", "after", "moves"),
    [
        pytest.param(
            (0, 0, 0, 0, 1, 1, 1, 2, 2, 2), 4, (0, 0, 0, 3, 1, 1, 1, 2, 2, 3),
            [Move(3, 4, 0, 3), Move(9, 10, 2, 3)],
            id="scale-up-takes-the-excess-of-the-largest-shards",
        ),
        pytest.param(
            (0, 0, 1, 1, 2, 2), 2, (0, 0, 1, 1, 0, 1),
            [Move(4, 5, 2, 0), Move(5, 6, 2, 1)],
            id="scale-down-empties-the-highest-shard",
        ),
        pytest.param(
            (0, 0, 1, 1), 2, (0, 0, 1, 1), [], id="same-size-moves-nothing",
        ),
        pytest.param(
            (1, 1, 1, 1), 2, (1, 1, 0, 0), [Move(2, 4, 1, 0)],
            id="unbalanced-input-gets-balanced-keeping-the-lowest-slots",
        ),
        pytest.param(
            (0, 0, 0, 1, 1, 2), 2, (0, 0, 0, 1, 1, 1), [Move(5, 6, 2, 1)],
            id="larger-quota-goes-to-the-shard-keeping-more",
        ),
    ],
)
def test_plan_table(
    before: tuple[int, ...], shards_to: int, after: tuple[int, ...], moves: list[Move]
) -> None:
    result = plan(before, shards_to)
    assert result.after == after
    assert list(result.moves) == moves
    assert result.slots_moved == minimum_moves(before, shards_to)


def test_quota_ties_go_to_the_lower_shard() -> None:
    assert quotas((0, 1, 2, 3, 4), 2) == [3, 2]


@pytest.mark.parametrize(
    ("before", "shards_to"),
    [
        pytest.param((), 2, id="no-slots"),
        pytest.param((0, -1), 2, id="negative-shard"),
        pytest.param((0, 1), 0, id="zero-target-shards"),
        pytest.param((0, True), 2, id="boolean-is-not-a-shard"),
        pytest.param((0, 1.0), 2, id="float-is-not-a-shard"),
    ],
)
def test_plan_refuses_bad_input(before: tuple[int, ...], shards_to: int) -> None:
    with pytest.raises(ValueError):
        plan(before, shards_to)


def test_group_moves_needs_equal_lengths() -> None:
    with pytest.raises(ValueError, match="slots"):
        group_moves((0, 1), (0,))


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(Move(0, 1, 1, 0), id="source-does-not-own-the-slot"),
        pytest.param(Move(1, 5, 0, 1), id="range-beyond-the-slots"),
        pytest.param(Move(1, 1, 0, 1), id="empty-range"),
    ],
)
def test_apply_moves_refuses_inconsistent_moves(move: Move) -> None:
    with pytest.raises(ValueError):
        apply_moves((0, 0, 1), [move])


@pytest.mark.parametrize(
    ("assignment", "shards", "balanced"),
    [
        pytest.param((0, 1, 0, 1), 2, True, id="even"),
        pytest.param((0, 0, 0, 1), 2, False, id="counts-differ-by-two"),
        pytest.param((0, 1, 2), 2, False, id="slot-owned-by-a-removed-shard"),
        pytest.param((0, 1), 3, True, id="more-shards-than-slots"),
    ],
)
def test_is_balanced(assignment: tuple[int, ...], shards: int, balanced: bool) -> None:
    assert is_balanced(assignment, shards) is balanced


def test_validate_assignment_accepts_a_gap_in_shard_ids() -> None:
    validate_assignment([0, 2, 2])


assignments = st.integers(1, 9).flatmap(
    lambda shards: st.lists(st.integers(0, shards - 1), min_size=1, max_size=200)
)


@settings(max_examples=150, deadline=None)
@given(before=assignments, shards_to=st.integers(1, 12))
def test_plan_is_balanced_minimal_and_consistent(before: list[int], shards_to: int) -> None:
    result = plan(before, shards_to)
    assert is_balanced(result.after, shards_to)  # also: every slot owned by a live shard
    assert len(result.after) == len(before)
    assert result.slots_moved == moved(before, result.after) == minimum_moves(before, shards_to)
    assert apply_moves(before, result.moves) == result.after
    assert plan(list(before), shards_to) == result  # deterministic


@settings(max_examples=60, deadline=None)
@given(
    before=st.integers(1, 3).flatmap(
        lambda k: st.lists(st.integers(0, k - 1), min_size=1, max_size=6)
    ),
    shards_to=st.integers(1, 3),
)
def test_minimum_matches_exhaustive_search(before: list[int], shards_to: int) -> None:
    assert minimum_moves(before, shards_to) == brute_force_minimum(before, shards_to)


@settings(max_examples=60, deadline=None)
@given(before=assignments, shards_to=st.integers(1, 12))
def test_moves_are_maximal_runs_in_slot_order(before: list[int], shards_to: int) -> None:
    moves = plan(before, shards_to).moves
    for first, second in itertools.pairwise(moves):
        assert first.end <= second.start
        touching = first.end == second.start
        assert not (touching and (first.source, first.target) == (second.source, second.target))


@settings(max_examples=40, deadline=None)
@given(
    slots=st.integers(1, 2000),
    chain=st.lists(st.integers(1, 16), min_size=2, max_size=6),
)
def test_chains_of_resizes_stay_balanced_and_minimal(slots: int, chain: list[int]) -> None:
    assignment = initial_assignment(chain[0], slots)
    for shards_to in chain[1:]:
        result = plan(assignment, shards_to)
        assert result.slots_moved == minimum_moves(assignment, shards_to)
        assert is_balanced(result.after, shards_to)
        assignment = result.after


@settings(max_examples=40, deadline=None)
@given(shards=st.integers(1, 20), grow=st.integers(1, 20), slots=st.integers(1, 5000))
def test_growing_from_balanced_moves_only_what_new_shards_need(
    shards: int, grow: int, slots: int
) -> None:
    # From a balanced start nobody's slots need reshuffling except to fill the new shards.
    result = plan(initial_assignment(shards, slots), shards + grow)
    new_shards = shard_counts(result.after, shards + grow)[shards:]
    assert result.slots_moved == sum(new_shards)
