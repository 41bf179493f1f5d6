"""`adaptive-operator detect --series FILE --out FILE`: the detector on one series.

Input CSV `timestamp,value`; output CSV `timestamp,value,score,is_anomaly`, one row per input
row, `score` in [0, 1], `is_anomaly` at the product's default operating point. It runs the
operator's own detector (`healing.anomaly`, univariate); row t uses rows up to t only, and the
forest is seeded, so the output is deterministic.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

RANDOM_STATE = 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("detect", help="score a timestamp,value series for anomalies")
    parser.add_argument("--series", required=True, type=Path, help="input CSV: timestamp,value")
    parser.add_argument("--out", required=True, type=Path, help="output CSV path")
    parser.set_defaults(func=run)


def read_series(path: Path) -> tuple[list[str], list[float]]:
    from adaptive_operator.cli import UsageError

    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err
    if not rows or [cell.strip() for cell in rows[0]] != ["timestamp", "value"]:
        raise UsageError(f"{path}:1: expected the header 'timestamp,value'")
    stamps: list[str] = []
    values: list[float] = []
    for number, row in enumerate(rows[1:], start=2):
        stamp, value = _parse_row(path, number, row)
        stamps.append(stamp)
        values.append(value)
    if not values:
        raise UsageError(f"{path}: no data rows after the header")
    return stamps, values


def _parse_row(path: Path, number: int, row: list[str]) -> tuple[str, float]:
    from adaptive_operator.cli import UsageError

    if len(row) != 2:
        raise UsageError(f"{path}:{number}: expected 2 fields (timestamp,value), got {len(row)}")
    try:
        value = float(row[1])
    except ValueError:
        raise UsageError(f"{path}:{number}: value {row[1]!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{path}:{number}: value {row[1]!r} is not finite")
    if not row[0].strip():
        raise UsageError(f"{path}:{number}: empty timestamp")
    return row[0], value


def run(args: argparse.Namespace) -> int:
    from adaptive_operator.domain.healing.anomaly import DetectorSettings, detect_series

    stamps, values = read_series(args.series)
    result = detect_series(values, DetectorSettings(), random_state=RANDOM_STATE)
    with args.out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["timestamp", "value", "score", "is_anomaly"])
        for stamp, value, score, flag in zip(
            stamps, values, result.scores, result.flags, strict=True
        ):
            writer.writerow([stamp, repr(value), f"{score:.6f}", int(flag)])
    return 0
