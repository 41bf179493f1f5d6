"""Scale over replicas: the same N AdaptiveServices on one operator process, then on two sharing
them over K shard Leases (`run --lease-shards K`).

    ADAPTIVE_CLUSTER_STATE=... KUBECONFIG=... .venv/bin/python benchmarks/scale_replicas.py \
        --services 1000 --shards 8

Sets up the objects, the exporter and the backfilled history as benchmarks/scale.py does, then
for each configuration starts the processes, waits until every service has a scaling and a
healing decision (for two replicas: after the shards are split between them), and measures
`--periods` sync periods: each process's CPU seconds per period (utime + stime), the share of
services decided in every period (the two processes' decision logs together), and how many
services were decided by more than one process in the window (should be none).

`--cpu-limit C` runs each process in a cgroup of its own (cgroup v1 `cpu` controller) and, from
the end of the warm-up, with a CFS quota of C cores, as a pod's `limits.cpu` would: on a machine
whose cores the test cluster shares, this is how one replica's capacity is made a fixed, known
amount, so that two replicas' capacity can be compared with it. The warm-up (every service's
history fitted) runs without the quota: the limit measures the steady state, not the start-up.
`--replicas 1,2` picks the configurations run.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import scale  # noqa: E402
import scale_feed  # noqa: E402
from scale_measure import DecisionLog, ProcessMeter, gc_pauses  # noqa: E402

Process = subprocess.Popen[bytes]
CPU_CGROUPS = Path("/sys/fs/cgroup/cpu")
CFS_PERIOD_US = 100_000


class CpuLimit:
    """A cgroup v1 `cpu` group holding the processes put in it, without a quota until `limit`."""

    def __init__(self, name: str) -> None:
        self.path = CPU_CGROUPS / name
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (self.path / "cpu.cfs_quota_us").write_text("-1")
        self.start = self.throttled()

    def limit(self, cores: float) -> None:
        (self.path / "cpu.cfs_quota_us").write_text(str(int(cores * CFS_PERIOD_US)))

    def add(self, pid: int) -> None:
        # Threads started after the move are in the group too (they inherit it).
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> dict[str, float]:
        """CFS periods run, periods throttled and seconds throttled, from cpu.stat."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return {"periods": int(stat["nr_periods"]), "throttled": int(stat["nr_throttled"]),
                "throttled_s": int(stat["throttled_time"]) / 1e9}

    def since_start(self) -> dict[str, float]:
        now = self.throttled()
        periods = now["periods"] - self.start["periods"]
        throttled = now["throttled"] - self.start["throttled"]
        return {"throttled_pct": round(100 * throttled / periods, 1) if periods else 0.0,
                "throttled_s": round(now["throttled_s"] - self.start["throttled_s"], 1)}

    def remove(self) -> None:
        procs = self.path / "cgroup.procs"
        for _ in range(50):  # the operator's helper processes end just after it: up to 5 s
            if not procs.read_text().strip():
                break
            time.sleep(0.1)
        try:
            self.path.rmdir()  # refused while a process is left in it: kept, and said
        except OSError as err:
            scale_feed.log(f"cgroup {self.path} kept: {err}")


