"""Replays of every trace in ../shared/data/load: reactive HPA vs predictive, plus forecast error
per model and the operator's own cost. Prints a markdown table, writes
benchmarks/results/load_traces.md and load_traces.png.

Run from the repository root: PYTHONPATH=operator python benchmarks/load_traces.py
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptive_operator.commands.replay import Trace, read_trace
from adaptive_operator.domain.forecasting.backtest import Plan, score_model
from adaptive_operator.domain.forecasting.baseline import Resolution
from adaptive_operator.domain.forecasting.engine import detect, level_clip
from adaptive_operator.domain.forecasting.models import ModelKind
from adaptive_operator.domain.scaling.predictive import (
    PredictiveAdvisor,
    PredictiveSettings,
    RecordingAdvisor,
)
from adaptive_operator.domain.scaling.replay import ReplayConfig, ReplayResult, replay
from adaptive_operator.domain.scaling.replay_metrics import ReplayMetrics, replay_metrics

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".." / "shared" / "data" / "load"
RESULTS = ROOT / "benchmarks" / "results"
STARTUP_SECONDS = 120.0
# Target per replica: the trace's median load / 20, i.e. about 20 replicas at a typical moment
# (fine enough that one replica is ~5% of the load, coarse enough to be a real deployment).
REPLICAS_AT_MEDIAN = 20


@dataclass
class Outcome:
    metrics: ReplayMetrics
    seconds: float
    p95_ms: float


class TimedAdvisor(RecordingAdvisor):
    """Times each decision of the recording advisor (its bands feed the plot)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def advise(self, history: Sequence[float | None], interval: float, lookahead: float,
               target: float) -> int | None:
        start = time.perf_counter()
        floor = super().advise(history, interval, lookahead, target)
        self.times.append(time.perf_counter() - start)
        return floor


def run_policy(trace: Trace, config: ReplayConfig,
               predictive: bool) -> tuple[Outcome, ReplayResult, TimedAdvisor | None]:
    advisor = TimedAdvisor() if predictive else None
    start = time.process_time()
    result = replay(trace.values, config, advisor)
    seconds = time.process_time() - start
    times = advisor.times if advisor else []
    metrics = replay_metrics(trace.values, result.serving_pods, result.desired_replicas,
                             config.target_per_replica, config.interval_seconds)
    p95 = float(np.percentile(times, 95)) * 1e3 if times else math.nan
    return Outcome(metrics, seconds, p95), result, advisor


def after_warmup(trace: Trace, config: ReplayConfig, result_h: ReplayResult,
                 result_p: ReplayResult, advisor: RecordingAdvisor) -> str:
    """Unserved ratio over the rows after the advisor's first forecast: before it, no forecaster
    can act, and both policies are the same HPA."""
    first = next((i for i, f in enumerate(advisor.floors) if f is not None), None)
    if first is None:
        return "n/a"
    tail = trace.values[first + 1 :]
    h, p = (replay_metrics(tail, r.serving_pods[first + 1 :], r.desired_replicas[first + 1 :],
                           config.target_per_replica, config.interval_seconds)
            for r in (result_h, result_p))
    return f"{p.unserved / h.unserved:.2f} (from row {first + 1})" if h.unserved else "n/a"


def quantile_sweep(name: str, trace: Trace, config: ReplayConfig,
                   hpa: ReplayMetrics) -> list[str]:
    rows = []
    for q in (0.7, 0.9):
        result = replay(trace.values, config, PredictiveAdvisor(PredictiveSettings(quantile=q)))
        m = replay_metrics(trace.values, result.serving_pods, result.desired_replicas,
                           config.target_per_replica, config.interval_seconds)
        rows.append(f"| {name} | {q} | {m.unserved / hpa.unserved:.2f} | "
                    f"{m.replica_hours / hpa.replica_hours:.3f} |")
    return rows


def model_errors(values: list[float | None], interval: float) -> dict[str, tuple[float, float]]:
    """MASE and error relative to seasonal naive per model, rolling origin over the last days, at
    the replay's look-ahead."""
    y = np.array([np.nan if v is None else v for v in values])
    periods = detect(y)
    if not periods:
        return {}
    horizon = max(1, math.ceil(STARTUP_SECONDS / interval))
    span = max(1, round(86400 / interval / 2))
    plan = Plan(Resolution.for_periods(periods, 48), horizon, span, 8, level_clip(y))
    out = {}
    for kind in (ModelKind.SEASONAL_NAIVE, ModelKind.HOLT_WINTERS, ModelKind.MSTL):
        score = score_model(y, kind, plan)
        if score is not None:
            out[kind.value] = (score.mase, score.relative)
    return out


def upsampled(values: list[float | None], factor: int) -> list[float | None]:
    """A 5-minute trace linearly interpolated to 1-minute rows (for the 1-minute cost figures)."""
    y = np.array([np.nan if v is None else v for v in values])
    fine = np.interp(np.arange(len(y) * factor) / factor, np.arange(len(y)), y)
    return [float(v) for v in fine]


