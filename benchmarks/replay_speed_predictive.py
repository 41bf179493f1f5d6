"""How long `adaptive-operator replay --policy predictive` takes on 90,000 rows, and whether its
decisions are byte for byte those of a saved earlier output.

The input is made from ../shared/data (never copied into the repository): the Azure VM 2019
5-minute trace, linearly interpolated to 1-minute rows (43,200) and tiled to 90,000 rows
(timestamps 0, 60, 120, ... s); target per replica = the median load / 20, start-up 120 s.

Run from the repository root (about 30 CPU seconds per repeat):
    PYTHONPATH=operator nice -n 10 .venv/bin/python benchmarks/replay_speed_predictive.py \\
        [--repeat 2] [--compare /tmp/before_90k.csv]
Writes benchmarks/results/replay_speed_predictive.md. CPU seconds are the replay process's own
(user + system); wall seconds depend on what else the machine runs (the load average is noted).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from adaptive_operator.commands.replay import read_trace
from scaling_data import DATA

RESULTS = Path(__file__).resolve().parent / "results" / "replay_speed_predictive.md"
ROWS = 90_000


def build_input(path: Path) -> float:
    """Write the 90,000-row trace; return its target per replica."""
    trace = read_trace(DATA / "azure_vm_2019_total_cpu_5min.csv")
    y = np.array([np.nan if v is None else v for v in trace.values])
    fine = np.interp(np.arange(len(y) * 5) / 5, np.arange(len(y)), y)
    rows = np.tile(fine, -(-ROWS // len(fine)))[:ROWS]
    lines = ["timestamp,value"] + [f"{i * 60},{v!r}" for i, v in enumerate(rows.tolist())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    median: float = statistics.median(rows.tolist())
    return median / 20


def timed_replay(trace: Path, out: Path, target: float) -> tuple[float, float]:
    """CPU and wall seconds of one `adaptive-operator replay --policy predictive` process."""
    cli = Path(sys.executable).parent / "adaptive-operator"
    command = [str(cli), "replay", "--trace", str(trace),
               "--policy", "predictive", "--target-per-replica", repr(target),
               "--startup-seconds", "120", "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=os.environ)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return cpu, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--compare", type=Path, help="an earlier output to compare bytes with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace, out = Path(tmp) / "trace.csv", Path(tmp) / "out.csv"
        target = build_input(trace)
        runs = [timed_replay(trace, out, target) for _ in range(args.repeat)]
        same = "" if args.compare is None else (
            "identical" if out.read_bytes() == args.compare.read_bytes() else "DIFFERENT")
    load = os.getloadavg()[0]
    lines = ["# Replay speed: `--policy predictive`, 90,000 rows", "",
             "| run | CPU s (user + sys) | wall s | load average (1 min) at the end |",
             "|---|---:|---:|---:|"]
    lines += [f"| {i + 1} | {cpu:.1f} | {wall:.1f} | {load:.1f} |"
              for i, (cpu, wall) in enumerate(runs)]
    if same:
        lines += ["", f"Output against `{args.compare}`: **{same}** bytes."]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
