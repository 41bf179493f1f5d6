"""`adaptive-operator replay`: replay a load trace through the operator's scaling decisions.

Input CSV `timestamp,value` (ISO 8601 or epoch seconds, evenly spaced; an empty value is an
unavailable metric); output CSV `timestamp,value,desired_replicas`, one row per input row, with
the timestamps and values echoed as read.
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptive_operator.api.base import MAX_LOOK_AHEAD_SECONDS, MAX_REPLICAS
from adaptive_operator.domain.scaling.replay import ForecastAdvisor, ReplayConfig, replay

DAY_SECONDS = 86_400
MAX_FORECAST_CELLS = 64 << 20
# Timestamps in a CSV are rounded; spacing within a millisecond counts as even.
SPACING_TOLERANCE_SECONDS = 1e-3


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("replay", help="replay a load trace through the scaler")
    parser.add_argument("--trace", type=Path, required=True, help="CSV timestamp,value")
    parser.add_argument("--policy", choices=("hpa", "predictive"), required=True)
    parser.add_argument("--target-per-replica", type=float, required=True, metavar="V")
    parser.add_argument("--startup-seconds", type=float, required=True, metavar="S")
    parser.add_argument("--min-replicas", type=int, default=1, metavar="N")
    parser.add_argument("--max-replicas", type=int, default=10_000, metavar="N")
    parser.add_argument(
        "--scale-down-on-forecast",
        action="store_true",
        help="predictive: also scale down when the forecast is lower over the whole look-ahead "
        "(the spec's predictive.scaleDownOnForecast; off by default)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="CSV timestamp,value,desired_replicas"
    )
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Trace:
    timestamps: list[str]  # as read
    raw_values: list[str]  # as read
    values: list[float | None]
    interval_seconds: float


def _usage_error(message: str) -> Exception:
    from adaptive_operator.cli import UsageError

    return UsageError(message)


def parse_time(text: str, where: str) -> float:
    from adaptive_operator.commands.series_file import parse_time as parse

    return parse(text, where)


def parse_value(text: str, where: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise _usage_error(f"{where}: value {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise _usage_error(f"{where}: value {text!r} must be a finite number >= 0")
    return value


def _check_spacing(times: list[float], path: Path) -> float:
    interval = times[1] - times[0]
    if interval <= 0:
        raise _usage_error(f"{path}:3: timestamps must increase")
    for i in range(2, len(times)):
        if abs(times[i] - times[i - 1] - interval) > SPACING_TOLERANCE_SECONDS:
            raise _usage_error(
                f"{path}:{i + 2}: uneven spacing: {times[i] - times[i - 1]:g} s after the previous "
                f"row, expected {interval:g} s"
            )
    return interval


def read_trace(path: Path) -> Trace:
    from adaptive_operator.commands.series_file import data_rows

    timestamps, raw_values, values, times = [], [], [], []
    for line, row in data_rows(path):
        where = f"{path}:{line}"
        if len(row) != 2:
            raise _usage_error(f"{where}: expected 2 fields, got {len(row)}")
        stamp, raw = row[0].strip(), row[1].strip()
        times.append(parse_time(stamp, where))
        values.append(parse_value(raw, where))
        timestamps.append(stamp)
        raw_values.append(raw)
    if len(values) < 2:
        raise _usage_error(f"{path}: need at least 2 rows, got {len(values)}")
    return Trace(timestamps, raw_values, values, _check_spacing(times, path))


def _advisor(policy: str, scale_down_on_forecast: bool = False) -> ForecastAdvisor | None:
    if policy == "hpa":
        if scale_down_on_forecast:
            raise _usage_error("--scale-down-on-forecast needs --policy predictive")
        return None
    from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor, PredictiveSettings

    return PredictiveAdvisor(PredictiveSettings(scale_down_on_forecast=scale_down_on_forecast))


def replay_config(args: argparse.Namespace, interval: float) -> ReplayConfig:
    """The replay's settings from the command line (shared with `backtest`)."""
    if not args.target_per_replica > 0 or not math.isfinite(args.target_per_replica):
        raise _usage_error("--target-per-replica must be a number > 0")
    if not args.startup_seconds >= 0 or not math.isfinite(args.startup_seconds):
        raise _usage_error("--startup-seconds must be a number >= 0")
    if not 1 <= args.min_replicas <= args.max_replicas <= MAX_REPLICAS:
        raise _usage_error(f"need 1 <= --min-replicas <= --max-replicas <= {MAX_REPLICAS}")
    if args.startup_seconds > MAX_LOOK_AHEAD_SECONDS or args.startup_seconds / interval > (
            MAX_LOOK_AHEAD_SECONDS):
        raise _usage_error(f"--startup-seconds must be at most {MAX_LOOK_AHEAD_SECONDS} s and "
                           f"{MAX_LOOK_AHEAD_SECONDS} rows of the trace")
    return ReplayConfig(
        target_per_replica=args.target_per_replica,
        startup_seconds=args.startup_seconds,
        interval_seconds=interval,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
    )


def check_forecast_size(config: ReplayConfig) -> None:
    """The forecaster keeps a day of realised errors per look-ahead row: refuse a trace and a
    start-up that would make that table larger than MAX_FORECAST_CELLS (512 MB)."""
    rows_a_day = math.ceil(DAY_SECONDS / config.interval_seconds)
    ahead = max(1, math.ceil(config.startup_seconds / config.interval_seconds))
    if rows_a_day * ahead > MAX_FORECAST_CELLS:
        raise _usage_error(
            f"a forecast over {ahead} rows of {config.interval_seconds:g} s keeps "
            f"{rows_a_day * ahead:,} errors (at most {MAX_FORECAST_CELLS:,}): use a longer "
            "interval or a shorter --startup-seconds")


def write_result(path: Path, trace: Trace, desired: tuple[int, ...]) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["timestamp", "value", "desired_replicas"])
            writer.writerows(zip(trace.timestamps, trace.raw_values, desired, strict=True))
    except OSError as err:
        raise _usage_error(f"cannot write {path}: {err.strerror or err}") from None


def run(args: argparse.Namespace) -> int:
    from adaptive_operator.commands.series_file import writable

    writable(args.out)
    trace = read_trace(args.trace)
    config = replay_config(args, trace.interval_seconds)
    if args.policy == "predictive":
        check_forecast_size(config)
    advisor = _advisor(args.policy, args.scale_down_on_forecast)
    result = replay(trace.values, config, advisor)
    write_result(args.out, trace, result.desired_replicas)
    return 0