def cost_figures(values: list[float | None]) -> dict[str, float]:
    """CPU per decision and per refit, and memory, for one service with 14 days of 1-minute
    history (the Azure VM trace interpolated to 1 minute)."""
    import tracemalloc

    history = upsampled(values, 5)[: 14 * 1440 + 1]
    advisor = PredictiveAdvisor()
    tracemalloc.start()
    start = time.process_time()
    advisor.advise(history, 60.0, 135.0, 1.0)  # backfill: first refit incl. model choice
    first = time.process_time() - start
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    engine = advisor._engine
    assert engine is not None and engine.resolution is not None
    y = engine.history.values()
    refits = []
    for _ in range(5):
        start = time.process_time()
        engine._fit(y, engine.resolution)
        refits.append(time.process_time() - start)
    decisions = []
    for _ in range(1440):
        history.append(history[-1440])
        start = time.perf_counter()
        advisor.advise(history, 60.0, 135.0, 1.0)
        decisions.append(time.perf_counter() - start)
    return {
        "first fit with model choice (s)": first,
        "refit (s, median of 5)": statistics.median(refits),
        "decision p50 (ms)": float(np.percentile(decisions, 50)) * 1e3,
        "decision p95 (ms)": float(np.percentile(decisions, 95)) * 1e3,
        "memory per service (MiB)": memory / 2**20,
    }


def long_replay(values: list[float | None]) -> tuple[int, float, float]:
    """A 90,000-row 1-minute replay (the Azure VM trace interpolated to 1 minute, repeated)."""
    fine = upsampled(values, 5)
    rows = (fine * 3)[:90_000]
    target = statistics.median(v for v in rows if v is not None) / REPLICAS_AT_MEDIAN
    config = ReplayConfig(target, STARTUP_SECONDS, 60.0)
    start = time.process_time()
    wall = time.perf_counter()
    replay(rows, config, PredictiveAdvisor())
    return len(rows), time.process_time() - start, time.perf_counter() - wall


