"""Scale: N AdaptiveServices (predictive scaling and DryRun healing on) on one operator process.

    .venv/bin/python benchmarks/scale.py --services 1000

starts (or reuses) the private test cluster named by ADAPTIVE_CLUSTER_NAME (default `scale`),
creates N Deployments (1 replica, on KWOK nodes) and N AdaptiveServices in a fresh namespace, an
exporter serving every service's load, error ratio and latency, and 40 minutes of that history
written into Prometheus (promtool blocks) so the anomaly detectors fit at once; then runs the
operator (one process, `--namespace` the benchmark's) and measures over `--periods` sync periods:
- whether it keeps up: the share of services with a scaling decision and a healing decision in
  each period (from its JSON decision log) and the gaps between one service's decisions;
- its CPU seconds per period (utime + stime from /proc, robust to the shared machine), peak RSS,
  the load average, Prometheus queries/s and API requests/s (its own /metrics counters);
- then a load step on a few probe services (time to the scale decision) and a bad rollout with
  an error-ratio jump on others (time from the onset to the DryRun RollBack decision).
Each run adds a row to benchmarks/results/scale.json and rewrites benchmarks/results/scale.md
(keeping what is written by hand below its marker line).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(ROOT / "benchmarks"))
from scale_feed import Feed, TextExporter, backfill_history, log, wait_history  # noqa: E402
from scale_measure import (  # noqa: E402
    DecisionLog,
    ProcessMeter,
    await_probes,
    counters,
    rates,
)
from scale_table import report, rewritten  # noqa: E402
from scale_waits import wait_fits  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
REVISION = "deployment.kubernetes.io/revision"


def cluster_env() -> dict[str, str]:
    env = dict(os.environ)
    if not env.get("KUBECONFIG"):
        name = env.setdefault("ADAPTIVE_CLUSTER_NAME", "scale")
        # KWOK nodes only: the machine's one real node belongs to the shared cluster.
        env.setdefault("ADAPTIVE_REAL_NODE", "0")
        env.setdefault("ADAPTIVE_CLUSTER_STATE",
                       str(Path.home() / ".cache" / "adaptive-operator" / f"cluster-{name}"))
        out = subprocess.run([str(ROOT / "e2e" / "cluster"), "up"], env=env, check=True,
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export "):].partition("=")
                env[key] = value.strip("'\"").replace("$PATH", env.get("PATH", ""))
    return env


def enough_nodes(env: dict[str, str], pods: int) -> None:
    """Fake nodes for every pod (110 each, and one spare): a pod left Pending is a service with
    no ready pods, which neither scales nor heals like the others."""
    if os.environ.get("KUBECONFIG"):  # someone else's cluster: theirs to size
        return
    count = max(3, math.ceil(pods / 110) + 1)
    subprocess.run([str(ROOT / "e2e" / "cluster"), "nodes", str(count)], env=env, check=True,
                   capture_output=True, text=True)
    log(f"{count} fake nodes")


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["kubectl", *args], env=env, input=stdin, capture_output=True,
                          text=True, check=True, timeout=600).stdout


def names(count: int) -> list[str]:
    return [f"s{i:04d}" for i in range(count)]


def manifests(name: str, feed: str, sync: int, history: int) -> str:
    where = f'exporter="{feed}",svc="{name}"'
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      tolerations: [{{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}}]
      containers: [{{name: app, image: "registry.example/app:1"}}]
---
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: 5
  syncPeriodSeconds: {sync}
  metrics: [{{name: load, query: 'sum(bench_load{{{where}}})', targetPerReplica: 10}}]
  predictive: {{enabled: true, historySeconds: {history}}}
  healing:
    enabled: true
    mode: DryRun
    metrics:
      errorRatio: 'sum(bench_errors{{{where}}})'
      latency: 'sum(bench_latency{{{where}}})'
    roles: {{latency: latency}}
"""


def create_objects(env: dict[str, str], namespace: str, services: list[str], feed: str,
                   args: argparse.Namespace) -> None:
    kubectl(env, "create", "namespace", namespace)
    chunks = [services[start:start + 50] for start in range(0, len(services), 50)]
    done = [0]

    def create(chunk: list[str]) -> None:
        kubectl(env, "create", "-n", namespace, "-f", "-", stdin="".join(
            manifests(s, feed, args.sync, args.history_seconds) for s in chunk))
        done[0] += len(chunk)
        log(f"created {done[0]}/{len(services)} Deployments and AdaptiveServices")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, chunks))


