"""The live demo: a real load trace replayed in accelerated time against the running operator.

One trace row is played per `row_seconds`; the operator sees it through Prometheus like any
metric, forecasts it, and scales a Deployment. A table is printed as it happens and a picture of
load, capacity, forecast and replicas is written at the end.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAMESPACE = "adaptive-demo"
NAME = "web"

MANIFEST = """
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: web, image: registry.example/web:1}}]}}
---
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  scaleTargetRef: {{name: {name}}}
  minReplicas: 1
  maxReplicas: 100
  syncPeriodSeconds: {sync}
  metrics:
    - name: load
      query: 'sum(demo_load{{exporter="adaptive-demo"}})'
      targetPerReplica: {target}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: {window}}}
  predictive:
    enabled: true
    lookAheadSeconds: {lookahead}
    historySeconds: {history}
"""


@dataclass
class Sample:
    t: float
    load: float
    ready: int
    desired: int | None
    forecast: float | None
    note: str


@dataclass
class DemoRun:
    target: float
    samples: list[Sample] = field(default_factory=list)


def read_trace(path: Path) -> list[float]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    values = [float(r["value"]) for r in rows if r.get("value") not in (None, "")]
    if len(values) < 10:
        raise ValueError(f"{path}: too few rows with a value")
    return values


def synthetic_trace(days: int = 8, per_day: int = 48) -> list[float]:
    """A daily pattern with a weekly touch and a little deterministic noise."""
    values = []
    for i in range(days * per_day):
        day = 2 * math.pi * (i % per_day) / per_day
        week = 1.0 + 0.15 * math.sin(2 * math.pi * i / (7 * per_day))
        noise = 0.03 * math.sin(i * 12.9898) * math.sin(i * 78.233)
        values.append(100.0 * week * (1.0 + 0.6 * math.sin(day - math.pi / 2) + noise))
    return values


def downsample(values: Sequence[float], factor: int) -> list[float]:
    """Mean of each `factor` rows: a 5-minute trace becomes 30-minute rows with factor 6."""
    return [sum(values[i:i + factor]) / len(values[i:i + factor])
            for i in range(0, len(values), factor)]


def kubectl_apply(text: str) -> None:
    subprocess.run(["kubectl", "apply", "-f", "-"], input=text, text=True, check=True,
                   stdout=subprocess.DEVNULL)


def observe(apps: Any, custom: Any) -> tuple[int, int | None, float | None, str]:
    dep = apps.read_namespaced_deployment(NAME, NAMESPACE)
    ready = int(dep.status.ready_replicas or 0)
    svc = custom.get_namespaced_custom_object("adaptive.dev", "v1alpha1", NAMESPACE,
                                              "adaptiveservices", NAME)
    status = svc.get("status") or {}
    forecast = status.get("forecast") or {}
    points = forecast.get("forecast") or []
    high = float(points[-1]["pHigh"]) if points else None
    note = str((status.get("lastDecision") or {}).get("reason", ""))
    if forecast.get("summary"):
        note = f"{note} [{forecast['summary']}]"
    return ready, status.get("desiredReplicas"), high, note


def print_row(sample: Sample, target: float, out: Callable[[str], None]) -> None:
    forecast = f"{sample.forecast:8.4g}" if sample.forecast is not None else "       -"
    capacity = sample.ready * target
    flag = "  UNDER" if sample.load > capacity else ""
    out(f"{sample.t:7.0f}s {sample.load:8.4g} {capacity:9.4g} {sample.ready:6d} "
        f"{sample.desired if sample.desired is not None else '-':>7} {forecast}  "
        f"{sample.note}{flag}")


def write_picture(run: DemoRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in run.samples]
    fig, ax = plt.subplots(figsize=(11, 5))
    ax.plot(t, [s.load for s in run.samples], label="load", color="black")
    ax.step(t, [s.ready * run.target for s in run.samples], where="post",
            label="capacity (ready pods x target)", color="tab:blue")
    ax.plot(t, [s.forecast if s.forecast is not None else math.nan for s in run.samples],
            label="forecast (high quantile, at the look-ahead)", color="tab:orange",
            linestyle="--")
    ax.set_xlabel("demo time (s)")
    ax.set_ylabel("load")
    ax.set_title("Adaptive Operator live demo")
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def play(values: Sequence[float], row_seconds: float, set_load: Callable[[float], None],
         sample: Callable[[float, float], Sample], out: Callable[[str], None],
         run: DemoRun) -> None:
    out(f"{'time':>8} {'load':>8} {'capacity':>9} {'ready':>6} {'desired':>7} "
        f"{'forecast':>8}  decision [forecast]")
    start = time.monotonic()
    for i, value in enumerate(values):
        set_load(value)
        deadline = start + (i + 1) * row_seconds
        time.sleep(max(0.0, deadline - time.monotonic()))  # pacing the replay, not a race
        current = sample(time.monotonic() - start, value)
        run.samples.append(current)
        print_row(current, run.target, out)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
