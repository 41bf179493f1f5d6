"""`adaptive-operator shard-plan`: the ShardSet resize planner on its own (an exact contract).

Prints one JSON object ``{"before": [...], "after": [...], "moves": [...]}``: ``before`` and
``after`` give the shard of each slot (length N, shards from 0), and each move is
``{"start", "end", "from", "to"}`` over the half-open slot range ``start <= slot < end``, in slot
order. The plan moves the fewest slots any balanced result allows; same input, same output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from adaptive_operator.api.shard_set import MAX_SLOTS

# The planner keeps a count per shard and a list per slot: the ShardSet CRD's bound on slots
# bounds the memory a typo can take (a shard needs at least one slot, so it bounds shards too).
MAX_SHARDS = MAX_SLOTS
# The largest assignment file a valid --slots can need (a long shard id and ", " per slot).
MAX_ASSIGNMENT_BYTES = MAX_SLOTS * 16


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "shard-plan",
        help="plan a ShardSet resize that moves the fewest hash slots",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--slots", type=int, required=True, metavar="N", help="hash slots")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--shards-from", type=int, metavar="K", help="start from the initial assignment of K shards"
    )
    start.add_argument(
        "--from-assignment",
        metavar="FILE",
        help="start from a JSON list giving the shard of each slot ('-' reads standard input)",
    )
    parser.add_argument("--shards-to", type=int, required=True, metavar="M", help="target shards")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from adaptive_operator.cli import UsageError
    from adaptive_operator.domain.sharding.slots import initial_assignment, plan

    if not 1 <= args.slots <= MAX_SLOTS:
        raise UsageError(f"--slots must be between 1 and {MAX_SLOTS} (the ShardSet's bound), "
                         f"got {args.slots}")
    _check_shards("--shards-to", args.shards_to, args.slots)
    if args.from_assignment is not None:
        before = read_assignment(args.from_assignment, args.slots)
    else:
        _check_shards("--shards-from", args.shards_from, args.slots)
        before = list(initial_assignment(args.shards_from, args.slots))
    json.dump(plan(before, args.shards_to).to_json(), sys.stdout)
    sys.stdout.write("\n")
    return 0


def _check_shards(flag: str, shards: int, slots: int) -> None:
    from adaptive_operator.cli import UsageError

    if not 1 <= shards <= MAX_SHARDS:
        raise UsageError(f"{flag} must be between 1 and {MAX_SHARDS}, got {shards}")
    if shards > slots:
        raise UsageError(f"{flag} {shards} is more shards than --slots {slots}: every shard "
                         "needs at least one slot")


def _stdin_bytes(limit: int) -> bytes:
    stream = getattr(sys.stdin, "buffer", None)  # absent when stdin was replaced by text
    return stream.read(limit) if stream is not None else sys.stdin.read(limit).encode()


def _read_text(source: str) -> str:
    """The file's text, refusing more bytes than any valid assignment needs and non-UTF-8."""
    from adaptive_operator.cli import UsageError

    try:
        if source == "-":
            data = _stdin_bytes(MAX_ASSIGNMENT_BYTES + 1)
        else:
            with Path(source).open("rb") as handle:
                data = handle.read(MAX_ASSIGNMENT_BYTES + 1)
    except OSError as err:
        raise UsageError(f"cannot read {source}: {err.strerror}") from err
    if len(data) > MAX_ASSIGNMENT_BYTES:
        raise UsageError(f"{source} is larger than {MAX_ASSIGNMENT_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{source} is not UTF-8 text ({err.reason})") from None


def read_assignment(source: str, slots: int) -> list[int]:
    """A JSON list of non-negative shard ids, one per slot."""
    from adaptive_operator.cli import UsageError
    from adaptive_operator.domain.sharding.slots import validate_assignment

    text = _read_text(source)
    try:
        assignment = json.loads(text)
    except (ValueError, RecursionError) as err:  # also too deep a nesting or too long a number
        raise UsageError(f"{source} is not JSON: {err}") from None
    if not isinstance(assignment, list):
        kind = type(assignment).__name__
        raise UsageError(f"{source}: expected a JSON list of shard ids, got a {kind}")
    if len(assignment) != slots:
        raise UsageError(f"{source} assigns {len(assignment)} slots but --slots is {slots}")
    try:
        validate_assignment(assignment)
    except ValueError as err:
        raise UsageError(f"{source}: {err}") from err
    return assignment
