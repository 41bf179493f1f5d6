"""The effect of `predictive.scaleDownOnForecast` on one trace: hpa, predictive (the default, the
forecast only raises replicas) and predictive with scale-down on forecast, through the replay
(the operator's own decision code). Writes benchmarks/results/scale_down_on_forecast.md.

Run from the repository root: PYTHONPATH=operator python benchmarks/scale_down_on_forecast.py
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from adaptive_operator.commands.replay import read_trace
from adaptive_operator.domain.scaling.advisor import ForecastAdvisor
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor, PredictiveSettings
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay
from adaptive_operator.domain.scaling.replay_metrics import ReplayMetrics, replay_metrics

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / ".." / "shared" / "data" / "load" / "google_cluster_2019_avg_cpu_5min.csv"
RESULTS = ROOT / "benchmarks" / "results" / "scale_down_on_forecast.md"
STARTUP_SECONDS = 120.0
REPLICAS_AT_MEDIAN = 20  # as in load_traces.py


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TRACE
    trace = read_trace(path)
    target = statistics.median(v for v in trace.values if v is not None) / REPLICAS_AT_MEDIAN
    config = ReplayConfig(target, STARTUP_SECONDS, trace.interval_seconds)
    policies: dict[str, ForecastAdvisor | None] = {
        "hpa": None,
        "predictive (default)": PredictiveAdvisor(),
        "predictive, scaleDownOnForecast": PredictiveAdvisor(
            PredictiveSettings(scale_down_on_forecast=True)
        ),
    }
    found: dict[str, ReplayMetrics] = {}
    for name, advisor in policies.items():
        result = replay(trace.values, config, advisor)
        found[name] = replay_metrics(
            trace.values,
            result.serving_pods,
            result.desired_replicas,
            target,
            trace.interval_seconds,
        )
    hpa = found["hpa"]
    lines = [
        f"# scaleDownOnForecast on {path.stem}",
        "",
        f"Start-up {STARTUP_SECONDS:g} s; target per replica = median load / "
        f"{REPLICAS_AT_MEDIAN}; HPA v2 defaults.",
        "",
        "| policy | unserved demand | time under-provisioned | replica-hours | "
        "scale changes | unserved / hpa | replica-hours / hpa |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in found.items():
        lines.append(
            f"| {name} | {m.unserved:.4%} | {m.under_time:.2%} | "
            f"{m.replica_hours:,.1f} | {m.scale_changes} | "
            f"{m.unserved / hpa.unserved:.2f} | "
            f"{m.replica_hours / hpa.replica_hours:.3f} |"
        )
    lines += [
        "",
        "Command (from the repository root):",
        "`PYTHONPATH=operator .venv/bin/python benchmarks/scale_down_on_forecast.py`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
