"""One reconcile step of a ShardSet, and whole resizes driven step by step with simulated Jobs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.domain.common.conditions import replace_conditions
from adaptive_operator.domain.common.times import parse_time
from adaptive_operator.domain.sharding.migration import RoutingState
from adaptive_operator.domain.sharding.resharding import (
    Decision,
    JobObservation,
    ShardSetSnapshot,
    Target,
    decide,
)
from adaptive_operator.domain.sharding.slots import (
    Move,
    initial_assignment,
    is_balanced,
    minimum_moves,
)
from adaptive_operator.domain.sharding.status import status_for

SLOTS = 12


def snapshot(
    shards: int, routing: RoutingState | None = None, **changes: object
) -> ShardSetSnapshot:
    base = ShardSetSnapshot(
        shards=shards,
        slots=SLOTS,
        concurrency=1,
        backoff_limit=2,
        backoff_seconds=10.0,
        routing=routing,
        existing_shards=frozenset(range(shards)),
        ready_shards=frozenset(range(shards)),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def started(shards_from: int) -> RoutingState:
    return RoutingState(5, initial_assignment(shards_from, SLOTS))


def test_first_reconcile_publishes_the_initial_table_and_creates_shards() -> None:
    decision = decide(snapshot(3, existing_shards=frozenset()), now=0.0)
    assert decision.routing == RoutingState(1, initial_assignment(3, SLOTS))
    assert decision.create_shards == (0, 1, 2)
    assert decision.start_jobs == ()
    assert decision.settled


def test_scale_up_creates_the_new_shard_before_migrating_to_it() -> None:
    state = snapshot(4, started(3), existing_shards=frozenset({0, 1, 2}),
                     ready_shards=frozenset({0, 1, 2}))
    decision = decide(state, now=0.0)
    assert decision.create_shards == (3,)
    assert decision.start_jobs == ()  # shard 3 is not ready yet
    assert decision.pending_moves == 3


def test_ready_target_gets_one_migration_at_a_time() -> None:
    decision = decide(snapshot(4, started(3)), now=0.0)
    (move, attempt), = decision.start_jobs
    assert attempt == 1
    assert decision.routing.migrating == (move,)
    assert decision.routing.epoch == 6
    assert decision.routing.owners == started(3).owners  # still owned by the source


def test_concurrency_allows_several_migrations() -> None:
    decision = decide(snapshot(4, started(3), concurrency=5), now=0.0)
    assert len(decision.start_jobs) == 3


def in_flight(move: Move) -> RoutingState:
    return RoutingState(6, started(3).owners, (move,))


MOVE = Move(3, 4, 0, 3)


def test_succeeded_job_moves_ownership_and_is_cleaned_up() -> None:
    jobs = (JobObservation(MOVE, 1, "succeeded", 50.0),)
    decision = decide(snapshot(4, in_flight(MOVE), jobs=jobs), now=60.0)
    assert decision.routing.owners[3] == 3
    assert (MOVE, 1) in decision.delete_jobs
    assert MOVE not in decision.routing.migrating
    assert any("migrated" in event for event in decision.events)


def test_a_migration_marked_but_never_started_is_started_once() -> None:
    """Killed between writing the table and creating the Job: the move is started, once."""
    decision = decide(snapshot(4, in_flight(MOVE)), now=60.0)
    assert decision.start_jobs == ((MOVE, 1),)
    assert decision.routing.migrating == (MOVE,)
    assert any("resuming slots 3..3" in event for event in decision.events)
    running = (JobObservation(MOVE, 1, "running", None),)
    assert decide(snapshot(4, in_flight(MOVE), jobs=running), now=70.0).start_jobs == ()


@pytest.mark.parametrize(
    ("now", "start_jobs", "retry_in"),
    [
        pytest.param(55.0, (), 5.0, id="waits-for-the-backoff"),
        pytest.param(60.0, ((MOVE, 2),), None, id="retries-when-the-backoff-is-over"),
    ],
)
def test_failed_job_is_retried_after_backoff(
    now: float, start_jobs: tuple[tuple[Move, int], ...], retry_in: float | None
) -> None:
    jobs = (JobObservation(MOVE, 1, "failed", 50.0),)
    decision = decide(snapshot(4, in_flight(MOVE), jobs=jobs), now=now)
    assert decision.start_jobs == start_jobs
    assert decision.retry_in == retry_in
    assert decision.routing.owners[3] == 0  # the source keeps the slot meanwhile
    assert MOVE in decision.routing.migrating


def test_migration_gives_up_after_the_backoff_limit() -> None:
    jobs = (JobObservation(MOVE, 3, "failed", 50.0),)
    decision = decide(snapshot(4, in_flight(MOVE), jobs=jobs), now=1000.0)
    assert MOVE in decision.given_up
    assert decision.routing.owners[3] == 0
    assert MOVE not in decision.routing.migrating
    assert all(move != MOVE for move, _ in decision.start_jobs)  # the next move may start


def test_older_runs_of_a_move_are_deleted() -> None:
    jobs = (JobObservation(MOVE, 1, "failed", 10.0), JobObservation(MOVE, 2, "running"))
    decision = decide(snapshot(4, in_flight(MOVE), jobs=jobs), now=1000.0)
    assert decision.delete_jobs == ((MOVE, 1),)
    assert decision.start_jobs == ()


def test_finished_job_already_accounted_for_is_deleted() -> None:
    jobs = (JobObservation(MOVE, 1, "succeeded", 10.0),)
    decision = decide(snapshot(4, started(3), jobs=jobs), now=20.0)
    assert (MOVE, 1) in decision.delete_jobs


def test_recorded_target_is_followed_even_when_counts_are_uneven() -> None:
    # A load-aware rebalance recorded this target: the resize planner must not undo it.
    uneven = (0,) * 2 + (1,) * 10
    state = snapshot(2, RoutingState(3, uneven), target=Target(2, uneven))
    decision = decide(state, now=0.0)
    assert decision.start_jobs == ()
    assert decision.settled


def test_target_for_another_shard_count_is_replaced() -> None:
    state = snapshot(4, started(3), target=Target(3, started(3).owners))
    decision = decide(state, now=0.0)
    assert decision.target.shards == 4
    assert is_balanced(decision.target.owners, 4)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"shards":2,"ranges":[[0,5,0],[6,12,1]]}', id="gap-between-ranges"),
        pytest.param('{"shards":2,"ranges":[[0,0,0]]}', id="empty-range"),
        pytest.param('{"ranges":[[0,12,0]]}', id="no-shard-count"),
        pytest.param('{"shards":2,"ranges":[[0,12]]}', id="range-without-shard"),
        pytest.param("not json", id="not-json"),
    ],
)
def test_malformed_target_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="target"):
        Target.from_json(text)


def test_target_round_trips_as_json() -> None:
    target = Target(3, initial_assignment(3, SLOTS))
    assert Target.from_json(target.to_json()) == target


def test_routing_table_with_other_slot_count_is_refused() -> None:
    with pytest.raises(ValueError, match="slots"):
        decide(snapshot(3, RoutingState(1, (0, 1))), now=0.0)


def test_scale_down_removes_a_shard_only_once_it_is_empty() -> None:
    state = snapshot(2, started(3), existing_shards=frozenset({0, 1, 2}),
                     ready_shards=frozenset({0, 1, 2}))
    assert decide(state, now=0.0).delete_shards == ()
    emptied = RoutingState(9, (0,) * 6 + (1,) * 6)
    assert decide(replace(state, routing=emptied), now=0.0).delete_shards == (2,)


class Simulation:
    """Drives decide() like the handler would; Jobs finish by the next step, some failing."""

    def __init__(self, shards_from: int, failures: list[bool], concurrency: int) -> None:
        self.routing = started(shards_from)
        self.existing = frozenset(range(shards_from))
        self.outcomes = iter(failures)
        self.concurrency = concurrency
        self.now = 0.0
        self.jobs: tuple[JobObservation, ...] = ()
        self.given_up: frozenset[Move] = frozenset()
        self.target: Target | None = None

    def resize(self, shards: int) -> tuple[int, int]:
        """Run a resize to the end: (slots moved, the minimum)."""
        minimum = minimum_moves(self.routing.owners, shards)
        self.given_up = frozenset()
        moved = 0
        for _ in range(200):
            before = self.routing.owners
            done = self.step(shards)
            moved += sum(1 for a, b in zip(before, self.routing.owners, strict=True) if a != b)
            if done:
                break
        assert is_balanced(self.routing.owners, shards)
        assert self.existing == frozenset(range(shards))
        return moved, minimum

    def step(self, shards: int) -> bool:
        state = snapshot(shards, self.routing, existing_shards=self.existing,
                         ready_shards=self.existing, jobs=self.jobs, given_up=self.given_up,
                         concurrency=self.concurrency, backoff_limit=100, target=self.target)
        decision = decide(state, self.now)
        self.target = decision.target
        assert_consistent(decision, state)
        self.routing, self.given_up = decision.routing, decision.given_up
        self.existing = (self.existing | set(decision.create_shards)) - set(decision.delete_shards)
        started_jobs = tuple(
            JobObservation(m, a, "failed" if next(self.outcomes, False) else "succeeded", self.now)
            for m, a in decision.start_jobs
        )
        waiting = tuple(j for j in self.jobs if j.state == "failed"
                        and (j.move, j.attempt) not in decision.delete_jobs)
        self.jobs = started_jobs + waiting
        self.now += 100.0
        return not self.jobs and decision.pending_moves == 0 and not decision.create_shards


def simulate(
    shards_from: int, chain: list[int], failures: list[bool], concurrency: int
) -> list[tuple[int, int]]:
    """(slots moved, minimum) for each resize of the chain."""
    simulation = Simulation(shards_from, failures, concurrency)
    return [simulation.resize(shards) for shards in chain]


def assert_consistent(decision: Decision, state: ShardSetSnapshot) -> None:
    owners = decision.routing.owners
    assert len(owners) == SLOTS
    live = state.existing_shards | set(decision.create_shards)
    assert set(owners) <= live  # never routes a slot to a shard that does not exist
    assert not set(decision.delete_shards) & set(owners)
    for move in decision.routing.migrating:
        assert all(owners[s] == move.source for s in range(move.start, move.end))


def test_three_to_four_to_two_moves_the_minimum_at_each_step() -> None:
    steps = simulate(3, [4, 2], [], concurrency=2)
    assert [moved for moved, _ in steps] == [minimum for _, minimum in steps]
    assert steps[0] == (3, 3)


@settings(max_examples=30, deadline=None)
@given(
    shards_from=st.integers(1, 5),
    chain=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    failures=st.lists(st.booleans(), max_size=20),
    concurrency=st.integers(1, 3),
)
def test_resizes_with_failures_end_balanced_and_consistent(
    shards_from: int, chain: list[int], failures: list[bool], concurrency: int
) -> None:
    for moved, minimum in simulate(shards_from, chain, failures, concurrency):
        assert moved == minimum  # retries never move a slot twice or needlessly


def test_failed_runs_are_retried_until_the_resize_completes() -> None:
    assert simulate(3, [4], [True, False, True], concurrency=1) == [(3, 3)]


def test_status_reports_progress_and_keeps_transition_times() -> None:
    state = snapshot(4, started(3))
    decision = decide(state, now=0.0)
    status = status_for(state, decision, [], parse_time("2026-01-01T00:00:00Z"), 3)
    assert status["migrationsInFlight"] == 1
    assert status["epoch"] == 6
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["reason"] == "Resharding"
    assert conditions["Resharding"]["status"] == "True"
    again = replace_conditions(status["conditions"], [], parse_time("2026-01-01T00:00:09Z"), 3)
    assert again == []
    later = status_for(state, decision, status["conditions"], parse_time("2026-01-02T00:00:00Z"), 4)
    assert all(c["lastTransitionTime"] == "2026-01-01T00:00:00Z" for c in later["conditions"])


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        pytest.param({"ready_shards": frozenset({0})}, "ShardsNotReady", id="shard-not-ready"),
        pytest.param({"given_up": frozenset({MOVE})}, "MigrationFailed", id="migration-failed"),
        pytest.param({"shards": 3}, "AllShardsReady", id="balanced-and-ready"),
    ],
)
def test_ready_condition_reasons(changes: dict[str, object], reason: str) -> None:
    state = replace(snapshot(4, started(3)), **changes)  # type: ignore[arg-type]
    status = status_for(state, decide(state, 0.0), [], 0.0, 1)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["reason"] == reason
    assert (conditions["Degraded"]["status"] == "True") is ("given_up" in changes)
