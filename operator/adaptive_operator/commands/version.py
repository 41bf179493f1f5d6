"""`adaptive-operator version`: print the version."""

from __future__ import annotations

import argparse
from typing import Any

from adaptive_operator import __version__


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("version", help="print the version")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(__version__)
    return 0
