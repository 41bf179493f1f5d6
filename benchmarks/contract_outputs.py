"""Record the outputs of the exact contracts (`replay`, `detect`, `shard-plan`) on given traces.

Run it before and after a refactor and compare the two folders byte for byte
(`diff -r before after`): a pure restructuring must not change one byte.

    PYTHONPATH=$PWD/operator python benchmarks/contract_outputs.py \
        --load-dir ../shared/data/load --anomaly-dir ../shared/data/anomaly --out /tmp/contracts
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
from pathlib import Path

# Long traces are cut to their head so that one run stays cheap on a shared machine.
HEAD_ROWS = 3000
# A few NAB series of each kind keep the detect run short.
NAB_FILES = (
    "artificialNoAnomaly/art_daily_small_noise.csv",
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "artificialWithAnomaly/art_load_balancer_spikes.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
    "realAWSCloudwatch/elb_request_count_8c0756.csv",
)
SHARD_PLANS = ((16384, 3, 5), (16384, 5, 3), (1024, 1, 7), (64, 4, 4), (100, 7, 2))


def cli(*args: str) -> bytes:
    """Run one `adaptive-operator` subcommand in a fresh process and return its standard output."""
    command = [sys.executable, "-m", "adaptive_operator", *args]
    return subprocess.run(command, check=True, capture_output=True).stdout


def head(trace: Path, out: Path) -> Path:
    """Copy the first HEAD_ROWS data rows of a trace (the header kept) and return the copy."""
    with trace.open() as source, out.open("w") as sink:
        for index, line in enumerate(source):
            if index > HEAD_ROWS:
                break
            sink.write(line)
    return out


def target_for(trace: Path) -> str:
    """A per-replica target that puts the trace's mean load at four replicas."""
    with trace.open() as source:
        values = [float(row["value"]) for row in csv.DictReader(source)]
    return repr(max(sum(values) / len(values) / 4, 1e-9))


def replays(load_dir: Path, out: Path) -> None:
    for trace in sorted(load_dir.glob("*.csv")):
        cut = head(trace, out / f"input-{trace.name}")
        target = target_for(cut)
        runs = {"hpa": ["--policy", "hpa"], "predictive": ["--policy", "predictive"],
                "predictive-down": ["--policy", "predictive", "--scale-down-on-forecast"]}
        for label, policy in runs.items():
            result = out / f"replay-{label}-{trace.stem}.csv"
            cli("replay", "--trace", str(cut), *policy, "--target-per-replica", target,
                "--startup-seconds", "120", "--min-replicas", "1", "--max-replicas", "200",
                "--out", str(result))


def detections(anomaly_dir: Path, out: Path) -> None:
    for name in NAB_FILES:
        series = anomaly_dir / name
        cli("detect", "--series", str(series), "--out", str(out / f"detect-{series.stem}.csv"))


def shard_plans(out: Path) -> None:
    for slots, before, after in SHARD_PLANS:
        plan = cli("shard-plan", "--slots", str(slots), "--shards-from", str(before),
                   "--shards-to", str(after))
        (out / f"shard-plan-{slots}-{before}-{after}.json").write_bytes(plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-dir", type=Path, required=True)
    parser.add_argument("--anomaly-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    replays(args.load_dir, args.out)
    detections(args.anomaly_dir, args.out)
    shard_plans(args.out)
    for path in sorted(args.out.iterdir()):
        print(hashlib.sha256(path.read_bytes()).hexdigest()[:16], path.name)


if __name__ == "__main__":
    main()