def held(port: int) -> frozenset[int]:
    """The shards a process's /metrics says it holds (none while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return frozenset()
    return frozenset(int(line.split('shard="', 1)[1].split('"', 1)[0])
                     for line in text.splitlines()
                     if line.startswith("adaptive_lease_shard_held{") and line.endswith(" 1.0"))


def merged(logs: list[DecisionLog]) -> DecisionLog:
    together = DecisionLog(logs[0].path)
    for each in logs:
        each.read()
        for event, seen in each.events.items():
            together.events.setdefault(event, []).extend(seen)
    return together


def decided_by(log: DecisionLog, start: float, end: float) -> set[str]:
    return set(log.times_between("decision", start, end))


def lapses(log: DecisionLog, start: float, end: float) -> int:
    """Shards the process lost without giving them up within [start, end) (as it logged)."""
    return sum(len(entry.get("shards", ())) for _, at, entry in
               log.events.get("lease shards lapsed", []) if start <= at < end)


def wait_split(ports: list[int], shards: int, limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        sets = [held(port) for port in ports]
        if sum(map(len, sets)) == shards and len(frozenset().union(*sets)) == shards and all(
                len(found) == shards // len(ports) for found in sets):
            return time.monotonic() - started
        time.sleep(2)
    raise SystemExit(f"the shards were not split within {limit} s")


# The warm-up's work: histories backfilled, then detectors fitted (in the background, one at a
# time, while the services already decide).
BACKFILLS = ("forecast history backfilled", "healing history backfilled", "detector fitted")


def backfills_done(log: DecisionLog, quiet: float) -> bool:
    """No history backfill nor detector fit logged for `quiet` seconds: a service decides
    reactively from its first period while its histories are fetched and fitted, so "every
    service decided" is not yet the steady state (the fits still queued would be measured as
    its cost)."""
    last = max((at for event in BACKFILLS for _, at, _ in log.events.get(event, [])),
               default=0.0)
    return time.time() - last >= quiet


def wait_decided(logs: list[DecisionLog], services: list[str], after: float,
                 limit: float, quiet: float) -> float:
    started = time.time()
    while time.time() - started < limit:
        together = merged(logs)
        scaling = set(together.times_between("decision", after, math.inf))
        healing = set(together.times_between("healing decision", after, math.inf))
        scale_feed.log(f"{len(scaling)} scaling and {len(healing)} healing decisions since the "
                       "start")
        if len(scaling) == len(healing) == len(services) and backfills_done(together, quiet):
            return time.time() - started
        time.sleep(10)
    scale_feed.log("not every service decided within the limit; measuring anyway")
    return time.time() - started


def start_replicas(args: argparse.Namespace, env: dict[str, str], namespace: str,
                   flags: list[str], replicas: int,
                   ) -> tuple[list[Process], list[int], list[DecisionLog], list[CpuLimit]]:
    """Start the operator's replicas, each logging to its own file (and, with --cpu-limit, in a
    cgroup of its own, without a quota yet)."""
    procs, ports, logs, limits = [], [], [], []
    for index in range(replicas):
        path = ROOT / ".state" / "scale" / f"{namespace}-{replicas}r-{index}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Profiled alone and sharing alike, so that the two can be compared.
        profile = ((args.profile_after, args.profile_for, path.with_suffix(".pstats"))
                   if args.profile else None)
        proc, port = scale.start_operator(env, namespace, flags, path, ROOT / "operator",
                                          profile)
        if args.cpu_limit:
            limits.append(CpuLimit(f"adaptive-bench-{namespace}-{replicas}r-{index}"))
            limits[-1].add(proc.pid)
        procs.append(proc)
        ports.append(port)
        logs.append(DecisionLog(path))
    return procs, ports, logs, limits


def apply_cpu_limits(limits: list[CpuLimit], cores: float, sync: float) -> None:
    for limit in limits:
        limit.limit(cores)
    if limits:  # the first period under the quota settles what the warm-up left queued
        time.sleep(sync)


def run_periods(args: argparse.Namespace, procs: list[Process], ports: list[int],
                limits: list[CpuLimit],
                ) -> tuple[float, float, list[dict[str, float]], list[dict[str, float]]]:
    """`--periods` sync periods: their start and end, each process's usage (its seconds in the
    garbage collector included, `gc_s` and `gc_full_s`: wall seconds, which a quota
    stretches) and throttling."""
    meters = [ProcessMeter(proc.pid) for proc in procs]
    for limit in limits:
        limit.start = limit.throttled()
    before = [gc_pauses(port) for port in ports]
    start = time.time()
    time.sleep(args.periods * args.sync)
    end = time.time()
    usage = [meter.sample() for meter in meters]
    for each, port, earlier in zip(usage, ports, before, strict=True):
        now = gc_pauses(port)
        each["gc_s"] = sum(now.values()) - sum(earlier.values())
        each["gc_full_s"] = now.get("2", 0.0) - earlier.get("2", 0.0)
    throttling = [limit.since_start() for limit in limits]
    return start, end, usage, throttling


def collector_and_memory(usage: list[dict[str, float]], periods: int) -> dict[str, object]:
    """Each process's seconds in the garbage collector per period, and its peak RSS."""
    return {"gc_s_per_period": [round(u["gc_s"] / periods, 2) for u in usage],
            "gc_full_s_per_period": [round(u["gc_full_s"] / periods, 2) for u in usage],
            "rss_mib_max": [u["rss_mib_max"] for u in usage]}


