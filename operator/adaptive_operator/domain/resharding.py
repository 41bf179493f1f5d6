"""Deciding one reconcile step of a ShardSet: which shards, which migration Jobs, which table.

The routing table (published in a ConfigMap) is the durable record of who owns what and what is
being migrated, and the migration Jobs themselves record their attempts, so an operator that
restarts reads both back and continues where it stopped. Each step re-plans from the owners as
they will be once the running migrations complete: because the planner is minimal, re-planning
never moves a slot twice (moved + minimum(projected) stays equal to the original minimum).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from adaptive_operator.domain.migration import (
    RoutingState,
    backoff_seconds,
    begin_migration,
    complete_migration,
    fail_migration,
    is_removable,
)
from adaptive_operator.domain.sharding import (
    Move,
    apply_moves,
    initial_assignment,
    is_balanced,
    plan,
)

JobState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class JobObservation:
    move: Move
    attempt: int  # 1 for the first run
    state: JobState
    finished_at: float | None = None  # seconds since the epoch, when succeeded or failed


@dataclass(frozen=True)
class ShardSetSnapshot:
    shards: int
    slots: int
    concurrency: int
    backoff_limit: int
    backoff_seconds: float
    routing: RoutingState | None  # None until the first table is published
    jobs: tuple[JobObservation, ...] = ()
    existing_shards: frozenset[int] = frozenset()
    ready_shards: frozenset[int] = frozenset()
    given_up: frozenset[Move] = frozenset()


@dataclass(frozen=True)
class Decision:
    routing: RoutingState
    create_shards: tuple[int, ...] = ()
    delete_shards: tuple[int, ...] = ()
    start_jobs: tuple[tuple[Move, int], ...] = ()  # (move, attempt)
    delete_jobs: tuple[tuple[Move, int], ...] = ()
    given_up: frozenset[Move] = frozenset()
    retry_in: float | None = None  # seconds until the earliest retry is due
    events: tuple[str, ...] = ()
    pending_moves: int = 0
    balanced: bool = False


@dataclass
class _Step:
    """Mutable scratch state while deciding; frozen into a Decision at the end."""

    routing: RoutingState
    given_up: set[Move]
    start_jobs: list[tuple[Move, int]] = field(default_factory=list)
    delete_jobs: list[tuple[Move, int]] = field(default_factory=list)
    retries: list[float] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


def decide(snapshot: ShardSetSnapshot, now: float) -> Decision:
    first = RoutingState(1, initial_assignment(snapshot.shards, snapshot.slots))
    routing = snapshot.routing or first
    if len(routing.owners) != snapshot.slots:
        raise ValueError(
            f"the routing table has {len(routing.owners)} slots, the spec {snapshot.slots}"
        )
    step = _Step(routing, set(snapshot.given_up))
    for job in _latest_attempts(step, snapshot.jobs):
        _account_job(step, snapshot, job, now)
    pending = _pending_moves(step, snapshot.shards)
    _start_moves(step, snapshot, pending)
    needed = _needed_shards(step.routing, snapshot.shards)
    removable = snapshot.existing_shards - needed
    return Decision(
        routing=step.routing,
        create_shards=tuple(sorted(needed - snapshot.existing_shards)),
        delete_shards=tuple(s for s in sorted(removable) if is_removable(step.routing, s)),
        start_jobs=tuple(step.start_jobs),
        delete_jobs=tuple(step.delete_jobs),
        given_up=frozenset(step.given_up),
        retry_in=min(step.retries) if step.retries else None,
        events=tuple(step.events),
        pending_moves=sum(1 for move in pending if move not in step.routing.migrating),
        balanced=is_balanced(step.routing.owners, snapshot.shards),
    )


def _latest_attempts(step: _Step, jobs: Iterable[JobObservation]) -> list[JobObservation]:
    """The last run of each move counts; earlier runs that are still around get deleted."""
    latest: dict[Move, JobObservation] = {}
    for job in sorted(jobs, key=lambda j: (j.move.start, j.move.end, j.attempt)):
        previous = latest.get(job.move)
        if previous is not None:
            step.delete_jobs.append((previous.move, previous.attempt))
        latest[job.move] = job
    return list(latest.values())


def _account_job(step: _Step, snapshot: ShardSetSnapshot, job: JobObservation, now: float) -> None:
    """Fold one observed Job into the routing state."""
    if job.state == "running":
        return
    if job.move not in step.routing.migrating:
        step.delete_jobs.append((job.move, job.attempt))  # already accounted for
        return
    if job.state == "succeeded":
        step.routing = complete_migration(step.routing, job.move)
        step.delete_jobs.append((job.move, job.attempt))
        step.events.append(f"migrated slots {_describe(job.move)}")
        return
    _retry_or_give_up(step, snapshot, job, now)


def _retry_or_give_up(
    step: _Step, snapshot: ShardSetSnapshot, job: JobObservation, now: float
) -> None:
    if job.attempt > snapshot.backoff_limit:
        step.routing = fail_migration(step.routing, job.move)
        step.given_up.add(job.move)
        step.delete_jobs.append((job.move, job.attempt))
        step.events.append(f"gave up on slots {_describe(job.move)} after {job.attempt} runs")
        return
    finished = now if job.finished_at is None else job.finished_at
    due = finished + backoff_seconds(job.attempt, snapshot.backoff_seconds)
    if now < due:
        step.retries.append(due - now)
        return
    step.delete_jobs.append((job.move, job.attempt))
    step.start_jobs.append((job.move, job.attempt + 1))
    step.events.append(f"retrying slots {_describe(job.move)}, run {job.attempt + 1}")


def _pending_moves(step: _Step, shards: int) -> list[Move]:
    """Moves still to do, planned as if the running migrations had already completed.

    Planning from the owners as they are would count a running move's slots as still at its
    source, and a re-plan (whose quota ties depend on the counts) could then send them elsewhere
    once the move lands: a slot moved twice. Planning from the projected owners keeps
    ``moved so far + minimum(projected) == minimum(original)`` at every step.
    """
    projected = apply_moves(step.routing.owners, step.routing.migrating)
    moves = plan(projected, shards).moves
    return [
        move
        for move in moves
        if move not in step.given_up and not _overlaps_any(move, step.routing.migrating)
    ]


def _start_moves(step: _Step, snapshot: ShardSetSnapshot, pending: Iterable[Move]) -> None:
    """Start moves between ready shards, at most `concurrency` in flight."""
    for move in pending:
        if len(step.routing.migrating) >= snapshot.concurrency:
            return
        if {move.source, move.target} <= snapshot.ready_shards:
            step.routing = begin_migration(step.routing, move)
            step.start_jobs.append((move, 1))
            step.events.append(f"migrating slots {_describe(move)}")


def _overlaps_any(move: Move, others: Iterable[Move]) -> bool:
    return any(o.start < move.end and move.start < o.end for o in others)


def _needed_shards(routing: RoutingState, shards: int) -> set[int]:
    """Shards that must exist: the target count, owners, and both ends of running migrations."""
    needed = set(range(shards)) | set(routing.owners)
    for move in routing.migrating:
        needed |= {move.source, move.target}
    return needed


def _describe(move: Move) -> str:
    return f"{move.start}..{move.end - 1} from shard {move.source} to shard {move.target}"
