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
from adaptive_operator.domain.scaling.advisor import ForecastAdvisor
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay

DAY_SECONDS = 86_400
MAX_FORECAST_CELLS = 64 << 20
DEFAULT_QUANTILE = 0.8  # the spec's default (api.predictive)
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
    add_operating_point(parser)
    parser.add_argument(
        "--coupled", type=Path, action="append", default=[], metavar="UPSTREAM.csv",
        help="an upstream's trace (same rows): its load, read row by row, and its own forecast "
        "forecast this one's (coupled scaling); repeat for several upstreams",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="CSV timestamp,value,desired_replicas"
    )
    parser.set_defaults(func=run)


def add_operating_point(parser: Any) -> None:
    """The predictive operating point (the spec's quantile, lookAheadFactor and objective)."""
    parser.add_argument(
        "--quantile", type=float, default=DEFAULT_QUANTILE, metavar="Q",
        help="predictive: the forecast quantile the replicas serve (0.5 < Q < 1; default 0.8)",
    )
    parser.add_argument(
        "--look-ahead-factor", type=float, default=1.0, metavar="F",
        help="predictive: provision F x the start-up ahead (1 <= F <= 10; default 1)",
    )
    parser.add_argument(
        "--max-unserved-percent", type=float, default=None, metavar="X",
        help="predictive: the objective; the quantile and scale-down are picked once a day as "
        "the cheapest point that kept unserved demand <= X%% over the last three days",
    )


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


def _advisor(args: argparse.Namespace) -> ForecastAdvisor | None:
    if args.policy == "hpa":
        if _predictive_flags(args):
            raise _usage_error(f"{_predictive_flags(args)[0]} needs --policy predictive")
        return None
    from adaptive_operator.domain.scaling.coupled_advisor import OwnAdvisor
    from adaptive_operator.domain.scaling.predictive import PredictiveSettings

    if not 0.5 < args.quantile < 1.0:
        raise _usage_error("--quantile must be a number between 0.5 and 1 (exclusive)")
    objective = args.max_unserved_percent
    if objective is not None and not 0.0 <= objective <= 100.0:
        raise _usage_error("--max-unserved-percent must be a number from 0 to 100")
    return OwnAdvisor(PredictiveSettings(
        quantile=args.quantile, scale_down_on_forecast=args.scale_down_on_forecast,
        max_unserved_percent=objective))


def _predictive_flags(args: argparse.Namespace) -> list[str]:
    """The predictive-only flags given with their non-default values."""
    given = {
        "--scale-down-on-forecast": args.scale_down_on_forecast,
        "--quantile": args.quantile != DEFAULT_QUANTILE,
        "--look-ahead-factor": args.look_ahead_factor != 1.0,
        "--max-unserved-percent": args.max_unserved_percent is not None,
    }
    return [flag for flag, on in given.items() if on]



def upstream_traces(paths: list[Path], trace: Trace) -> list[Trace]:
    """The --coupled traces, each on the downstream's rows (same start, spacing and count)."""
    found = []
    for path in paths:
        upstream = read_trace(path)
        same_start = parse_time(upstream.timestamps[0], str(path)) == parse_time(
            trace.timestamps[0], "trace")
        if (not same_start or len(upstream.values) != len(trace.values)
                or abs(upstream.interval_seconds - trace.interval_seconds)
                > SPACING_TOLERANCE_SECONDS):
            raise _usage_error(f"{path}: an upstream trace must have the rows of --trace (same "
                               "first timestamp, spacing and number of rows)")
        found.append(upstream)
    return found


def coupled_advisor(own: ForecastAdvisor | None, upstreams: list[Trace],
                    target: float) -> ForecastAdvisor:
    from adaptive_operator.domain.scaling.coupled_advisor import (
        CoupledAdvisor,
        OwnAdvisor,
        UpstreamTrace,
    )

    assert own is None or isinstance(own, OwnAdvisor)
    sources = [UpstreamTrace(u.values, OwnAdvisor(), target) for u in upstreams]
    return CoupledAdvisor(own, sources)


def _check_numbers(args: argparse.Namespace) -> None:
    """The target and the start-up are numbers in range (a NaN compares false: refused too)."""
    if not args.target_per_replica > 0 or not math.isfinite(args.target_per_replica):
        raise _usage_error("--target-per-replica must be a number > 0")
    if not args.startup_seconds >= 0 or not math.isfinite(args.startup_seconds):
        raise _usage_error("--startup-seconds must be a number >= 0")


def _check_bounds(args: argparse.Namespace, interval: float) -> None:
    """The replicas within the operator's bounds, the start-up within the longest look-ahead."""
    if not 1 <= args.min_replicas <= args.max_replicas <= MAX_REPLICAS:
        raise _usage_error(f"need 1 <= --min-replicas <= --max-replicas <= {MAX_REPLICAS}")
    if args.startup_seconds > MAX_LOOK_AHEAD_SECONDS or args.startup_seconds / interval > (
            MAX_LOOK_AHEAD_SECONDS):
        raise _usage_error(f"--startup-seconds must be at most {MAX_LOOK_AHEAD_SECONDS} s and "
                           f"{MAX_LOOK_AHEAD_SECONDS} rows of the trace")


def replay_config(args: argparse.Namespace, interval: float) -> ReplayConfig:
    """The replay's settings from the command line (shared with `backtest`)."""
    _check_numbers(args)
    _check_bounds(args, interval)
    factor = getattr(args, "look_ahead_factor", 1.0)
    if not 1.0 <= factor <= 10.0:
        raise _usage_error("--look-ahead-factor must be a number from 1 to 10")
    return ReplayConfig(
        target_per_replica=args.target_per_replica,
        startup_seconds=args.startup_seconds,
        interval_seconds=interval,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        lookahead_seconds=None if factor == 1.0 else factor * args.startup_seconds,
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
    from adaptive_operator.commands.series_file import progress_printer, writable

    writable(args.out)
    trace = read_trace(args.trace)
    config = replay_config(args, trace.interval_seconds)
    if args.policy == "predictive":
        check_forecast_size(config)
    advisor = _advisor(args)
    if args.coupled:
        upstreams = upstream_traces(args.coupled, trace)
        advisor = coupled_advisor(advisor, upstreams, config.target_per_replica)
    result = replay(trace.values, config, advisor,
                    progress_printer("replay", "decided", len(trace.values)))
    write_result(args.out, trace, result.desired_replicas)
    return 0