def measure_periods(args: argparse.Namespace, services: list[str],
                    procs: list[Process], ports: list[int], logs: list[DecisionLog],
                    limits: list[CpuLimit]) -> dict[str, object]:
    """Each process's CPU and throttling over the periods, and which services each decided."""
    start, end, usage, throttling = run_periods(args, procs, ports, limits)
    together = merged(logs)
    each = [decided_by(merged([log]), start, end) for log in logs]
    twice = set.intersection(*each) if len(each) > 1 else set()
    return {"cpu_s_per_period": [round(u["cpu_s"] / args.periods, 2) for u in usage],
            "services_each": [len(found) for found in each],
            "decided_by_two": len(twice), "lease_lapses": [lapses(log, start, end) for log in logs],
            **collector_and_memory(usage, args.periods),
            "cpu_limit": args.cpu_limit,
            "throttled_pct": [t["throttled_pct"] for t in throttling],
            "load1_mean": usage[0]["load1_mean"], "load1_max": usage[0]["load1_max"],
            **together.coverage(services, start, end, args.sync)}


def stop_replicas(procs: list[Process], limits: list[CpuLimit]) -> None:
    for proc in procs:
        scale.stop_operator(proc)
    for limit in limits:
        limit.remove()


def configuration(args: argparse.Namespace, env: dict[str, str], namespace: str,
                  services: list[str], replicas: int) -> dict[str, object]:
    shards = args.shards if replicas > 1 else 1
    flags = ["--lease-shards", str(shards)]
    started = time.time()
    procs, ports, logs, limits = start_replicas(args, env, namespace, flags, replicas)
    try:
        split_s = wait_split(ports, shards, 300) if replicas > 1 else 0.0
        warmup = wait_decided(logs, services, started + split_s, args.warmup_limit,
                              2 * args.sync)
        apply_cpu_limits(limits, args.cpu_limit, args.sync)
        return {"replicas": replicas, "shards": shards, "services": len(services),
                "split_s": round(split_s, 1), "warmup_s": round(warmup, 1),
                **measure_periods(args, services, procs, ports, logs, limits),
                "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    finally:
        stop_replicas(procs, limits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--sync", type=int, default=15)
    parser.add_argument("--periods", type=int, default=6)
    parser.add_argument("--history-seconds", type=int, default=86400)
    parser.add_argument("--history-minutes", type=int, default=40)
    parser.add_argument("--warmup-limit", type=float, default=900.0)
    parser.add_argument("--profile", action="store_true",
                        help="run every process under cProfile (slower: the figures are not the "
                             "benchmark's); stats beside their logs")
    parser.add_argument("--profile-after", type=float, default=240.0)
    parser.add_argument("--profile-for", type=float, default=60.0)
    parser.add_argument("--cpu-limit", type=float, default=0.0,
                        help="cores each process may use (a CFS quota; 0: no limit)")
    parser.add_argument("--replicas", default="1,2",
                        help="the configurations: processes sharing the services, in order")
    args = parser.parse_args()
    env = scale.cluster_env()
    scale.kubectl(env, "apply", "-f", str(ROOT / "crds"))
    scale.enough_nodes(env, args.services)  # a Pending pod is a service that cannot decide
    namespace = f"scale-{uuid.uuid4().hex[:6]}"
    services = scale.names(args.services)
    exporter = scale_feed.TextExporter(f"bench-{namespace}", Path(env["PROMETHEUS_TARGETS_DIR"]))
    feed = scale_feed.Feed(exporter, services)
    scale_feed.backfill_history(env, feed, exporter.port, args.history_minutes, args.sync)
    feed.publish()
    threading.Thread(target=feed.run, daemon=True).start()
    scale.create_objects(env, namespace, services, exporter.name, args)
    scale_feed.wait_history(env, feed, args.history_minutes)
    scale.wait_pods(env, namespace, len(services), args.warmup_limit)
    rows = []
    try:
        for replicas in (int(r) for r in args.replicas.split(",")):
            rows.append(configuration(args, env, namespace, services, replicas))
            scale_feed.log(json.dumps(rows[-1]))
    finally:
        feed.stop.set()
        exporter.stop()
        scale.remove_namespace(env, namespace)
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
