"""Hash-slot assignment and minimal-movement resize plans for ShardSets.

An *assignment* lists the shard that owns each hash slot: ``assignment[slot] == shard``, shards
numbered from 0. A *balanced* assignment over M shards gives every shard ``q`` or ``q + 1``
slots, where ``q, r = divmod(N, M)`` (exactly ``r`` shards get ``q + 1``).

Why the plan is minimal. A slot that does not move stays with its owner, so a shard ``s`` can keep
at most ``min(c_s, quota_s)`` of its ``c_s`` slots, and a shard being removed (``s >= M``) keeps
none. For a fixed quota vector the fewest slots moved is therefore
``sum_s max(0, c_s - quota_s)``. Among the balanced quota vectors this is smallest when the ``r``
larger quotas go to the shards that own the most slots: if ``c_a > c_b`` but ``b`` has the larger
quota, swapping the two quotas changes ``min(c_a, .) + min(c_b, .)`` by
``min(c_a, q+1) - min(c_a, q) - (min(c_b, q+1) - min(c_b, q)) >= 0`` (each bracket is 1 exactly
when the count exceeds ``q``, and ``c_a > c_b``). `minimum_moves` computes that bound and `plan`
achieves it: every over-quota shard gives away exactly its excess, and every freed slot goes to a
shard that is under quota, so no slot moves twice and none moves needlessly.

Ranges in moves are half-open: a move covers slots ``start <= slot < end``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Move:
    """Slots ``start <= slot < end`` go from shard ``source`` to shard ``target``."""

    start: int
    end: int
    source: int
    target: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def to_json(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end, "from": self.source, "to": self.target}


@dataclass(frozen=True)
class Plan:
    """A resize or rebalance: the assignment before, after, and the moves between them."""

    before: tuple[int, ...]
    after: tuple[int, ...]
    moves: tuple[Move, ...]

    @property
    def slots_moved(self) -> int:
        return sum(move.size for move in self.moves)

    def to_json(self) -> dict[str, list[int] | list[dict[str, int]]]:
        return {
            "before": list(self.before),
            "after": list(self.after),
            "moves": [move.to_json() for move in self.moves],
        }


def validate_assignment(assignment: Sequence[int]) -> None:
    """Refuse an empty assignment or shard ids that are not non-negative integers."""
    if len(assignment) == 0:
        raise ValueError("an assignment needs at least one slot")
    for slot, shard in enumerate(assignment):
        # bool is an int subclass, but `true` in a JSON assignment is a mistake, not shard 1.
        if isinstance(shard, bool) or not isinstance(shard, int):
            raise ValueError(f"slot {slot}: shard id {shard!r} is not an integer")
        if shard < 0:
            raise ValueError(f"slot {slot}: shard id {shard} is negative")


def initial_assignment(shards: int, slots: int) -> tuple[int, ...]:
    """Contiguous ranges, the first ``slots % shards`` shards one slot larger."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    if slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots}")
    base, extra = divmod(slots, shards)
    assignment: list[int] = []
    for shard in range(shards):
        assignment.extend([shard] * (base + (1 if shard < extra else 0)))
    return tuple(assignment)


def shard_counts(assignment: Iterable[int], shards: int) -> list[int]:
    """Slots owned by each shard ``0..shards-1`` (owners at or above ``shards`` are ignored)."""
    counts = [0] * shards
    for shard in assignment:
        if shard < shards:
            counts[shard] += 1
    return counts


def is_balanced(assignment: Sequence[int], shards: int) -> bool:
    """Every slot owned by a shard below ``shards`` and counts differing by at most one."""
    if any(shard >= shards for shard in assignment):
        return False
    counts = shard_counts(assignment, shards)
    return max(counts) - min(counts) <= 1


def quotas(before: Sequence[int], shards_to: int) -> list[int]:
    """Balanced target counts for shards ``0..shards_to-1``: larger quotas to the larger owners.

    Ties go to the lower shard number, which keeps plans deterministic.
    """
    base, extra = divmod(len(before), shards_to)
    counts = shard_counts(before, shards_to)
    by_size = sorted(range(shards_to), key=lambda shard: (-counts[shard], shard))
    result = [base] * shards_to
    for shard in by_size[:extra]:
        result[shard] = base + 1
    return result


