"""What benchmarks/scale.py measures: the operator's decision log, its process, its counters."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import statistics
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


class DecisionLog:
    """The operator's JSON log, read as it grows: when each service was decided."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.events: dict[str, list[tuple[str, float, dict[str, Any]]]] = {}

    def read(self) -> None:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or "timestamp" not in entry:
                continue
            at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
            # A line without a service's name (a healing backfill's) is kept under "".
            self.events.setdefault(entry.get("event", ""), []).append(
                (str(entry.get("name", "")), at, entry))

    def seen(self, event: str) -> set[str]:
        return {name for name, _, _ in self.events.get(event, [])}

    def times_between(self, event: str, start: float, end: float) -> dict[str, list[float]]:
        """Each service's `event` times in [start, end)."""
        times: dict[str, list[float]] = {}
        for name, at, _ in self.events.get(event, []):
            if start <= at < end:
                times.setdefault(name, []).append(at)
        return times

    def coverage(self, services: list[str], start: float, end: float,
                 sync: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for event, key in (("decision", "scaling"), ("healing decision", "healing")):
            times = self.times_between(event, start, end)
            expected = (end - start) / sync
            gaps = [b - a for ts in times.values() for a, b in itertools.pairwise(sorted(ts))]
            # Kept up: decided in every period (at most one missed at the window's edges) and
            # never waited more than half a period longer than asked.
            kept = [s for s in services if len(times.get(s, [])) >= int(expected) - 1
                    and _max_gap(times[s]) <= 1.5 * sync]
            out[f"{key}_kept_up_pct"] = round(100 * len(kept) / len(services), 1)
            made = sum(len(t) for t in times.values())
            out[f"{key}_decisions_pct"] = round(100 * made / (expected * len(services)), 1)
            out[f"{key}_gap_p50_s"] = round(_quantile(gaps, 0.5), 1)
            out[f"{key}_gap_p95_s"] = round(_quantile(gaps, 0.95), 1)
            out[f"{key}_gap_max_s"] = round(max(gaps, default=float("nan")), 1)
        return out

    def flagged(self) -> dict[str, int]:
        """Healing verdicts other than Healthy so far, and on how many services: read before
        the probes' faults, every one is a false alarm (the feed's metrics are all healthy)."""
        flags = [name for name, _, entry in self.events.get("healing decision", [])
                 if entry.get("reason") != "Healthy"]
        return {"flagged_verdicts": len(flags), "flagged_services": len(set(flags)),
                "verdicts": len(self.events.get("healing decision", []))}

    def first_after(self, event: str, names: list[str], after: float,
                    accept: Callable[[dict[str, Any]], bool]) -> dict[str, float]:
        found: dict[str, float] = {}
        for name, at, entry in self.events.get(event, []):
            if name in names and at >= after and name not in found and accept(entry):
                found[name] = at
        return found


def await_probes(timeout: float, onset: float, step_probes: list[str], heal_probes: list[str],
                 decisions: DecisionLog) -> tuple[dict[str, float], dict[str, float]]:
    """When each probe service first scaled up and first rolled back, until all did or the
    timeout passed."""
    deadline = time.time() + timeout
    scale: dict[str, float] = {}
    heal: dict[str, float] = {}
    while time.time() < deadline and (len(scale) < len(step_probes) or
                                      len(heal) < len(heal_probes)):
        time.sleep(2)
        decisions.read()
        scale = decisions.first_after("decision", step_probes, onset,
                                      lambda e: int(e.get("desired", 0)) > 1)
        heal = decisions.first_after("healing decision", heal_probes, onset,
                                     lambda e: e.get("action") == "RollBack")
    return scale, heal


def _max_gap(times: list[float]) -> float:
    ordered = sorted(times)
    return max((b - a for a, b in itertools.pairwise(ordered)), default=0.0)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state first: index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[list[str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            found.append(fields)
    return found


class ProcessMeter:
    """CPU seconds (utime + stime, all threads), peak RSS and the load average, sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start_cpu, self.start = self.cpu(), time.time()
        self.start_wait = self.runqueue_wait()
        self.rss: list[float] = []
        self.load: list[float] = []
        self.stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def cpu(self) -> float:
        """The process's CPU seconds and its children's (the Lease renewals run in one): the
        live ones' own, the ended ones' as the kernel added them to the parent's."""
        fields = _stat(self.pid)
        own = sum(int(fields[index]) for index in (11, 12, 13, 14))
        return (own + sum(int(child[11]) + int(child[12])
                          for child in _children(self.pid))) / TICKS

    def runqueue_wait(self) -> float:
        """Seconds the process's threads spent runnable but waiting for a core (schedstat's
        second field): how much the shared machine starved it, apart from its own CPU use."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # a thread that ended meanwhile
        return total / 1e9

    def _sample(self) -> None:
        while not self.stop.wait(3.0):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.rss.append(int(line.split()[1]) / 1024)
            self.load.append(float(Path("/proc/loadavg").read_text().split()[0]))

    def sample(self) -> dict[str, float]:
        self.stop.set()
        cpu, wall = self.cpu() - self.start_cpu, time.time() - self.start
        waited = self.runqueue_wait() - self.start_wait
        return {"cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                "runqueue_wait_s": round(waited, 1),
                "cpu_cores": round(cpu / wall, 3),
                "rss_mib_max": round(max(self.rss, default=float("nan"))),
                "load1_mean": round(statistics.fmean(self.load), 2) if self.load else float("nan"),
                "load1_max": round(max(self.load, default=float("nan")), 2)}


def rates(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {f"{k}_per_s": round((after.get(k, 0.0) - before.get(k, 0.0)) / seconds, 2)
            for k in after}


def metric_sums(text: str, names: dict[str, str]) -> dict[str, float]:
    sums = dict.fromkeys(names.values(), 0.0)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        for prefix, key in names.items():
            if head.startswith(prefix) and head[len(prefix):len(prefix) + 1] in ("{", ""):
                sums[key] += float(value)
    return sums


def _by_label(text: str, name: str, key: str) -> dict[str, float]:
    """One counter's series, keyed `key:<label values joined by />`: which requests they were."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            head, _, value = line.rpartition(" ")
            labels = [part.partition("=")[2].strip('"') for part in
                      head[len(name) + 1:-1].split(",")]
            found[f"{key}:{'/'.join(labels)}"] = float(value)
    return found


_LABEL = re.compile(r'(\w+)="([^"]*)"')


def refusals(text: str) -> dict[str, float]:
    """The API server's answers of 400 and over (`apiserver_request_total`), keyed
    `refused:<resource>/<subresource>/<verb>/<code>`: what the cluster turned down, whoever
    asked (the operator's own counter sees only its own client's calls, not kopf's)."""
    found: dict[str, float] = {}
    prefix = "apiserver_request_total{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        head, _, value = line.rpartition(" ")
        labels = dict(_LABEL.findall(head))
        if int(labels.get("code", "0") or 0) < 400:
            continue
        key = "refused:" + "/".join(labels.get(name, "") for name in
                                    ("resource", "subresource", "verb", "code"))
        found[key] = found.get(key, 0.0) + float(value)
    return found


def own_metrics(port: int, timeout: float = 10.0) -> str:
    """The operator's /metrics page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
        return str(response.read().decode())


def gc_pauses(port: int) -> dict[str, float]:
    """The operator's seconds in the garbage collector so far, by generation ("0", "1", "2");
    NaN when it does not answer within a minute (a process stalled under a CPU quota: the
    run's other figures still count)."""
    try:
        text = own_metrics(port, timeout=60.0)
    except OSError:
        return {"0": math.nan, "1": math.nan, "2": math.nan}
    found = _by_label(text, "adaptive_gc_pause_seconds_total", "gen")
    return {key.partition(":")[2]: value for key, value in found.items()}


def counters(port: int, env: dict[str, str]) -> dict[str, float]:
    own = own_metrics(port)
    out = metric_sums(own, {"adaptive_prometheus_queries_total": "prom_queries",
                             "adaptive_prometheus_reads_total": "prom_reads",
                             "adaptive_api_requests_total": "api_requests",
                             "adaptive_reconcile_duration_seconds_sum": "sync_seconds",
                             "adaptive_reconcile_duration_seconds_count": "syncs",
                             "adaptive_worker_queue_seconds_sum": "worker_queue_seconds",
                             "adaptive_worker_run_seconds_sum": "worker_run_seconds",
                             "adaptive_worker_run_seconds_count": "worker_calls"})
    out.update(_by_label(own, "adaptive_api_requests_total", "api"))
    out.update(_by_label(own, "adaptive_worker_run_seconds_count", "worker"))
    out.update(_by_label(own, "adaptive_forecast_fits_total", "fits"))
    apiserver = subprocess.run(["kubectl", "get", "--raw", "/metrics"], env=env,
                               capture_output=True, text=True, check=False).stdout
    out.update(metric_sums(apiserver, {"apiserver_request_total": "apiserver_requests_all"}))
    out.update(refusals(apiserver))
    query = 'sum(prometheus_http_requests_total{handler=~"/api/v1/query.*"})'
    url = f"{env['PROMETHEUS_URL']}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.load(response)["data"]["result"]
    out["prometheus_served_queries"] = float(result[0]["value"][1]) if result else 0.0
    return out


COLUMNS = [
    ("services", "services"), ("batch", "batched queries"),
    ("watch_cache", "watch cache"),
    ("started", "services running when measured: scaling / healing"),
    ("scaling_kept_up_pct", "services decided every period: scaling (%)"),
    ("healing_kept_up_pct", "healing (%)"),
    ("decisions_pct", "decisions made, % of one per service and period: scaling / healing"),
    ("scaling_gap_p95_s", "gap between a service's decisions p95 / max (s)"),
    ("cpu_per_period", "operator CPU s per 15 s period"),
    ("cpu_per_period_1000", "CPU s per period per 1,000 services"),
    ("rss_mib_max", "RSS MiB"), ("prom_reads_per_s", "metric reads/s"),
    ("prom_queries_per_s", "Prometheus queries/s"),
    ("api_requests_per_s", "API requests/s (operator logic)"),
    ("apiserver_requests_all_per_s", "API server requests/s (whole cluster)"),
    ("load1_mean", "load average (1 min), mean"),
    ("timing", "mean scaling sync / worker-thread queue / worker call (s); run-queue wait "
               "CPU s per period"),
    ("scale_latency_s", "load step -> scale decision (s)"),
    ("heal_latency_s", "bad rollout -> DryRun RollBack decision (s)"),
    ("warmup_s", "start -> every service deciding (s)"),
    ("stop_s", "SIGTERM -> stopped (s)"),
]


def cell(run: dict[str, Any], key: str) -> str:
    periods = run["wall_s"] / run["sync"]
    if key == "cpu_per_period":
        return f"{run['cpu_s'] / periods:.2f}"
    if key == "cpu_per_period_1000":
        return f"{run['cpu_s'] / periods * 1000 / run['services']:.2f}"
    if key == "decisions_pct":
        return f"{run['scaling_decisions_pct']} / {run['healing_decisions_pct']}"
    if key == "watch_cache":  # runs before the caches existed read through the API
        return str(run.get(key) or "false")
    if key == "timing":
        return timing(run, periods)
    if key == "started":
        return f"{run.get('scaling_started', run['services'])} / " \
               f"{run.get('healing_started', run['services'])}"
    if key == "scaling_gap_p95_s":
        return (f"{run['scaling_gap_p95_s']} / {run['scaling_gap_max_s']} (healing "
                f"{run['healing_gap_p95_s']} / {run['healing_gap_max_s']})")
    return plain(run, key)


def plain(run: dict[str, Any], key: str) -> str:
    if key not in run:  # a figure older runs did not measure
        return ""
    value = run[key]
    if key == "stop_s" and value is None:
        return "> 60 (killed)"
    if isinstance(value, list):
        return ", ".join(f"{v:g}" for v in value) + (
            "" if len(value) == run.get(key.split("_")[0] + "_probes") else " (some never)")
    return str(value)


def _ratio(run: dict[str, Any], top: str, bottom: str) -> str:
    a, b = run.get(f"{top}_per_s"), run.get(f"{bottom}_per_s")
    return f"{a / b:.2f}" if a is not None and b else "-"


def timing(run: dict[str, Any], periods: float) -> str:
    """Where a sync's time goes (runs before these were measured show nothing)."""
    if "runqueue_wait_s" not in run:
        return ""
    return (f"{_ratio(run, 'sync_seconds', 'syncs')} / "
            f"{_ratio(run, 'worker_queue_seconds', 'worker_calls')} / "
            f"{_ratio(run, 'worker_run_seconds', 'worker_calls')}; "
            f"{run['runqueue_wait_s'] / periods:.2f}")


def settled(run: dict[str, Any]) -> str:
    """How long the run waited after its warm-up before measuring, when it did."""
    after = f", measured {run['settle_s']:.0f} s after" if run.get("settle_s") else ""
    if run.get("fits_wait_s") is not None:
        after += f", once the start's fits drained ({run['fits_wait_s']:.0f} s more)"
    if run.get("health_cycle_s"):
        after += (f", latency in a {run['health_cycle_s']:.0f}-s cycle: {run['fits_differenced']}"
                  f" of {run['fits']} detector fits differenced it")
    if "flagged_verdicts" in run:
        after += (f"; before the probes {run['flagged_verdicts']:,} of {run['verdicts']:,} "
                  f"healing verdicts flagged a healthy service ({run['flagged_services']:,} "
                  "services)")
    return after


def report(runs: list[dict[str, Any]]) -> str:
    lines = ["# Scale: AdaptiveServices on one operator process", "",
             "`.venv/bin/python benchmarks/scale.py --services N [--batch-queries false]` on the "
             "private test cluster (KWOK nodes), 15 s sync, predictive scaling and DryRun healing "
             "on every service; one operator process. CPU is the operator process's utime + "
             "stime over the measured window (the machine is shared: 2 cores, other engineers' "
             "work running, hence the load average). Each row is one run.", "",
             "| " + " | ".join(title for _, title in COLUMNS) + " | when, commit |",
             "|" + "---|" * (len(COLUMNS) + 1)]
    for run in runs:
        lines.append("| " + " | ".join(cell(run, key) for key, _ in COLUMNS)
                     + f" | {run.get('when', '')}, {run.get('commit', '')}{settled(run)} |")
    return "\n".join(lines + breakdown(runs)) + "\n" + NOTES


def breakdown(runs: list[dict[str, Any]]) -> list[str]:
    """The newest run's worker-thread calls by pool and function, and the API server's
    refusals, per second (runs before these were counted: nothing)."""
    run = next((r for r in reversed(runs) if any(k.startswith("worker:") for k in r)), None)
    if run is None:
        return []
    lines = ["", f"Worker-thread calls and API refusals per second, {run.get('when', '')} "
             f"({run['services']} services, {run.get('commit', '')}):", ""]
    for prefix, title in (("worker:", "worker calls (function/pool)"),
                          ("fits:", "forecast fits (why)"),
                          ("refused:", "API server refusals (resource/subresource/verb/code)")):
        lines.append(f"- {title}: {_rates(run, prefix) or 'none'}")
    return lines


def _rates(run: dict[str, Any], prefix: str) -> str:
    """The run's non-zero per-second rates of the series `prefix...`, busiest first."""
    found = sorted(((v, k[len(prefix):-len("_per_s")]) for k, v in run.items()
                    if k.startswith(prefix) and k.endswith("_per_s") and v), reverse=True)
    return ", ".join(f"`{name}` {value:g}" for value, name in found)


# What follows this line in scale.md is written by hand and kept when a run rewrites the file.
NOTES_MARK = "<!-- written by hand below: benchmarks/scale.py keeps it -->"


def rewritten(old: str, runs: list[dict[str, Any]]) -> str:
    """The report of `runs`, followed by the hand-written notes of the file it replaces."""
    kept = old.partition(NOTES_MARK)[2] if NOTES_MARK in old else "\n"
    return report(runs) + NOTES_MARK + kept


NOTES = """
## How to read it

- *Services decided every period*: the share of services with a decision in every sync period
  of the measured window (at most one missed at the window's edges) and no gap between two of
  its decisions over 1.5 periods, from the operator's JSON decision log (`decision` and
  `healing decision` events). The gap columns are the p95 / max time between one service's
  consecutive decisions: 15 s means it kept up.
- *CPU s per period*: utime + stime of the operator process (all threads) over the window,
  divided by the periods in it; "per 1,000 services" scales that linearly. One core gives 15
  CPU s per 15 s period.
- *Mean scaling sync* is the wall time of one scaling sync (observe, decide, act;
  `adaptive_reconcile_duration_seconds`); the *worker-thread queue* is how long a blocking call
  (API server, Prometheus, fitting) waited for one of the operator's worker threads and the
  *worker call* how long it then ran (`adaptive_worker_*_seconds`); *run-queue wait* is the CPU
  time the operator's threads were runnable but waited for a core (`/proc/<pid>/task/*/schedstat`):
  the shared machine's share of the latency.
- *Metric reads/s* are the values the services asked for (`adaptive_prometheus_reads_total`);
  *Prometheus queries/s* the HTTP queries that served them (`adaptive_prometheus_queries_total`)
  and *API requests/s* the operator's own reads and writes (`adaptive_api_requests_total`);
  the whole-cluster figure is the API server's `apiserver_request_total` (KWOK, controllers,
  kopf's watches too).
- *Load step*: probe services' load goes from 7 to 45 (target 10 per replica); the time is
  from that change in the exporter to the first decision asking for more than 1 replica. It
  includes Prometheus' 2 s scrape, up to one sync period and the shared answer's age (at most
  a third of a period).
- *Bad rollout*: the probe Deployment's image changes and its error ratio jumps from 0.01 to
  0.5 at the same moment; the time is to the first `RollBack` healing decision (DryRun). The
  detector needs 2 of 3 anomalous rows (persistence), so at least two sync periods.
- Each service's history (40 minutes, a row every 15 s) is written into Prometheus with
  promtool before the operator starts, so the detectors fit at once; the forecaster's window is
  `historySeconds: 86400` (the default 14 days costs more memory, see
  domain/scaling/forecast_memory.py) and finds no season in 40 minutes of noise, so the
  forecasts run but the decisions are reactive.
- *Start -> every service deciding* is the warm-up: from the operator's start to the moment
  every service has a scaling and a healing decision (history backfills and first fits).
  *SIGTERM -> stopped* is the graceful stop (the benchmark kills it after 60 s).
- **The 1,000-service rows before 2026-11-27 14:45 UTC ran on 3 KWOK nodes of 110 pods**: 670
  of the 1,000 Deployments had no pod running, so those services held at `FailedGetMetrics`
  ("no ready pods") and their healing planned DryRun evictions every cool-down. Later runs size
  the fake nodes to the pods (`e2e/cluster nodes N`).
- **3,000 services (2026-12-04, three runs)**: one process did not keep up on this machine: no
  service was decided in every period, and the runs made 44 / 26 %, 12.5 / 0 % and 58 / 65 %
  (scaling / healing) of one decision per service and period. It used 0.46, 0.26 and 0.63 of a
  core (6.95, 3.86 and 9.45 CPU s per period; 2.32, 1.29 and 3.15 per 1,000 services against
  6.11-6.74 in the kept-up 1,000 rows) while its threads waited 14.2, 8.9 and 14.3 CPU s per
  period for a core, at load averages of 9.5, 14.2 and 8.8: the lower CPU per 1,000 services is
  work left undone, not cheaper work. A scaling sync took 50.8, 184.7 and 5.3 s on average, of
  which the wait for a worker thread was 26.2, 95.0 and 2.2 s and the call itself 0.24, 0.59
  and 0.12 s. The first two runs measured while the controller-manager was still creating
  pods (about 5 Deployments a second: 3,000 pods took 11 minutes); the third waits for every
  pod first. Its bad-rollout probes still reached no RollBack: the new ReplicaSet appeared 70 s
  after the image change and the error jump, so the anomaly began before the rollout.
- **Status writes (2026-12-06)**: in steady state nearly every status write was the scaling
  history's once-a-minute time refresh (1,000 services: 16.7 writes/s by construction; the
  rows of 2026-12-05 measured 16.7 to 20.3 API requests/s). Since 7564e8d the history is
  written only when it changes, and a replica taking a service over seeds the window with the
  current count as upstream's controller does on every start. The 07:58 row (1,000 services,
  40 periods from 20 s after the warm-up): 4.2 requests/s, 0.145 of a core (2.18 CPU s per
  period), 1,200 MiB, against 3.26 to 3.61 CPU s per period in the 8-period rows of 2026-12-05
  (not the same window: those measured right after a 100-s warm-up). A poll of the operator's
  counters every 30 s in that run: from 07:49 to 07:58, 4.0 patches/s, all of them the healing
  verdict's 5-minute refresh (every service's together, as they started together), and 2.17
  CPU s per period. At 5,000 services the 08:56 row (measured 420 s after the warm-up, 838a3c7
  with this file's `--settle`; the fix below was not in the running process) made 92.8 % of the
  scaling decisions due (94.7 % of the services decided every period) against 34.2 % in the
  2026-12-05 row, on 0.69 of a core, but healing only 38.4 %: 128.6 status writes/s, nearly all
  `status.healing.state` of services whose detector was not fitted yet (the 5,000 first fits
  run one at a time), rewritten every sync because a missing verdict time read as infinitely
  old; the healing calls waited behind them for a worker thread. Fixed in f8698fa; the 09:50
  row (3394ace, measured 300 s after the warm-up): 89.2 % of the scaling and 90.7 % of the
  healing decisions due, no gap between two of a service's decisions over 22.9 s (scaling) and
  27.3 s (healing), 27 status writes/s, on 0.955 of a core, 3.6 GiB: the process is at one
  core and just short of keeping up (half the services had a gap over 1.5 periods), so 5,000
  per core is still not shown.
"""
