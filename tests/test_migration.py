"""Migration bookkeeping: one owner per slot at every epoch, shards removed only when unused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.domain.sharding.migration import (
    RoutingState,
    backoff_seconds,
    begin_migration,
    complete_migration,
    fail_migration,
    is_removable,
    next_migrations,
    removable_shards,
)
from adaptive_operator.domain.sharding.slots import Move, initial_assignment, plan


def three_to_two() -> tuple[RoutingState, tuple[Move, ...]]:
    before = initial_assignment(3, 9)
    return RoutingState(1, before), plan(before, 2).moves


def test_completed_migration_changes_owner_and_epoch() -> None:
    state, moves = three_to_two()
    running = begin_migration(state, moves[0])
    assert running.epoch == 2
    assert running.owners == state.owners  # the source still owns the range while it runs
    assert running.migrating == (moves[0],)
    done = complete_migration(running, moves[0])
    assert done.epoch == 3
    assert done.migrating == ()
    assert all(done.owners[s] == moves[0].target for s in range(moves[0].start, moves[0].end))


def test_failed_migration_leaves_the_source_owner() -> None:
    state, moves = three_to_two()
    failed = fail_migration(begin_migration(state, moves[0]), moves[0])
    assert failed.owners == state.owners
    assert failed.migrating == ()
    assert failed.epoch == 3


def test_shard_is_removable_only_when_empty_and_not_in_migration() -> None:
    state, moves = three_to_two()
    assert not is_removable(state, 2)  # still owns slots
    for move in moves[:-1]:
        state = complete_migration(begin_migration(state, move), move)
    last = moves[-1]
    running = begin_migration(state, last)
    assert not is_removable(running, 2)
    done = complete_migration(running, last)
    assert done.owned_by(2) == 0
    assert is_removable(done, 2)
    assert removable_shards(done, [0, 1, 2], 2) == [2]


def test_empty_target_of_a_running_migration_is_not_removable() -> None:
    state = RoutingState(0, (0, 0, 1, 1))
    running = begin_migration(state, Move(1, 2, 0, 2))
    assert not is_removable(running, 2)


@pytest.mark.parametrize(
    ("move", "message"),
    [
        pytest.param(Move(0, 1, 1, 0), "owned", id="source-does-not-own-the-range"),
        pytest.param(Move(1, 3, 0, 2), "overlaps", id="range-already-migrating"),
    ],
)
def test_begin_refuses_inconsistent_moves(move: Move, message: str) -> None:
    state = begin_migration(RoutingState(0, (0, 0, 0, 1)), Move(2, 3, 0, 1))
    with pytest.raises(ValueError, match=message):
        begin_migration(state, move)


def test_finishing_a_migration_that_is_not_running_is_refused() -> None:
    with pytest.raises(ValueError, match="not in migration"):
        complete_migration(RoutingState(0, (0, 1)), Move(0, 1, 0, 1))


def test_next_migrations_respects_concurrency_and_progress() -> None:
    moves = [Move(i, i + 1, 0, 1) for i in range(5)]
    assert next_migrations(moves, [], [], 2) == moves[:2]
    assert next_migrations(moves, moves[:1], moves[1:2], 2) == moves[2:3]
    assert next_migrations(moves, [], moves[:3], 2) == []


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        pytest.param(1, 10.0, id="first-retry-waits-the-base"),
        pytest.param(3, 40.0, id="doubles-each-retry"),
        pytest.param(1000, 600.0, id="capped"),
    ],
)
def test_backoff(attempt: int, expected: float) -> None:
    assert backoff_seconds(attempt, 10.0) == expected


def test_backoff_counts_from_one() -> None:
    with pytest.raises(ValueError):
        backoff_seconds(0, 10.0)


@settings(max_examples=60, deadline=None)
@given(
    chain=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    outcomes=st.lists(st.booleans(), min_size=1, max_size=30),
)
def test_every_epoch_has_one_owner_per_slot(chain: list[int], outcomes: list[bool]) -> None:
    """Resizes carried out move by move, some failing and being retried."""
    state = RoutingState(0, initial_assignment(chain[0], 60))
    results = iter(outcomes * 10)
    for shards_to in chain[1:]:
        target = plan(state.owners, shards_to).after
        while state.owners != target:
            move = plan(state.owners, shards_to).moves[0]
            running = begin_migration(state, move)
            succeeded = next(results, True)
            state = (complete_migration if succeeded else fail_migration)(running, move)
            assert len(state.owners) == 60
            assert state.epoch > running.epoch
        assert all(is_removable(state, s) for s in range(shards_to, max(chain) + 1))