def minimum_moves(before: Sequence[int], shards_to: int) -> int:
    """The fewest slots any balanced plan to ``shards_to`` shards must move (see module doc)."""
    _check_shards_to(shards_to)
    quota = quotas(before, shards_to)
    counts = Counter(before)  # not a list: shard ids in an input file may be large
    return sum(max(0, count - (quota[s] if s < shards_to else 0)) for s, count in counts.items())


def plan(before: Sequence[int], shards_to: int) -> Plan:
    """Resize to ``shards_to`` shards moving exactly `minimum_moves` slots, ending balanced.

    Over-quota shards keep their lowest-numbered slots and give away the rest; shards at or above
    ``shards_to`` give away everything (removal empties the highest-numbered shards). Freed slots,
    in slot order, fill the under-quota shards in shard order, which keeps moves contiguous.
    """
    validate_assignment(before)
    _check_shards_to(shards_to)
    quota = quotas(before, shards_to)
    kept = [0] * shards_to
    freed: list[int] = []
    for slot, owner in enumerate(before):
        if owner < shards_to and kept[owner] < quota[owner]:
            kept[owner] += 1
        else:
            freed.append(slot)
    after = list(before)
    receivers = _receivers(quota, kept)
    for slot, target in zip(freed, receivers, strict=True):
        after[slot] = target
    return Plan(tuple(before), tuple(after), group_moves(before, after))


def _receivers(quota: Sequence[int], kept: Sequence[int]) -> list[int]:
    """One entry per slot each shard still needs, in shard order."""
    receivers: list[int] = []
    for shard, (want, have) in enumerate(zip(quota, kept, strict=True)):
        receivers.extend([shard] * (want - have))
    return receivers


def _check_shards_to(shards_to: int) -> None:
    if shards_to < 1:
        raise ValueError(f"the target shard count must be at least 1, got {shards_to}")


def group_moves(before: Sequence[int], after: Sequence[int]) -> tuple[Move, ...]:
    """Maximal runs of consecutive slots that go from the same source to the same target."""
    if len(before) != len(after):
        raise ValueError(f"before has {len(before)} slots but after has {len(after)}")
    moves: list[Move] = []
    run: Move | None = None
    for slot, (source, target) in enumerate(zip(before, after, strict=True)):
        if source == target:
            _flush(moves, run)
            run = None
        elif run is not None and (run.source, run.target) == (source, target):
            run = Move(run.start, slot + 1, source, target)
        else:
            _flush(moves, run)
            run = Move(slot, slot + 1, source, target)
    _flush(moves, run)
    return tuple(moves)


def _flush(moves: list[Move], run: Move | None) -> None:
    if run is not None:
        moves.append(run)


def ranges_of(assignment: Sequence[int]) -> list[tuple[int, int, int]]:
    """Maximal runs ``(start, end, shard)`` of consecutive slots with one owner, half-open."""
    ranges: list[tuple[int, int, int]] = []
    start = 0
    for slot in range(1, len(assignment) + 1):
        if slot == len(assignment) or assignment[slot] != assignment[start]:
            ranges.append((start, slot, assignment[start]))
            start = slot
    return ranges


def apply_moves(assignment: Sequence[int], moves: Iterable[Move]) -> tuple[int, ...]:
    """The assignment after the given moves, each checked against the current owner."""
    owners = list(assignment)
    for move in moves:
        if not 0 <= move.start < move.end <= len(owners):
            raise ValueError(f"move {move.to_json()} is not a range within {len(owners)} slots")
        wrong = [s for s in range(move.start, move.end) if owners[s] != move.source]
        if wrong:
            slot = wrong[0]
            raise ValueError(f"move {move.to_json()}: slot {slot} is owned by {owners[slot]}")
        owners[move.start : move.end] = [move.target] * move.size
    return tuple(owners)
