"""The `adaptive-operator` command.

Each subcommand lives in its own module under `adaptive_operator.commands` and exposes
`register(subparsers)`, which adds its parser and sets `func`; heavy imports stay inside the
command's function so that `--help` and the light commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from adaptive_operator import __version__

# Order is the order shown by --help.
COMMAND_MODULES: tuple[str, ...] = (
    "adaptive_operator.commands.run",
    "adaptive_operator.commands.version",
    "adaptive_operator.commands.crds",
    "adaptive_operator.commands.replay",
    "adaptive_operator.commands.shard_plan",
    "adaptive_operator.commands.detect",
    "adaptive_operator.commands.demo",
    "adaptive_operator.commands.backtest",
    "adaptive_operator.commands.explain",
)


class UsageError(Exception):
    """Bad input on the command line or in an input file: reported in one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adaptive-operator",
        description="Scale Kubernetes workloads ahead of demand and heal them when they go wrong.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except UsageError as err:
        print(f"adaptive-operator {args.command}: error: {err}", file=sys.stderr)
        return 2
    return result
