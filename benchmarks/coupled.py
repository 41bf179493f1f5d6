"""Coupled scaling on coupled traces: per-service reactive vs per-service predictive vs coupled.

No small public microservice call-graph trace is reachable from the package registries here, so
the coupling is synthetic: for each trace in ../shared/data/load, the downstream's load is a
lagged, noisy multiple of the trace (the upstream): down[t] = RATIO * up[t - LAG] * (1 + e_t),
e_t ~ N(0, NOISE) with a fixed seed. The downstream is replayed three ways through the
operator's own decision code (`domain.replay`), with the same pod model:

- reactive: HPA only, from the downstream's own metric;
- predictive: plus the downstream's own forecast (the operator's `PredictiveAdvisor`);
- coupled: plus the coupled forecast from the upstream (its reading and its own forecast, made
  causally row by row), under the coupling guard.

Reported for the downstream: unserved demand (fraction of the load above the serving capacity),
rows under capacity, replica-hours. Writes benchmarks/results/coupled.md, .json and .png.

Run from the repository root: nice -n 10 env PYTHONPATH=operator python benchmarks/coupled.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from adaptive_operator.commands.replay import read_trace
from adaptive_operator.domain.scaling.advisor import ForecastAdvisor
from adaptive_operator.domain.scaling.coupled_advisor import (
    CoupledAdvisor,
    OwnAdvisor,
    UpstreamTrace,
)
from adaptive_operator.domain.scaling.replay import ReplayConfig, ReplayResult, replay
from adaptive_operator.domain.scaling.replay_metrics import ReplayMetrics, replay_metrics

ROOT = Path(__file__).resolve().parent.parent
# ADAPTIVE_DATA points elsewhere (a worktree sits beside the checkout, not in it).
DATA = Path(os.environ.get("ADAPTIVE_DATA", ROOT / ".." / "shared" / "data")) / "load"
RESULTS = ROOT / "benchmarks" / "results"
STARTUP_SECONDS = 120.0  # the pods' start-up, as in benchmarks/load_traces.py
REPLICAS_AT_MEDIAN = 20  # the downstream's target per replica: its median load / 20
RATIO = 3.0
NOISE = 0.05
SEED = 18
# The lag in rows per trace: two 5-minute rows; ten 1-second rows.
LAGS = {"google_cluster_2019_avg_cpu_5min": 2, "azure_vm_2019_total_cpu_5min": 2,
        "azure_llm_inference_2023_conv_requests_per_second": 10}
POLICIES = ("reactive", "predictive", "coupled")
# Plain headroom at the coupled policy's cost: reactive with its target lowered until its
# replica-hours match (house rule: a peer at equal cost).


def downstream_of(up: list[float | None], lag: int, seed: int) -> list[float | None]:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, NOISE, len(up))
    out: list[float | None] = []
    for t in range(len(up)):
        source = up[max(0, t - lag)]
        out.append(None if source is None else max(0.0, RATIO * source * (1 + noise[t])))
    return out


def advisor_for(policy: str, up: list[float | None], up_target: float) -> ForecastAdvisor | None:
    if policy == "reactive":
        return None
    if policy == "predictive":
        return OwnAdvisor()
    return CoupledAdvisor(OwnAdvisor(), [UpstreamTrace(up, OwnAdvisor(), up_target)])


def run(policy: str, up: list[float | None], down: list[float | None],
        config: ReplayConfig, up_target: float) -> tuple[ReplayMetrics, ReplayResult, float]:
    advisor = advisor_for(policy, up, up_target)
    start = time.process_time()
    result = replay(down, config, advisor)
    seconds = time.process_time() - start
    metrics = replay_metrics(down, result.serving_pods, result.desired_replicas,
                             config.target_per_replica, config.interval_seconds)
    return metrics, result, seconds


def headroom_at(cost: float, down: list[float | None],
                config: ReplayConfig) -> tuple[ReplayMetrics, float]:
    """Reactive scaling with the target lowered (bisection) to spend `cost` replica-hours."""
    low, high = 0.3, 1.0  # fractions of the target
    best: ReplayMetrics | None = None
    start = time.process_time()
    for _ in range(12):
        mid = (low + high) / 2
        trial = replace(config, target_per_replica=config.target_per_replica * mid)
        result = replay(down, trial)
        metrics = replay_metrics(down, result.serving_pods, result.desired_replicas,
                                 config.target_per_replica, config.interval_seconds)
        if metrics.replica_hours > cost:
            low = mid
        else:
            high, best = mid, metrics
    assert best is not None
    return best, time.process_time() - start


def plot(path: Path, panels: list[tuple[str, list[float | None], dict[str, ReplayResult],
                                    float, float]]) -> None:
    """One panel per trace: the downstream's load and each policy's serving capacity over the
    last day (the last 600 rows of the 1-second trace)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.2 * len(panels)))
    colours = {"reactive": "tab:blue", "predictive": "tab:orange", "coupled": "tab:green"}
    for ax, (name, down, results, target, interval) in zip(axes, panels, strict=True):
        rows = min(len(down), int(86400 / interval) if interval >= 60 else 600)
        tail = slice(len(down) - rows, len(down))
        hours = np.arange(rows) * interval / 3600.0
        load = [np.nan if v is None else v for v in down[tail]]
        ax.plot(hours, load, color="black", lw=1.2, label="downstream load")
        for policy, result in results.items():
            capacity = np.array(result.serving_pods[tail]) * target
            ax.step(hours, capacity, where="mid", color=colours[policy], lw=1,
                    label=f"capacity, {policy}")
        ax.set_ylabel("load")
        ax.set_title(f"downstream of {name}: lag {LAGS[name]} rows", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("hours (last rows of each trace)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> int:
    rows_md = ["| upstream trace | policy | unserved | rows under capacity | replica-hours | "
               "CPU s |", "|---|---|---:|---:|---:|---:|"]
    record: dict[str, dict[str, object]] = {}
    panels = []
    for name, lag in LAGS.items():
        trace = read_trace(DATA / f"{name}.csv")
        up = trace.values
        down = downstream_of(up, lag, SEED)
        known = [v for v in down if v is not None]
        target = float(np.median(known)) / REPLICAS_AT_MEDIAN
        up_target = target / RATIO
        config = ReplayConfig(target, STARTUP_SECONDS, trace.interval_seconds)
        results: dict[str, ReplayResult] = {}
        record[name] = {"lag_rows": lag, "interval_seconds": trace.interval_seconds}
        for policy in POLICIES:
            metrics, result, seconds = run(policy, up, down, config, up_target)
            results[policy] = result
            record[name][policy] = asdict(metrics) | {"cpu_seconds": round(seconds, 1)}
            rows_md.append(f"| {name} | {policy} | {metrics.unserved:.2%} | "
                           f"{metrics.under_time:.1%} | {metrics.replica_hours:,.0f} | "
                           f"{seconds:.1f} |")
            print(rows_md[-1], flush=True)
        cost = record[name]["coupled"]["replica_hours"]  # type: ignore[index]
        metrics, seconds = headroom_at(cost, down, config)
        record[name]["reactive_equal_cost"] = asdict(metrics)
        rows_md.append(f"| {name} | reactive, headroom at coupled's cost | "
                       f"{metrics.unserved:.2%} | {metrics.under_time:.1%} | "
                       f"{metrics.replica_hours:,.0f} | {seconds:.1f} |")
        print(rows_md[-1], flush=True)
        panels.append((name, down, results, target, trace.interval_seconds))
    plot(RESULTS / "coupled.png", panels)
    header = (f"# Coupled scaling: a downstream {RATIO:g}x its upstream, lagged, {NOISE:.0%} noise "
              f"(seed {SEED})\n\nStart-up {STARTUP_SECONDS:g} s; downstream target per replica = "
              f"its median load / {REPLICAS_AT_MEDIAN}. Synthetic coupling of the public traces "
              "in ../shared/data/load (no call-graph trace is reachable here).\n\n")
    footer = ("\n\nReproduce: `nice -n 10 env PYTHONPATH=operator python benchmarks/coupled.py`\n")
    (RESULTS / "coupled.md").write_text(header + "\n".join(rows_md) + footer, encoding="utf-8")
    (RESULTS / "coupled.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
