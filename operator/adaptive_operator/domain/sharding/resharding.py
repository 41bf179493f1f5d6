"""Deciding one reconcile step of a ShardSet: which shards, which migration Jobs, which table.

The routing table (published in a ConfigMap) is the durable record of who owns what and what is
being migrated. The migration Jobs record their attempts, and so does the ShardSet (`attempts`,
kept in an annotation): a finished Job may vanish (ttlSecondsAfterFinished) before it is seen,
and its move must then go on from its last attempt, never from the first again.

The assignment being pursued (the *target*) is recorded next to the table. A resize sets it once,
to the minimal plan from the owners as they will be when the running migrations complete; later
steps only carry out the difference, so no slot moves twice. Load-aware rebalancing sets it too,
which is why the count-balancing planner must not run again until the shard count changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from adaptive_operator.domain.sharding.migration import (
    RoutingState,
    backoff_seconds,
    begin_migration,
    complete_migration,
    fail_migration,
    is_removable,
)
from adaptive_operator.domain.sharding.slots import (
    Move,
    apply_moves,
    group_moves,
    initial_assignment,
    plan,
    ranges_of,
)

JobState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class JobObservation:
    move: Move
    attempt: int  # 1 for the first run
    state: JobState
    finished_at: float | None = None  # seconds since the epoch, when succeeded or failed


@dataclass(frozen=True)
class Target:
    shards: int
    owners: tuple[int, ...]

    def to_json(self) -> str:
        """Compact: the shard count and the owner ranges ``[start, end, shard]``."""
        ranges = [list(r) for r in ranges_of(self.owners)]
        return json.dumps({"shards": self.shards, "ranges": ranges}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Target:
        try:
            record = json.loads(text)
            ranges = [(int(a), int(b), int(c)) for a, b, c in record["ranges"]]
            shards = int(record["shards"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"malformed target assignment: {err!r}") from err
        owners: list[int] = []
        for start, end, shard in ranges:
            if start != len(owners) or end <= start:
                raise ValueError(f"target range {start}..{end} does not follow slot {len(owners)}")
            owners.extend([shard] * (end - start))
        return cls(shards, tuple(owners))


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
    target: Target | None = None  # as recorded; replaced when it was made for another count
    recorded: tuple[JobObservation, ...] = ()  # the last run of each move, as last recorded
    # Given-up moves whose target may hold partly copied keys: kept, whatever the shard count,
    # until the user says they are cleaned (removes the record).
    stranded: frozenset[Move] = frozenset()


@dataclass(frozen=True)
class Decision:
    routing: RoutingState
    target: Target
    create_shards: tuple[int, ...] = ()
    delete_shards: tuple[int, ...] = ()
    start_jobs: tuple[tuple[Move, int], ...] = ()  # (move, attempt)
    delete_jobs: tuple[tuple[Move, int], ...] = ()
    given_up: frozenset[Move] = frozenset()
    retry_in: float | None = None  # seconds until the earliest retry is due
    events: tuple[str, ...] = ()
    pending_moves: int = 0
    settled: bool = False  # the owners are the target and nothing is migrating
    attempts: tuple[JobObservation, ...] = ()  # the last run of each migrating move, to record
    stranded: frozenset[Move] = frozenset()


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
    latest = _latest_attempts(step, snapshot.jobs)
    for job in latest:
        _account_job(step, snapshot, job, now)
    _resume_orphans(step, snapshot, now)
    target = _target(snapshot, step.routing)
    pending = _pending_moves(step, target)
    _start_moves(step, snapshot, pending)
    _warn_stranded(step, snapshot.stranded | step.given_up)
    create_shards, delete_shards = _shard_changes(step.routing, snapshot)
    return Decision(
        routing=step.routing,
        target=target,
        create_shards=create_shards,
        delete_shards=delete_shards,
        start_jobs=tuple(step.start_jobs),
        delete_jobs=tuple(step.delete_jobs),
        given_up=frozenset(step.given_up),
        retry_in=min(step.retries) if step.retries else None,
        events=tuple(step.events),
        pending_moves=sum(1 for move in pending if move not in step.routing.migrating),
        settled=step.routing.owners == target.owners and not step.routing.migrating,
        attempts=_attempts(step, latest, snapshot.recorded),
        stranded=snapshot.stranded | step.given_up,
    )


def _shard_changes(routing: RoutingState,
                   snapshot: ShardSetSnapshot) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shards to create (needed, not there) and to delete (there, not needed, and owning
    no slot nor at either end of a migration)."""
    needed = _needed_shards(routing, snapshot.shards)
    removable = snapshot.existing_shards - needed
    return (tuple(sorted(needed - snapshot.existing_shards)),
            tuple(s for s in sorted(removable) if is_removable(routing, s)))


