"""The table benchmarks/scale.py writes: benchmarks/results/scale.md from its runs' figures."""

from __future__ import annotations

from typing import Any

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
    if run.get("rollout_wait_s") is not None:
        after += f"; the bad rollouts' ReplicaSets came {run['rollout_wait_s']:g} s after the image"
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
- *Bad rollout*: the probe Deployment's image changes and, once its new ReplicaSet exists (as
  a bad image's errors begin once its pods run), its error ratio jumps from 0.01 to 0.5; the
  time is from the jump to the first `RollBack` healing decision (DryRun). The detector needs 2
  of 3 anomalous rows (persistence), so at least two sync periods. Rows before 2026-12-07 18:00
  raised the errors at the image change: at 3,000 and 5,000 services the controller-manager
  created the ReplicaSet up to 70 s later, the anomaly began before the rollout, and no
  RollBack was due (those rows show none).
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
