"""How long `adaptive-operator replay --policy hpa` takes on a synthetic 90,000-row trace.

Run from the repository root:
    PYTHONPATH=operator python benchmarks/replay_speed.py [--rows 90000] [--repeat 3]
Prints a markdown table and writes benchmarks/results/replay_speed.md. The trace is synthetic
(daily and weekly seasonality, noise, bursts, 0.5% unavailable values; fixed seed), so the run
is reproducible; the end-to-end time includes parsing the CSV and writing the output.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import tempfile
import time
from pathlib import Path

from adaptive_operator.cli import main
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay

RESULTS = Path(__file__).resolve().parent / "results" / "replay_speed.md"


def synthetic_trace(rows: int, interval: float, seed: int = 7) -> list[float | None]:
    rng = random.Random(seed)
    values: list[float | None] = []
    for i in range(rows):
        t = i * interval
        daily = math.sin(2 * math.pi * t / 86_400)
        weekly = math.sin(2 * math.pi * t / 604_800)
        burst = 800.0 if rng.random() < 0.002 else 0.0
        load = max(0.0, 1000 + 600 * daily + 200 * weekly + rng.gauss(0, 60) + burst)
        values.append(None if rng.random() < 0.005 else round(load, 3))
    return values


def write_csv(path: Path, values: list[float | None], interval: float) -> None:
    lines = ["timestamp,value"]
    lines += [
        f"{1_700_000_000 + i * interval:.0f},{'' if v is None else v}" for i, v in enumerate(values)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def time_domain(values: list[float | None], interval: float, startup: float) -> tuple[float, int]:
    cfg = ReplayConfig(target_per_replica=50.0, startup_seconds=startup, interval_seconds=interval)
    start = time.perf_counter()
    result = replay(values, cfg)
    return time.perf_counter() - start, len(set(result.desired_replicas))


def time_command(trace: Path, out: Path, startup: float) -> float:
    start = time.perf_counter()
    code = main(
        [
            "replay",
            "--trace",
            str(trace),
            "--policy",
            "hpa",
            "--target-per-replica",
            "50",
            "--startup-seconds",
            str(startup),
            "--out",
            str(out),
        ]
    )
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"replay failed with exit code {code}")
    return elapsed


def measure(rows: int, repeat: int) -> list[tuple[str, float, float, float, float]]:
    table = []
    for interval, startup in ((60.0, 120.0), (15.0, 60.0), (1.0, 30.0)):
        values = synthetic_trace(rows, interval)
        with tempfile.TemporaryDirectory() as tmp:
            trace = Path(tmp) / "trace.csv"
            write_csv(trace, values, interval)
            domain = [time_domain(values, interval, startup)[0] for _ in range(repeat)]
            command = [time_command(trace, Path(tmp) / "out.csv", startup) for _ in range(repeat)]
        label = f"{interval:g} s rows, startup {startup:g} s"
        best_domain, best_command = min(domain), min(command)
        table.append((label, best_domain, best_command, rows / best_domain, rows / best_command))
    return table


def render(rows: int, repeat: int, table: list[tuple[str, float, float, float, float]]) -> str:
    lines = [
        f"# Replay speed: `--policy hpa`, {rows:,} rows (best of {repeat})",
        "",
        f"Python {platform.python_version()} on {platform.machine()}; shared 2-core machine.",
        "",
        "| trace | domain replay (s) | command incl. CSV I/O (s) "
        "| rows/s domain | rows/s command |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {label} | {d:.2f} | {c:.2f} | {rd:,.0f} | {rc:,.0f} |" for label, d, c, rd, rc in table
    ]
    lines += [
        "",
        "Reproduce: `PYTHONPATH=operator python benchmarks/replay_speed.py "
        f"--rows {rows} --repeat {repeat}`",
        "",
    ]
    return "\n".join(lines)


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=90_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    report = render(args.rows, args.repeat, measure(args.rows, args.repeat))
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    run()