def plot(path: Path, name: str, trace: Trace, result_h: ReplayResult, result_p: ReplayResult,
         advisor: RecordingAdvisor, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = np.arange(len(trace.values)) * trace.interval_seconds / 86400
    fig, ax = plt.subplots(figsize=(12, 4))
    load = np.array([np.nan if v is None else v for v in trace.values]) / target
    ax.plot(days, load, lw=0.6, color="black", label="load / target per replica")
    band = np.array(advisor.high) / target
    ax.plot(days[1:], band[:-1], lw=0.6, color="tab:orange",
            label="forecast high quantile (made one row earlier)")
    ax.step(days, result_h.serving_pods, lw=0.6, color="tab:blue", label="hpa ready pods")
    ax.step(days, result_p.serving_pods, lw=0.6, color="tab:green", label="predictive ready pods")
    ax.set_xlabel("days")
    ax.set_ylabel("replicas")
    ax.set_title(name)
    ax.legend(loc="upper left", fontsize=7)
    last = days[-1]
    ax.set_xlim(max(0.0, last - 3), last)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


NOTES = """
## Defaults changed in this round, and why (the same defaults for every trace)

- **quantile 0.9 -> 0.8.** The floor serves the high quantile of the load at the look-ahead; the
  reactive HPA proposal is still there underneath it, so the floor only has to catch the rise
  that HPA sees one sync too late. On both seasonal traces 0.9 costs more than the 1.05x
  replica-hour budget and 0.8 stays well inside it for nearly the same unserved demand (the sweep
  table above re-runs 0.7 and 0.9 with everything else unchanged).
- **Minimum history: 3 cycles of the detected primary season instead of a fixed 3 days.**
  Detection is tried from 64 rows on (and again each time the history grows by a quarter), so a
  daily season still waits 3 days while a season of a minute in 1-second data is trusted after
  3 minutes. (The guard was unchanged in that round; see below.) On the bursty
  1-second trace no season is detected, so the policy stays reactive and equals hpa.
- **Refit at least twice per primary cycle** (was every 12 h whatever the season), and the model's
  backtest span follows the same interval; a re-detected period within 5% of the current one keeps
  the current resolution, so the model is not re-chosen because the ACF peak moved by one row.
- **The guard (this round).** A fitted model (Holt-Winters, MSTL) is held to seasonal naive as
  before; seasonal naive itself, which cannot be better than itself, is held to persistence (the
  last value) instead; the limit is 1.1x the reference's realised error (a tolerance for the
  noise of the estimate on a young window, not 1.0); the error window follows its realised rows
  (it used to refresh once per 1/64 of its capacity, i.e. keep the backtest's figure for
  hundreds of rows at a short sync) and is kept when a re-choice keeps the model; a model whose
  realised error reaches the limit sits out the next choice. Periods are placed on the peak of
  the unbiased ACF (a young history found 29 rows for a 30-row season half the time).
- Tried and dropped: persistence (the last value) as a stricter guard baseline for every model.
  At a 120 s look-ahead on 5-minute rows persistence is about as good as any model (Google:
  model error 1.02x persistence's), so the guard switched the forecast off there and gave back
  all of the gain (unserved 1.00x hpa); the band, not the point forecast, is what helps.

## Reading the targets

- Targets (issue 4): on the seasonal traces, unserved demand at least 50% below hpa at no more
  than 1.05x its replica-hours; on the bursty trace, no worse than hpa. The "Against the targets"
  table above is computed by this run; the hpa baseline is the replay's own HPA v2 decision code.
- Data: Google cluster-data 2019 and Azure Public Dataset V2 (aggregated by the
  DataCenter-Traces-Datasets project, Zenodo 10.5281/zenodo.14564847, CC-BY-4.0); Azure LLM
  inference trace 2023 (Patel et al., "Splitwise", ISCA 2024, CC-BY-4.0).

Command (from the repository root):
`.venv/bin/python benchmarks/load_traces.py`
"""


def short_name(stem: str) -> str:
    """A plot's name: the trace's source, not its file name (data files are not ours to copy)."""
    return "_".join(stem.split("_")[:2])


def report_trace(path: Path, lines: list[str], summary: list[str], sweep: list[str],
                 errors: list[str]) -> None:
    """Replay one trace under both policies, add its rows to the four tables and plot it."""
    trace = read_trace(path)
    target = statistics.median(v for v in trace.values if v is not None) / REPLICAS_AT_MEDIAN
    config = ReplayConfig(target, STARTUP_SECONDS, trace.interval_seconds)
    hpa, result_h, _ = run_policy(trace, config, False)
    pred, result_p, advisor = run_policy(trace, config, True)
    assert advisor is not None  # a predictive run's
    for policy, o in (("hpa", hpa), ("predictive", pred)):
        m = o.metrics
        lines.append(f"| {path.stem} | {policy} | {m.unserved:.4%} | {m.under_time:.2%} | "
                     f"{m.replica_hours:,.1f} | {m.scale_changes} | {o.seconds:.1f} | "
                     f"{o.p95_ms:.2f} |")
    used = sum(f is not None for f in advisor.floors) / len(advisor.floors)
    h, p = hpa.metrics, pred.metrics
    ratio_u = p.unserved / h.unserved if h.unserved else math.nan
    warm = after_warmup(trace, config, result_h, result_p, advisor)
    summary.append(f"| {path.stem} | {ratio_u:.2f} | {warm} | "
                   f"{p.replica_hours / h.replica_hours:.3f} | {used:.0%} of rows |")
    if used > 0:
        sweep.extend(quantile_sweep(path.stem, trace, config, h))
    for model, (mase, rel) in model_errors(trace.values, trace.interval_seconds).items():
        errors.append(f"| {path.stem} | {model} | {mase:.3f} | {rel:.3f} |")
    plot(RESULTS / f"load_traces_{short_name(path.stem)}.png", path.stem, trace, result_h,
         result_p, advisor, target)
    print(path.stem, "done", file=sys.stderr, flush=True)


def cost_rows() -> list[str]:
    """The operator's own cost, measured on the Azure trace."""
    azure = read_trace(DATA / "azure_vm_2019_total_cpu_5min.csv").values
    costs = ["", "## Cost of the operator (one service, 14 days of 1-minute history)", "",
             "| figure | value |", "|---|---|"]
    costs += [f"| {k} | {v:.3f} |" for k, v in cost_figures(azure).items()]
    rows, cpu, wall = long_replay(azure)
    costs.append(f"| replay of {rows:,} 1-minute rows, predictive (CPU s / wall s) | "
                 f"{cpu:.1f} / {wall:.1f} |")
    return costs


def main() -> int:
    lines = ["# Load traces: reactive HPA vs predictive", "",
             f"Start-up {STARTUP_SECONDS:g} s (the look-ahead); target per replica = median load / "
             f"{REPLICAS_AT_MEDIAN}; HPA v2 defaults; min 1, max 10000 replicas. CPU seconds are "
             "process time on the shared 2-core machine.", "",
             "| trace | policy | unserved demand | time under-provisioned | replica-hours | "
             "scale changes | replay CPU s | decision p95 ms |",
             "|---|---|---|---|---|---|---|---|"]
    errors = ["", "## Forecast error at the look-ahead (rolling origin, 8 origins 12 h apart)",
              "",
              "| trace | model | MASE | error / seasonal naive's |", "|---|---|---|---|"]
    summary = ["", "## Against the targets", "",
               "| trace | unserved: predictive / hpa | same, rows after the first forecast "
               "| replica-hours: predictive / hpa | floor used |",
               "|---|---|---|---|---|"]
    sweep = ["", "## The quantile (default 0.8): predictive / hpa at other quantiles", "",
             "| trace | quantile | unserved | replica-hours |", "|---|---|---|---|"]
    for path in sorted(DATA.glob("*.csv")):
        report_trace(path, lines, summary, sweep, errors)
    costs = cost_rows()
    text = "\n".join(lines + summary + sweep + errors + costs) + "\n"
    text += ("\nmaxrss of the benchmark process: "
             f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB\n")
    text += NOTES
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load_traces.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