def start_operator(env: dict[str, str], namespace: str, flags: list[str], log_path: Path,
                   source: Path,
                   profile: tuple[float, float, Path] | None = None,
                   ) -> tuple[subprocess.Popen[bytes], int]:
    from socket import socket

    with socket() as a, socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        metrics_port, health_port = a.getsockname()[1], b.getsockname()[1]
    run_env = dict(env, PYTHONPATH=str(source))
    launcher = ["-m", "adaptive_operator"]
    if profile:
        launcher = [str(ROOT / "benchmarks" / "profile_operator.py"), "--after",
                    str(profile[0]), "--for", str(profile[1]), "--out", str(profile[2]), "--"]
    proc = subprocess.Popen(
        [sys.executable, *launcher, "run", "--log-format", "json",
         "--namespace", namespace, "--metrics-port", str(metrics_port),
         "--health-port", str(health_port), "--lease-name", f"scale-{namespace}",
         "--lease-namespace", namespace, *flags],
        env=run_env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    return proc, metrics_port


def measure(args: argparse.Namespace) -> dict[str, object]:
    env = cluster_env()
    kubectl(env, "apply", "-f", str(ROOT / "crds"))
    enough_nodes(env, args.services + 2 * args.probes)
    namespace = f"scale-{uuid.uuid4().hex[:6]}"
    services = names(args.services)
    feed_name = f"bench-{namespace}"
    exporter = TextExporter(feed_name, Path(env["PROMETHEUS_TARGETS_DIR"]))
    feed = Feed(exporter, services, args.health_cycle_seconds)
    backfill_history(env, feed, exporter.port, args.history_minutes, args.sync)
    feed.publish()
    threading.Thread(target=feed.run, daemon=True).start()
    create_objects(env, namespace, services, feed_name, args)
    if args.history_minutes > 0:
        wait_history(env, feed, args.history_minutes)
    log_path = ROOT / ".state" / "scale" / f"{namespace}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    profile = None
    if args.profile:
        profile = (args.profile_after, args.profile_for, log_path.with_suffix(".pstats"))
    source = Path(args.operator_source).resolve()
    # An older operator (--operator-source) may not know the flags: pass them only to this one.
    flags = (["--batch-queries", args.batch_queries, "--watch-cache", args.watch_cache]
             if source == ROOT / "operator" else [])
    proc, port = start_operator(env, namespace, flags, log_path, source, profile)
    log(f"operator pid {proc.pid}, log {log_path}")
    stop_s: float | None = None
    try:
        result = run_phases(args, env, namespace, services, feed, proc, port, log_path)
    finally:
        stop_s = stop_operator(proc)
        feed.stop.set()
        exporter.stop()
        if not args.keep:
            remove_namespace(env, namespace)
    result["stop_s"] = stop_s
    return result


def remove_namespace(env: dict[str, str], namespace: str) -> None:
    """Delete the namespace; the operator is stopped, so the finalizers kopf put on the
    services are taken off (else the namespace stays Terminating)."""
    subprocess.run(["kubectl", "delete", "namespace", namespace, "--wait=false"],
                   env=env, capture_output=True, check=False)
    found = subprocess.run(["kubectl", "get", "adaptiveservices", "-n", namespace, "-o", "name"],
                           env=env, capture_output=True, text=True, check=False).stdout.split()

    def release(batch: list[str]) -> None:
        subprocess.run(["kubectl", "patch", "-n", namespace, "--type=merge", "-p",
                        '{"metadata":{"finalizers":null}}', *batch],
                       env=env, capture_output=True, check=False)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(release, [found[i:i + 50] for i in range(0, len(found), 50)]))


def stop_operator(proc: subprocess.Popen[bytes]) -> float | None:
    """SIGTERM, then SIGKILL after a minute: a measurement is never lost to a slow stop.
    Returns how long the graceful stop took (None: it had to be killed)."""
    asked = time.monotonic()
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        log(f"operator pid {proc.pid} did not stop within 60 s of SIGTERM: killed")
        proc.kill()
        proc.wait()
        return None
    stopped = round(time.monotonic() - asked, 1)
    log(f"operator stopped {stopped} s after SIGTERM")
    return stopped


