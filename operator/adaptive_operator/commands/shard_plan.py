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

MAX_SHARDS = 1 << 20  # the planner keeps a count per shard: bound the memory a typo can take


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

    if args.slots < 1:
        raise UsageError(f"--slots must be at least 1, got {args.slots}")
    if not 1 <= args.shards_to <= MAX_SHARDS:
        raise UsageError(f"--shards-to must be between 1 and {MAX_SHARDS}, got {args.shards_to}")
    if args.from_assignment is not None:
        before = read_assignment(args.from_assignment, args.slots)
    elif not 1 <= args.shards_from <= MAX_SHARDS:
        raise UsageError(
            f"--shards-from must be between 1 and {MAX_SHARDS}, got {args.shards_from}"
        )
    else:
        before = list(initial_assignment(args.shards_from, args.slots))
    json.dump(plan(before, args.shards_to).to_json(), sys.stdout)
    sys.stdout.write("\n")
    return 0


def read_assignment(source: str, slots: int) -> list[int]:
    """A JSON list of non-negative shard ids, one per slot."""
    from adaptive_operator.cli import UsageError
    from adaptive_operator.domain.sharding.slots import validate_assignment

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as err:
        raise UsageError(f"cannot read {source}: {err.strerror}") from err
    try:
        assignment = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(f"{source} is not JSON: {err}") from err
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
