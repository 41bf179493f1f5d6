"""`adaptive-operator backtest`: reactive HPA against predictive scaling on a trace or on a
Prometheus range query: a summary table on stdout and, with --plot, a picture of load, forecast
band and replicas over time. Both policies run the operator's own decision code (the replay).
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adaptive_operator.domain.scaling.predictive import RecordingAdvisor
    from adaptive_operator.domain.scaling.replay import ReplayResult
    from adaptive_operator.domain.scaling.replay_metrics import ReplayMetrics

STEP_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backtest", help="compare reactive HPA and predictive scaling on a trace or a query"
    )
    parser.add_argument("--trace", type=Path, help="CSV timestamp,value (as for replay)")
    parser.add_argument("--prometheus-url", metavar="URL", help="read the load from Prometheus")
    parser.add_argument("--query", metavar="Q", help="PromQL returning one series")
    parser.add_argument("--start", metavar="ISO", help="range start (ISO 8601 or epoch seconds)")
    parser.add_argument("--end", metavar="ISO", help="range end (ISO 8601 or epoch seconds)")
    parser.add_argument("--step", metavar="S", help="range step: seconds, or 30s, 5m, 1h")
    parser.add_argument("--target-per-replica", type=float, required=True, metavar="V")
    parser.add_argument("--startup-seconds", type=float, required=True, metavar="S")
    parser.add_argument("--min-replicas", type=int, default=1, metavar="N")
    parser.add_argument("--max-replicas", type=int, default=10_000, metavar="N")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="write a PNG picture")
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Load:
    values: list[float | None]
    interval_seconds: float


@dataclass(frozen=True)
class Row:
    policy: str
    metrics: ReplayMetrics
    model: str
    mase: str


def _usage_error(message: str) -> Exception:
    from adaptive_operator.cli import UsageError

    return UsageError(message)


def parse_step(text: str) -> float:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    seconds = float(match.group(1)) * STEP_UNITS[match.group(2)] if match else math.nan
    if not seconds > 0:
        raise _usage_error(f"--step {text!r} must be a positive duration (60, 30s, 5m, 1h)")
    return seconds


def _from_prometheus(args: argparse.Namespace) -> Load:
    from adaptive_operator.adapters.prometheus import PrometheusError, query_range
    from adaptive_operator.commands.replay import parse_time

    missing = [f"--{n}" for n in ("query", "start", "end", "step") if getattr(args, n) is None]
    if missing:
        raise _usage_error(f"--prometheus-url needs {', '.join(missing)}")
    start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    step = parse_step(args.step)
    if end - start < step:
        raise _usage_error("--end must be at least one --step after --start")
    try:
        series = query_range(args.prometheus_url, args.query, start, end, step)
    except PrometheusError as err:
        raise _usage_error(str(err)) from None
    if all(v is None for v in series.values):
        raise _usage_error(f"query {args.query!r} returned no samples in the range")
    return Load(series.values, step)


def load(args: argparse.Namespace) -> Load:
    """The load from exactly one source: a trace file or a Prometheus range query."""
    if (args.trace is None) == (args.prometheus_url is None):
        raise _usage_error("give exactly one of --trace FILE or --prometheus-url URL")
    if args.prometheus_url is not None:
        return _from_prometheus(args)
    from adaptive_operator.commands.replay import read_trace

    trace = read_trace(args.trace)
    return Load(trace.values, trace.interval_seconds)


def _percent(x: float) -> str:
    return f"{x:.4%}" if math.isfinite(x) else "n/a"


def format_table(rows: list[Row]) -> str:
    header = ("policy", "unserved", "under-provisioned", "replica-hours", "scale changes",
              "model", "MASE")
    cells = [header] + [
        (r.policy, _percent(r.metrics.unserved), _percent(r.metrics.under_time),
         f"{r.metrics.replica_hours:,.2f}", str(r.metrics.scale_changes), r.model, r.mase)
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join(lines)


def _predictive_row(metrics: ReplayMetrics, advisor: RecordingAdvisor) -> Row:
    state = advisor.inner.state
    model = state.model.value if state.model is not None else "none"
    mase = f"{state.backtest_mase:.3f}" if state.backtest_mase is not None else "n/a"
    return Row("predictive", metrics, model, mase)


def _footer(advisor: RecordingAdvisor) -> str:
    used = sum(f is not None for f in advisor.floors) / max(1, len(advisor.floors))
    state = advisor.inner.state
    trusted = "reliable" if state.reliable else "reactive only"
    return f"forecast used on {used:.1%} of rows; at the end: {trusted} ({state.reason})"


def run(args: argparse.Namespace) -> int:
    from adaptive_operator.commands.replay import check_forecast_size, replay_config
    from adaptive_operator.commands.series_file import writable
    from adaptive_operator.domain.scaling.predictive import RecordingAdvisor
    from adaptive_operator.domain.scaling.replay import replay
    from adaptive_operator.domain.scaling.replay_metrics import replay_metrics

    if args.plot is not None:
        writable(args.plot)
    trace = load(args)
    config = replay_config(args, trace.interval_seconds)
    check_forecast_size(config)
    advisor = RecordingAdvisor()
    results = {"hpa": replay(trace.values, config, None),
               "predictive": replay(trace.values, config, advisor)}
    metrics = {
        name: replay_metrics(trace.values, r.serving_pods, r.desired_replicas,
                             config.target_per_replica, config.interval_seconds)
        for name, r in results.items()
    }
    rows = [Row("hpa", metrics["hpa"], "-", "-"), _predictive_row(metrics["predictive"], advisor)]
    print(format_table(rows))
    print(_footer(advisor))
    if args.plot is not None:
        write_plot(args.plot, trace, results, advisor, config.target_per_replica)
    return 0


def write_plot(
    path: Path, trace: Load, results: dict[str, ReplayResult], advisor: RecordingAdvisor,
    target: float,
) -> None:
    """Load, the forecast band made one row earlier, and each policy's ready pods, all in
    replicas (load / target per replica)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    hours = np.arange(len(trace.values)) * trace.interval_seconds / 3600.0
    load_replicas = np.array([math.nan if v is None else v for v in trace.values]) / target
    p50 = np.array(advisor.p50[:-1]) / target
    high = np.array(advisor.high[:-1]) / target
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.plot(hours, load_replicas, lw=0.7, color="black", label="load / target per replica")
    ax.fill_between(hours[1:], p50, high, color="tab:orange", alpha=0.35, lw=0,
                    label="forecast band: median to high quantile (made one row earlier)")
    ax.step(hours, results["hpa"].serving_pods, where="mid", lw=0.8, color="tab:blue",
            label="hpa: ready pods")
    ax.step(hours, results["predictive"].serving_pods, where="mid", lw=0.8, color="tab:green",
            label="predictive: ready pods")
    ax.set_xlabel("hours from the first row")
    ax.set_ylabel("replicas")
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110, format="png")
    except OSError as err:
        raise _usage_error(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        plt.close(fig)
