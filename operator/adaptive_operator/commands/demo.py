"""`adaptive-operator demo`: the live demo on the current cluster (see scripts/demo)."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SHARED_TRACE = ROOT.parent / "shared" / "data" / "load" / "azure_vm_2019_total_cpu_5min.csv"
# Hourly row 408 of the Azure VM 2019 trace is day 17, the start of a run of weekdays: the
# played days all have the daily cycle (the trace's weekends are flat).
SHARED_TRACE_START = 408
QUERY = 'sum(demo_load{exporter="adaptive-demo"})'
SERIES_TIMEOUT_SECONDS = 60.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="replay a load trace live against the operator")
    parser.add_argument("--trace", type=Path, default=None,
                        help="CSV timestamp,value (default: the Azure VM 2019 trace when "
                             "../shared/data is there, else a built-in synthetic week of "
                             "hourly rows)")
    parser.add_argument("--downsample", type=int, default=12,
                        help="average this many trace rows into one played row (default 12: "
                             "5-minute rows become hourly rows; not applied to the synthetic "
                             "trace)")
    parser.add_argument("--start", type=int, default=None,
                        help=f"played rows to skip at the trace's start (default "
                             f"{SHARED_TRACE_START} for the Azure trace, a run of weekdays; "
                             "else 0)")
    parser.add_argument("--history-rows", type=int, default=90,
                        help="rows played before the table starts (default 90: 3 days and "
                             "18 hours)")
    parser.add_argument("--warm-up-rows", type=int, default=10,
                        help="the services are created this many rows before the history ends; "
                             "the predictive one backfills the rows before (default 10: it "
                             "backfills 80 rows, 3 days and 8 hours, and the forecast needs 3 "
                             "cycles)")
    parser.add_argument("--rows", type=int, default=48,
                        help="rows played live, after the history (default 48: two days)")
    parser.add_argument("--row-seconds", type=float, default=2.0,
                        help="wall-clock seconds per played row, also the sync period "
                             "(default 2, the local Prometheus' scrape interval)")
    parser.add_argument("--look-ahead-rows", type=int, default=2,
                        help="how many rows ahead the predictive service provisions (default 2)")
    parser.add_argument("--picture", type=Path, default=ROOT / ".state" / "demo" / "demo.png")
    parser.set_defaults(func=run)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_values(args: argparse.Namespace) -> tuple[list[float], str]:
    """History prefix and live rows, from the given trace, the shared one, or the synthetic."""
    from adaptive_operator.demo import live

    trace = args.trace or (SHARED_TRACE if SHARED_TRACE.exists() else None)
    wanted = args.history_rows + args.rows
    if trace is None:
        start = args.start or 0
        days = math.ceil((start + wanted) / 24)
        values = live.synthetic_trace(days=days)[start:start + wanted]
        return values, f"a built-in synthetic trace (hourly rows from row {start})"
    start = args.start if args.start is not None else (
        SHARED_TRACE_START if trace == SHARED_TRACE else 0)
    values = live.downsample(live.read_trace(trace), max(1, args.downsample))
    values = values[start:start + wanted]
    if len(values) < wanted:
        raise ValueError(f"{trace.name} has {len(values)} played rows from row {start}; "
                         f"{wanted} are needed (--history-rows + --rows)")
    return values, (f"{trace.name}, {args.downsample} rows averaged per played row, from "
                    f"played row {start}")


def start_operator(log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "adaptive_operator", "run", "--namespace", "adaptive-demo",
         "--leader-election", "false", "--log-format", "json",
         "--metrics-port", str(free_port()), "--health-port", str(free_port())],
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


def wait_for_series(url: str, timeout: float = SERIES_TIMEOUT_SECONDS) -> None:
    """Until Prometheus has scraped the exporter once, so the history starts complete."""
    from adaptive_operator.adapters.prometheus import MetricError, query_total

    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(query_total(url, QUERY))
            return
        except MetricError as err:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Prometheus at {url} has not scraped the demo's exporter "
                                   f"within {timeout:g}s: {err.message}") from err
        time.sleep(1.0)  # polling Prometheus, not a race


def sampler(apps: Any, custom: Any) -> Callable[[float, float], Any]:
    from adaptive_operator.demo import live

    def sample(t: float, load: float) -> live.Sample:
        ready, desired, forecast, offset, note = live.observe(apps, custom)
        return live.Sample(t, load, ready, desired, forecast, note,
                           live.ready_replicas(apps, live.REACTIVE), offset)

    return sample


def replay(args: argparse.Namespace, exporter: Any, url: str, values: list[float],
           result: Any, sample: Callable[[float, float], Any]) -> None:
    """History (the services created a few rows before its end), then the live table."""
    from adaptive_operator.api.predictive import MIN_HISTORY_SECONDS
    from adaptive_operator.demo import live

    history, rows = values[:args.history_rows], values[args.history_rows:]
    backfilled = max(1, len(history) - args.warm_up_rows)
    sync = max(1, round(args.row_seconds))

    def set_load(value: float) -> None:
        exporter.set("demo_load", value)

    def progress(done: int) -> None:
        live.say(f"[demo]   history {done}/{len(history)} rows")

    set_load(history[0])
    wait_for_series(url)
    live.say(f"[demo] playing {backfilled} rows of history into Prometheus "
             f"({backfilled * args.row_seconds:g}s) before the services exist")
    live.play_history(history[:backfilled], args.row_seconds, set_load, progress)
    result.created_at = -(len(history) - backfilled) * args.row_seconds
    live.kubectl_apply(live.manifests(
        math.ceil(history[backfilled - 1] / result.target), sync, result.target,
        args.look_ahead_rows * sync,
        max(MIN_HISTORY_SECONDS, int(backfilled * args.row_seconds))))
    live.say(f"[demo] created {live.NAME} (predictive: backfills those rows) and "
             f"{live.REACTIVE} (reactive only, column hpa); warming up")
    live.play_history(history[backfilled:], args.row_seconds, set_load,
                      lambda done: progress(backfilled + done))
    live.play(rows, args.row_seconds, set_load, sample, print, result)


def run(args: argparse.Namespace) -> int:
    from kubernetes import client, config

    from adaptive_operator.adapters import kube
    from adaptive_operator.cli import UsageError
    from adaptive_operator.demo import live
    from adaptive_operator.demo.exporter import Exporter

    targets = os.environ.get("PROMETHEUS_TARGETS_DIR")
    url = os.environ.get("PROMETHEUS_URL")
    if not targets or not url:
        raise UsageError("PROMETHEUS_TARGETS_DIR and PROMETHEUS_URL must be set: run "
                         "`eval \"$(e2e/cluster up)\"` first (or scripts/demo, which does)")
    try:
        values, source = load_values(args)
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"cannot read the trace: {err}") from err
    history, rows = values[:args.history_rows], values[args.history_rows:]
    target = round(statistics.median(values) / 30, 2)  # about 30 replicas at the median load
    live.say(f"[demo] trace: {source}; {len(history)} rows of history then {len(rows)} live "
             f"rows, {args.row_seconds:g}s each; target {target:g} per replica")
    live.kubectl_apply("\n---\n".join(p.read_text() for p in sorted((ROOT / "crds").glob("*"))))
    config.load_kube_config()  # type: ignore[no-untyped-call]
    api = kube.TimedApiClient(kube.configuration())
    apps, custom = client.AppsV1Api(api), client.CustomObjectsApi(api)
    operator = start_operator(args.picture.parent / "operator.log")
    result = live.DemoRun(target, history=list(history), row_seconds=args.row_seconds)
    try:
        # A previous run's services would start forecasting before the history is played.
        live.kubectl("delete", "adaptiveservices", "--all", "-n", live.NAMESPACE,
                     "--ignore-not-found")
        with Exporter("adaptive-demo", Path(targets)) as exporter:
            replay(args, exporter, url, values, result, sampler(apps, custom))
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    live.write_picture(result, args.picture)
    predictive, reactive = live.under_rows(result)
    live.say(f"[demo] rows with load above capacity: predictive {predictive}, reactive "
             f"{reactive}, of {len(result.samples)}; picture: {args.picture}; operator log: "
             f"{args.picture.parent / 'operator.log'}")
    return 0
