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
    from adaptive_operator.commands.series_file import check_increasing, data_rows, usage_error

    stamps: list[str] = []
    values: list[float] = []
    times: list[float] = []
    lines: list[int] = []
    for number, row in data_rows(path):
        stamp, when, value = _parse_row(path, number, row)
        stamps.append(stamp)
        times.append(when)
        values.append(value)
        lines.append(number)
    if not values:
        raise usage_error(f"{path}: no data rows after the header")
    check_increasing(times, lines, path)
    return stamps, values


def _parse_row(path: Path, number: int, row: list[str]) -> tuple[str, float, float]:
    from adaptive_operator.commands.series_file import parse_time, usage_error

    if len(row) != 2:
        raise usage_error(f"{path}:{number}: expected 2 fields (timestamp,value), got {len(row)}")
    try:
        value = float(row[1])
    except ValueError:
        raise usage_error(f"{path}:{number}: value {row[1]!r} is not a number") from None
    if not math.isfinite(value):
        raise usage_error(f"{path}:{number}: value {row[1]!r} is not finite")
    if not row[0].strip():
        raise usage_error(f"{path}:{number}: empty timestamp")
    return row[0], parse_time(row[0], f"{path}:{number}"), value


def write_scores(path: Path, stamps: list[str], values: list[float], scores: Any,
                 flags: Any) -> None:
    from adaptive_operator.commands.series_file import usage_error

    try:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["timestamp", "value", "score", "is_anomaly"])
            for stamp, value, score, flag in zip(stamps, values, scores, flags, strict=True):
                writer.writerow([stamp, repr(value), f"{score:.6f}", int(flag)])
    except OSError as err:
        raise usage_error(f"cannot write {path}: {err.strerror or err}") from None


def run(args: argparse.Namespace) -> int:
    from adaptive_operator.commands.series_file import progress_printer, writable
    from adaptive_operator.domain.healing.anomaly import DetectorSettings, detect_series

    out = writable(args.out)
    stamps, values = read_series(args.series)
    result = detect_series(values, DetectorSettings(), random_state=RANDOM_STATE,
                           progress=progress_printer("detect", "scored", len(values)))
    write_scores(out, stamps, values, result.scores, result.flags)
    return 0
