"""Migration bookkeeping: what the routing table says while a plan is being carried out.

The owner of a slot changes only when its migration Job completes; while it runs, the range is
published as *migrating* (source and target) so clients can follow it, and a failed migration
simply drops that mark, so a slot always has exactly one owner: its source until the move is done.
Every change to the table is a new epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from adaptive_operator.domain.sharding.slots import Move, apply_moves


@dataclass(frozen=True)
class RoutingState:
    epoch: int
    owners: tuple[int, ...]
    migrating: tuple[Move, ...] = ()

    def owned_by(self, shard: int) -> int:
        return sum(1 for owner in self.owners if owner == shard)


def begin_migration(state: RoutingState, move: Move) -> RoutingState:
    """Publish ``move`` as migrating; its slots must belong to its source and be unclaimed."""
    apply_moves(state.owners, [move])  # checks ownership, result unused
    for other in state.migrating:
        if other.start < move.end and move.start < other.end:
            raise ValueError(f"move {move.to_json()} overlaps migration {other.to_json()}")
    return replace(state, epoch=state.epoch + 1, migrating=(*state.migrating, move))


def complete_migration(state: RoutingState, move: Move) -> RoutingState:
    """The Job finished: the target owns the range from this epoch on."""
    remaining = _without(state.migrating, move)
    owners = apply_moves(state.owners, [move])
    return RoutingState(state.epoch + 1, owners, remaining)


def fail_migration(state: RoutingState, move: Move) -> RoutingState:
    """The Job gave up: the source keeps the range, the migrating mark goes away."""
    return replace(state, epoch=state.epoch + 1, migrating=_without(state.migrating, move))


def _without(migrating: tuple[Move, ...], move: Move) -> tuple[Move, ...]:
    if move not in migrating:
        raise ValueError(f"move {move.to_json()} is not in migration")
    return tuple(other for other in migrating if other != move)


def is_removable(state: RoutingState, shard: int) -> bool:
    """A shard goes only when it owns no slot and no migration starts or ends at it."""
    if shard in state.owners:
        return False
    return all(shard not in (move.source, move.target) for move in state.migrating)


def removable_shards(state: RoutingState, existing: Iterable[int], shards_to: int) -> list[int]:
    """Shards at or above the target count that can be deleted now, in order."""
    return [s for s in sorted(existing) if s >= shards_to and is_removable(state, s)]


def next_migrations(
    planned: Sequence[Move],
    done: Iterable[Move],
    in_flight: Iterable[Move],
    concurrency: int,
) -> list[Move]:
    """The planned moves to start now: not done, not running, at most ``concurrency`` running."""
    finished = set(done)
    running = set(in_flight)
    free = max(0, concurrency - len(running))
    waiting = [move for move in planned if move not in finished and move not in running]
    return waiting[:free]


def backoff_seconds(attempt: int, base_seconds: float, cap_seconds: float = 600.0) -> float:
    """Delay before retry number ``attempt`` (1-based): doubling from ``base_seconds``, capped."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    return float(min(cap_seconds, base_seconds * 2 ** min(attempt - 1, 60)))