def run_phases(args: argparse.Namespace, env: dict[str, str], namespace: str,
               services: list[str], feed: Feed, proc: subprocess.Popen[bytes], port: int,
               log_path: Path) -> dict[str, object]:
    # The code the operator runs: the checkout's commit when it started (+ when uncommitted).
    commit = subprocess.run(
        ["git", "-C", args.operator_source, "describe", "--always", "--dirty=+"],
        capture_output=True, text=True, check=False).stdout.strip()
    decisions = DecisionLog(log_path)
    started = time.time()
    while len(decisions.seen("decision")) < len(services) or len(
            decisions.seen("healing decision")) < len(services):
        if proc.poll() is not None:
            raise SystemExit(f"the operator exited: see {log_path}")
        time.sleep(5)
        decisions.read()
        log(f"warm-up: {len(decisions.seen('decision'))} scaling and "
            f"{len(decisions.seen('healing decision'))} healing decisions made so far")
        if time.time() - started > args.warmup_limit:
            log("not every service was decided within the warm-up limit; measuring anyway")
            break
    warmup = time.time() - started
    running, waited = wait_pods(env, namespace, len(services), args.warmup_limit)
    first = {"scaling_started": len(decisions.seen("decision")),
             "healing_started": len(decisions.seen("healing decision"))}
    log(f"after {warmup:.0f}s of warm-up, {first['scaling_started']} services have a scaling "
        f"and {first['healing_started']} a healing decision; measuring {args.periods} periods")
    if args.settle > 0:  # past the start's one-off status writes (backfills, first fits)
        log(f"settling for {args.settle:.0f} s before the measured window")
        time.sleep(args.settle)
    fits_wait = wait_fits(port, args.after_fits, log) if args.after_fits > 0 else None
    meter, before = ProcessMeter(proc.pid), counters(port, env)
    window_start = time.time()
    time.sleep(args.periods * args.sync)
    window_end = time.time()
    usage, after = meter.sample(), counters(port, env)
    decisions.read()
    result: dict[str, object] = {
        "services": len(services), "sync": args.sync,
        "batch": args.batch_queries if args.operator_source == str(ROOT / "operator") else
        f"({args.operator_source})",
        "watch_cache": args.watch_cache if args.operator_source == str(ROOT / "operator") else "",
        "periods": args.periods, "warmup_s": round(warmup, 1), "settle_s": args.settle,
        "fits_wait_s": fits_wait,
        "history_seconds": args.history_seconds, **first,
        "pods_running": running, "pods_wait_s": waited,
        **decisions.coverage(services, window_start, window_end, args.sync),
        **usage, **rates(before, after, window_end - window_start), **decisions.flagged(),
    }
    result.update(probe_latencies(args, env, namespace, services, feed, decisions))
    result.update(fits_differenced(decisions), health_cycle_s=args.health_cycle_seconds)
    result["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["commit"] = commit
    return result


def wait_pods(env: dict[str, str], namespace: str, count: int,
                     limit: float) -> tuple[int, float]:
    """Wait until every Deployment has its pod: the controller-manager rolls them out at its
    client's rate (about 5 a second on the KWOK cluster, 10 minutes for 3,000), and a service
    with no ReplicaSet yet has no pod and no earlier revision to roll back to."""
    started = time.monotonic()
    while True:
        # Running pods, not the Deployments' status: the controller writes that last, minutes
        # after the pods run at 3,000.
        available = len(kubectl(env, "get", "pods", "-n", namespace, "-o", "name",
                                "--field-selector=status.phase=Running").split())
        waited = round(time.monotonic() - started, 1)
        if available >= count or waited > limit:
            log(f"{available}/{count} pods running after {waited} s more")
            return available, waited
        log(f"{available}/{count} pods running; waiting")
        time.sleep(10)


def pick_probes(count: int, services: list[str],
                decisions: DecisionLog) -> tuple[list[str], list[str]]:
    """The services that get a load step, and the ones that get a bad rollout."""
    # Probes among the services already running both daemons (at 1,000 the last ones created
    # may not have started when the warm-up ends, and a probe not running measures nothing).
    running = decisions.seen("decision") & decisions.seen("healing decision")
    ready = [s for s in services if s in running] or services
    count = min(count, max(1, len(ready) // 2))
    step_probes = ready[-count:]
    # A bad rollout only on services whose detector is fitted: before its fit (the first fits
    # take about 20 minutes at 5,000) a service's healing says "no verdict yet", and the
    # probe would measure the fit queue, not the healing.
    fitted = decisions.seen("detector fitted")
    heal_ready = [s for s in ready[:-count] if s in fitted]
    return step_probes, heal_ready[-count:]


def probe_latencies(args: argparse.Namespace, env: dict[str, str], namespace: str,
                    services: list[str], feed: Feed, decisions: DecisionLog) -> dict[str, object]:
    """Load steps, then bad rollouts with an error-ratio jump, on a few probe services each."""
    step_probes, heal_probes = pick_probes(args.probes, services, decisions)
    onset = time.time()
    for service in step_probes:
        feed.override[(service, "load")] = 45.0  # 5 replicas' worth at 10 each
    log(f"load step on {step_probes}")
    rolled = roll_out(env, namespace, heal_probes, args.probe_timeout)
    for service in heal_probes:
        feed.override[(service, "errors")] = 0.5
    errors_at = time.time()
    log(f"bad rollout on {heal_probes}: errors from {errors_at - onset:.1f} s after the step")
    scale, heal = await_probes(args.probe_timeout, (onset, errors_at), step_probes, heal_probes,
                               decisions)
    return {"scale_latency_s": sorted(round(t - onset, 1) for t in scale.values()),
            "scale_probes": len(step_probes),
            "heal_latency_s": sorted(round(t - errors_at, 1) for t in heal.values()),
            "heal_probes": len(heal_probes), "rollout_wait_s": rolled}


def roll_out(env: dict[str, str], namespace: str, services: list[str], limit: float) -> float:
    """Change the services' image and wait (up to `limit` s) until each has its new ReplicaSet,
    as a bad image's errors begin only once its pods exist. Errors raised at the change itself
    began before the rollout when the controller-manager was slow (its ReplicaSet came 70 s
    later at 3,000 services), and the healer rightly blamed no rollout for them. Returns the
    seconds waited."""
    started = time.monotonic()
    for service in services:
        kubectl(env, "-n", namespace, "set", "image", f"deployment/{service}",
                "app=registry.example/app:2")
    while services and time.monotonic() - started < limit:
        found = json.loads(kubectl(env, "-n", namespace, "get", "replicasets", "-o", "json",
                                   "-l", f"app in ({','.join(services)})"))
        new = {rs["metadata"]["labels"]["app"] for rs in found["items"]
               if rs["metadata"].get("annotations", {}).get(REVISION) == "2"}
        if new >= set(services):
            break
        time.sleep(1)
    return round(time.monotonic() - started, 1)


def fits_differenced(decisions: DecisionLog) -> dict[str, int]:
    """The detector fits so far, and those that judged a metric by its change since one
    period earlier (the fit's log line names them)."""
    fitted = [entry for _, _, entry in decisions.events.get("detector fitted", [])]
    return {"fits": len(fitted), "fits_differenced": sum(bool(e.get("differenced"))
                                                         for e in fitted)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--sync", type=int, default=15, help="syncPeriodSeconds")
    parser.add_argument("--periods", type=int, default=8, help="sync periods measured")
    parser.add_argument("--batch-queries", default="true", choices=["true", "false"])
    parser.add_argument("--watch-cache", default="true", choices=["true", "false"],
                        help="the operator's --watch-cache (false: per-sync API reads)")
    parser.add_argument("--history-seconds", type=int, default=86400,
                        help="spec.predictive.historySeconds (the forecaster's window)")
    parser.add_argument("--history-minutes", type=int, default=40,
                        help="minutes of past metrics written into Prometheus before the start")
    parser.add_argument("--health-cycle-seconds", type=float, default=0.0,
                        help="a latency sawtooth of this period (0: noise only); the detector "
                             "differences it once its training rows hold a few cycles (450 s "
                             "at a 15-s sync: 30 rows; --history-minutes 50 gives 200 rows)")
    parser.add_argument("--probes", type=int, default=3, help="probe services per scenario")
    parser.add_argument("--probe-timeout", type=float, default=240.0)
    parser.add_argument("--warmup-limit", type=float, default=900.0)
    parser.add_argument("--after-fits", type=float, default=0.0, help="max s for fits to drain")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds between the warm-up and the measured window")
    parser.add_argument("--operator-source", default=str(ROOT / "operator"),
                        help="the operator package's source folder, e.g. another checkout's "
                             "operator/ to measure before a change")
    parser.add_argument("--profile", action="store_true",
                        help="run the operator under cProfile (slower: figures not comparable)")
    parser.add_argument("--profile-after", type=float, default=180.0)
    parser.add_argument("--profile-for", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the namespace afterwards")
    args = parser.parse_args(argv)
    result = measure(args)
    log(json.dumps(result))
    runs_path = RESULTS / "scale.json"
    runs = json.loads(runs_path.read_text()) if runs_path.exists() else []
    runs.append(result)
    runs_path.write_text(json.dumps(runs, indent=1) + "\n")
    page = RESULTS / "scale.md"
    page.write_text(rewritten(page.read_text() if page.exists() else "", runs))
    print(report(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