def _attempts(step: _Step, latest: Iterable[JobObservation],
              recorded: Iterable[JobObservation]) -> tuple[JobObservation, ...]:
    """The last run of each move still migrating: started now, else seen, else as recorded."""
    runs = {job.move: job for job in recorded}
    runs.update({job.move: job for job in latest})
    runs.update({move: JobObservation(move, attempt, "running") for move, attempt in
                 step.start_jobs})
    return tuple(sorted((runs[m] for m in step.routing.migrating if m in runs),
                        key=lambda j: (j.move.start, j.move.end)))


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


def _resume_orphans(step: _Step, snapshot: ShardSetSnapshot, now: float) -> None:
    """A move the table marks as migrating but no Job runs. Without a record of a run, the
    operator stopped between writing the table and creating the Job (the table is written
    first): its first run starts now. With one, the Job finished and vanished: a failure is
    retried or given up as if seen, and a run whose end was not seen is run again as the next
    attempt (a migration Job must be safe to repeat), so that backoffLimit still holds."""
    seen = {job.move for job in snapshot.jobs}
    recorded = {job.move: job for job in snapshot.recorded}
    for move in step.routing.migrating:
        if move in seen:
            continue
        last = recorded.get(move)
        if last is None:
            step.start_jobs.append((move, 1))
            step.events.append(f"resuming slots {_describe(move)}: marked as migrating, but no "
                               "Job ran it")
        elif last.state == "failed" or last.attempt > snapshot.backoff_limit:
            _retry_or_give_up(step, snapshot, last, now)
        else:
            _rerun_vanished(step, last)


def _rerun_vanished(step: _Step, last: JobObservation) -> None:
    step.start_jobs.append((last.move, last.attempt + 1))
    step.events.append(f"rerunning slots {_describe(last.move)}, run {last.attempt + 1}: the Job "
                       f"of run {last.attempt} vanished before its end was seen")


def _target(snapshot: ShardSetSnapshot, routing: RoutingState) -> Target:
    """The recorded target while it is for this shard count, else a new minimal resize plan.

    The new plan starts from the owners projected after the running migrations: planning from
    the owners as they are would count those slots at their source and could later move them
    twice.
    """
    recorded = snapshot.target
    if recorded and recorded.shards == snapshot.shards and len(recorded.owners) == snapshot.slots:
        return recorded
    projected = apply_moves(routing.owners, routing.migrating)
    return Target(snapshot.shards, plan(projected, snapshot.shards).after)


def _pending_moves(step: _Step, target: Target) -> list[Move]:
    """Moves still to do, leaving out ranges that are migrating (they finish first) or given up."""
    projected = apply_moves(step.routing.owners, step.routing.migrating)
    return [
        move
        for move in group_moves(projected, target.owners)
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


def _warn_stranded(step: _Step, stranded: frozenset[Move]) -> None:
    """A range going (back) to a shard that still holds stranded keys of it is said, not done
    silently: those keys may be stale."""
    for move, attempt in step.start_jobs:
        for old in stranded:
            if attempt == 1 and old.target == move.target and _overlaps_any(move, [old]):
                step.events.append(f"slots {_describe(move)}: shard {move.target} still holds "
                                   f"stranded keys of slots {old.start}..{old.end - 1} from a "
                                   "given-up move")


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
