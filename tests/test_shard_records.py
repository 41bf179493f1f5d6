"""ShardSet work is never lost or repeated from scratch: a vanished Job's move goes on from its
recorded attempt, a given-up range stays reported, long names never share a Job name."""

from __future__ import annotations

from dataclasses import replace

from adaptive_operator.domain.sharding import manifests, records
from adaptive_operator.domain.sharding.migration import RoutingState
from adaptive_operator.domain.sharding.resharding import JobObservation, ShardSetSnapshot, decide
from adaptive_operator.domain.sharding.slots import Move, apply_moves, initial_assignment
from adaptive_operator.domain.sharding.status import conditions_for

SLOTS = 12
MOVE = Move(3, 4, 0, 3)


def migrating(move: Move = MOVE) -> RoutingState:
    owners = initial_assignment(3, SLOTS)
    assert apply_moves(owners, [move])  # the move is valid from these owners
    return RoutingState(7, owners, (move,))


def snapshot(**changes: object) -> ShardSetSnapshot:
    base = ShardSetSnapshot(shards=4, slots=SLOTS, concurrency=1, backoff_limit=3,
                            backoff_seconds=10.0, routing=migrating(),
                            existing_shards=frozenset(range(4)),
                            ready_shards=frozenset(range(4)))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_failed_job_that_vanished_is_retried_as_the_next_attempt_after_its_backoff() -> None:
    recorded = (JobObservation(MOVE, 2, "failed", 100.0),)
    waiting = decide(snapshot(recorded=recorded), now=105.0)
    assert waiting.start_jobs == () and waiting.retry_in == 15.0  # 20 s backoff after run 2
    due = decide(snapshot(recorded=recorded), now=121.0)
    assert due.start_jobs == ((MOVE, 3),)
    assert due.attempts == (JobObservation(MOVE, 3, "running"),)


def test_a_job_that_vanished_unseen_runs_again_as_the_next_attempt() -> None:
    recorded = (JobObservation(MOVE, 2, "running"),)
    decision = decide(snapshot(recorded=recorded), now=0.0)
    assert decision.start_jobs == ((MOVE, 3),)
    assert any("vanished" in event for event in decision.events)


def test_the_backoff_limit_holds_across_vanished_jobs() -> None:
    recorded = (JobObservation(MOVE, 4, "failed", 100.0),)
    decision = decide(snapshot(recorded=recorded), now=1000.0)
    assert all(move != MOVE for move, _ in decision.start_jobs)  # the next move may start
    assert MOVE in decision.given_up and MOVE in decision.stranded
    assert MOVE not in {job.move for job in decision.attempts}


def test_without_a_record_a_migrating_move_starts_its_first_run() -> None:
    assert decide(snapshot(), now=0.0).start_jobs == ((MOVE, 1),)


def test_a_seen_job_wins_over_the_record() -> None:
    seen = (JobObservation(MOVE, 3, "running"),)
    decision = decide(snapshot(jobs=seen, recorded=(JobObservation(MOVE, 2, "failed", 1.0),)),
                      now=0.0)
    assert decision.start_jobs == ()
    assert decision.attempts == seen


def test_the_attempts_record_round_trips_and_a_damaged_one_is_dropped() -> None:
    runs = (JobObservation(MOVE, 2, "failed", 12.5), JobObservation(Move(5, 9, 1, 3), 1,
                                                                   "running"))
    assert records.attempts_from(records.attempts_record(runs)) == runs
    assert records.attempts_from('[[1,2,3]]') == ()
    assert records.attempts_from('[[3,4,0,3,1,"exploded",null]]') == ()


def test_a_stranded_range_stays_reported_after_the_shard_count_changes() -> None:
    text = records.given_up_record(4, {MOVE}, {MOVE})
    later = records.given_up_from(text, 5)
    assert later.moves == frozenset() and later.stranded == {MOVE}
    state = snapshot(shards=5, routing=RoutingState(9, initial_assignment(3, SLOTS)),
                     stranded=later.stranded, existing_shards=frozenset(range(5)),
                     ready_shards=frozenset(range(5)))
    decision = decide(state, now=0.0)
    degraded = {c.type: c for c in conditions_for(state, decision)}["Degraded"]
    assert degraded.status == "True"
    assert "3..3 (kept by shard 0, partly copied to shard 3)" in degraded.message


def test_moving_a_range_back_to_a_shard_with_its_stranded_keys_is_said() -> None:
    state = snapshot(routing=RoutingState(9, initial_assignment(3, SLOTS)),
                     stranded=frozenset({MOVE}))
    decision = decide(state, now=0.0)
    assert any(move.target == 3 and move.start <= 3 < move.end for move, _ in decision.start_jobs)
    assert any("still holds stranded keys of slots 3..3" in event for event in decision.events)


def test_long_shard_set_names_never_share_a_job_name() -> None:
    prefix = "x" * 70
    first = manifests.job_name(prefix + "-a", MOVE, 1)
    second = manifests.job_name(prefix + "-b", MOVE, 1)
    assert first != second
    assert max(len(first), len(second)) <= 63
    assert manifests.job_name("cache", MOVE, 1) == "cache-m3-4-0-3-a1"  # short names unchanged
