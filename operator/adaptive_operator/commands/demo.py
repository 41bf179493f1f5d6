"""`adaptive-operator demo`: the live demo on the current cluster (see scripts/demo)."""

from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
SHARED_TRACE = ROOT.parent / "shared" / "data" / "load" / "azure_vm_2019_total_cpu_5min.csv"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="replay a load trace live against the operator")
    parser.add_argument("--trace", type=Path, default=None,
                        help="CSV timestamp,value (default: the Azure VM 2019 trace when "
                             "../shared/data is there, else a built-in synthetic week)")
    parser.add_argument("--downsample", type=int, default=6,
                        help="average this many trace rows into one played row (default 6: "
                             "5-minute rows become 30-minute rows; 1 for the synthetic trace)")
    parser.add_argument("--rows", type=int, default=240, help="rows to play (default 240)")
    parser.add_argument("--row-seconds", type=float, default=2.0,
                        help="wall-clock seconds per played row (default 2)")
    parser.add_argument("--picture", type=Path, default=ROOT / ".state" / "demo" / "demo.png")
    parser.set_defaults(func=run)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_values(args: argparse.Namespace) -> tuple[list[float], str]:
    from adaptive_operator.demo import live

    trace = args.trace or (SHARED_TRACE if SHARED_TRACE.exists() else None)
    if trace is None:
        return live.synthetic_trace()[: args.rows], "a built-in synthetic week (30-minute rows)"
    values = live.downsample(live.read_trace(trace), max(1, args.downsample))
    return values[: args.rows], f"{trace.name}, {args.downsample} rows averaged per played row"


def start_operator(log_path: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "adaptive_operator", "run", "--namespace", "adaptive-demo",
         "--leader-election", "false", "--log-format", "json",
         "--metrics-port", str(free_port()), "--health-port", str(free_port())],
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


def run(args: argparse.Namespace) -> int:
    from kubernetes import client, config

    from adaptive_operator.cli import UsageError
    from adaptive_operator.demo import live
    from adaptive_operator.demo.exporter import Exporter

    targets = os.environ.get("PROMETHEUS_TARGETS_DIR")
    if not targets:
        raise UsageError("PROMETHEUS_TARGETS_DIR is not set: run `eval \"$(e2e/cluster up)\"` "
                         "first (or scripts/demo, which does)")
    try:
        values, source = load_values(args)
    except (OSError, ValueError, KeyError) as err:
        raise UsageError(f"cannot read the trace: {err}") from err
    target = round(statistics.median(values) / 12, 2)  # about 12 replicas at the median load
    live.say(f"[demo] trace: {source}; {len(values)} rows, {args.row_seconds:g}s each; "
             f"target {target:g} per replica")
    live.kubectl_apply("\n---\n".join(p.read_text() for p in sorted((ROOT / "crds").glob("*"))))
    config.load_kube_config()  # type: ignore[no-untyped-call]
    apps, custom = client.AppsV1Api(), client.CustomObjectsApi()
    operator = start_operator(args.picture.parent / "operator.log")
    result = live.DemoRun(target)
    try:
        with Exporter("adaptive-demo", Path(targets)) as exporter:
            exporter.set("demo_load", values[0])
            sync = max(1, round(args.row_seconds))
            live.kubectl_apply(live.MANIFEST.format(
                ns=live.NAMESPACE, name=live.NAME, replicas=math.ceil(values[0] / target),
                sync=sync, target=target, window=10 * sync, lookahead=4 * sync,
                history=max(60, int(len(values) * args.row_seconds))))

            def sample(t: float, load: float) -> live.Sample:
                return live.Sample(t, load, *live.observe(apps, custom))

            live.play(values, args.row_seconds, lambda v: exporter.set("demo_load", v), sample,
                      print, result)
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    live.write_picture(result, args.picture)
    under = sum(1 for s in result.samples if s.load > s.ready * target)
    live.say(f"[demo] rows with load above capacity: {under} of {len(result.samples)}; picture: "
             f"{args.picture}; operator log: {args.picture.parent / 'operator.log'}")
    return 0
