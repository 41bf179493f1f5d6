"""The ShardSet's own records in its annotations: given-up moves and the runs of each move.

Jobs may vanish once finished (ttlSecondsAfterFinished) and the shard count may change, so what
must outlive both is kept on the ShardSet: the last run of each migrating move (so a move goes on
from its last attempt), the moves given up for this shard count (not retried), and every range
stranded by a given-up move (reported until the user, having cleaned it, removes the record).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from adaptive_operator.domain.sharding.resharding import JobObservation, JobState
from adaptive_operator.domain.sharding.slots import Move

GIVEN_UP_ANNOTATION = "adaptive.dev/given-up-moves"
ATTEMPTS_ANNOTATION = "adaptive.dev/migration-attempts"


@dataclass(frozen=True)
class GivenUp:
    moves: frozenset[Move]  # not retried while the shard count stays the same
    stranded: frozenset[Move]  # reported whatever the shard count


def _moves(items: Iterable[dict[str, int]]) -> frozenset[Move]:
    return frozenset(Move(m["start"], m["end"], m["from"], m["to"]) for m in items)


def given_up_from(raw: str | None, shards: int) -> GivenUp:
    """The record read back; a damaged one only means retrying moves (and reporting none)."""
    if not raw:
        return GivenUp(frozenset(), frozenset())
    try:
        record = json.loads(raw)
        moves = _moves(record["moves"])
        stranded = _moves(record.get("stranded", record["moves"])) | moves
        return GivenUp(moves if record.get("shards") == shards else frozenset(), stranded)
    except (AttributeError, KeyError, TypeError, ValueError):
        return GivenUp(frozenset(), frozenset())


def given_up_record(shards: int, moves: Iterable[Move], stranded: Iterable[Move]) -> str:
    def listed(items: Iterable[Move]) -> list[dict[str, int]]:
        return [m.to_json() for m in sorted(items, key=lambda m: (m.start, m.end, m.target))]

    record = {"shards": shards, "moves": listed(moves), "stranded": listed(stranded)}
    return json.dumps(record, separators=(",", ":"))


def attempts_record(attempts: Iterable[JobObservation]) -> str:
    return json.dumps([[j.move.start, j.move.end, j.move.source, j.move.target, j.attempt,
                        j.state, j.finished_at] for j in attempts], separators=(",", ":"))


def attempts_from(raw: str | None) -> tuple[JobObservation, ...]:
    """The runs read back; a damaged record is dropped (its moves start again from run 1)."""
    if not raw:
        return ()
    try:
        return tuple(
            JobObservation(Move(int(a), int(b), int(c), int(d)), int(n), _state(state),
                           None if at is None else float(at))
            for a, b, c, d, n, state, at in json.loads(raw))
    except (TypeError, ValueError):
        return ()


def _state(text: object) -> JobState:
    if text == "running" or text == "succeeded" or text == "failed":
        return text
    raise ValueError(f"unknown Job state {text!r}")
