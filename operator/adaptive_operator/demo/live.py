"""The live demo: a real load trace replayed in accelerated time against the running operator.

One trace row is played per `row_seconds`. First a history prefix (a few days of the trace) is
played into Prometheus; a few rows before it ends (so that the operator has fitted its model when
the table starts) two services are created on the same load: `web`, predictive, whose first sync
backfills the history from Prometheus (the operator's own restart path) and so forecasts from
the start, and `web-hpa`, reactive only, for comparison. A table is printed as it happens and
a picture of load, capacity and forecast is written at the end.
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
# Tighter than HPA's 0.1: the trace's daily swing is about +-10% of its mean, which the default
# tolerance would mostly absorb.
TOLERANCE = 0.05
NAME = "web"
REACTIVE = "web-hpa"

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
  tolerance: {tolerance}
  metrics:
    - name: load
      query: 'sum(demo_load{{exporter="adaptive-demo"}})'
      targetPerReplica: {target}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: {window}}}
{predictive}"""

PREDICTIVE = """\
  predictive:
    enabled: true
    lookAheadSeconds: {lookahead}
    historySeconds: {history}
"""


def manifests(replicas: int, sync: int, target: float, lookahead: int, history: int) -> str:
    """The predictive service and its reactive twin, each with its own Deployment."""
    common = {"ns": NAMESPACE, "replicas": replicas, "sync": sync, "target": target,
              "window": 3 * sync, "tolerance": TOLERANCE}
    predictive = PREDICTIVE.format(lookahead=lookahead, history=history)
    return "\n---\n".join((MANIFEST.format(name=NAME, predictive=predictive, **common),
                           MANIFEST.format(name=REACTIVE, predictive="", **common)))


@dataclass
class Sample:
    t: float
    load: float
    ready: int
    desired: int | None
    forecast: float | None
    note: str
    reactive_ready: int | None = None
    forecast_offset: float = 0.0  # seconds ahead of `t` the forecast is for


@dataclass
class DemoRun:
    target: float
    samples: list[Sample] = field(default_factory=list)
    history: list[float] = field(default_factory=list)  # the rows played before the table
    row_seconds: float = 2.0
    created_at: float | None = None  # when the services were created, relative to the table


def read_trace(path: Path) -> list[float]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    values = [float(r["value"]) for r in rows if r.get("value") not in (None, "")]
    if len(values) < 10:
        raise ValueError(f"{path}: too few rows with a value")
    return values


def synthetic_trace(days: int = 8, per_day: int = 24) -> list[float]:
    """A daily pattern with a weekly touch and a little deterministic noise (hourly rows)."""
    values = []
    for i in range(days * per_day):
        day = 2 * math.pi * (i % per_day) / per_day
        week = 1.0 + 0.15 * math.sin(2 * math.pi * i / (7 * per_day))
        noise = 0.03 * math.sin(i * 12.9898) * math.sin(i * 78.233)
        values.append(100.0 * week * (1.0 + 0.6 * math.sin(day - math.pi / 2) + noise))
    return values


def downsample(values: Sequence[float], factor: int) -> list[float]:
    """Mean of each `factor` rows: a 5-minute trace becomes hourly rows with factor 12."""
    return [sum(values[i:i + factor]) / len(values[i:i + factor])
            for i in range(0, len(values), factor)]


def kubectl(*args: str, text: str | None = None) -> None:
    subprocess.run(["kubectl", *args], input=text, text=True, check=True,
                   stdout=subprocess.DEVNULL)


def kubectl_apply(text: str) -> None:
    """Server-side, as the e2e suite applies the CRDs: a client-side apply of objects created
    otherwise warns about a missing last-applied annotation on every run."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", text=text)


def ready_replicas(apps: Any, name: str) -> int:
    return int(apps.read_namespaced_deployment(name, NAMESPACE).status.ready_replicas or 0)


def observe(apps: Any, custom: Any) -> tuple[int, int | None, float | None, float, str]:
    """The predictive service: ready pods, desired, the forecast's high quantile at the
    look-ahead and how far ahead that is, and the last decision [the forecast's summary]."""
    ready = ready_replicas(apps, NAME)
    svc = custom.get_namespaced_custom_object("adaptive.dev", "v1alpha1", NAMESPACE,
                                              "adaptiveservices", NAME)
    status = svc.get("status") or {}
    forecast = status.get("forecast") or {}
    points = forecast.get("forecast") or []
    high = float(points[-1]["pHigh"]) if points else None
    offset = float(points[-1].get("offsetSeconds", 0.0)) if points else 0.0
    note = str((status.get("lastDecision") or {}).get("reason", ""))
    if forecast.get("summary"):
        note = f"{note} [{forecast['summary']}]"
    return ready, status.get("desiredReplicas"), high, offset, note


HEADER = (f"{'time':>8} {'load':>8} {'capacity':>9} {'ready':>6} {'desired':>7} "
          f"{'forecast':>8} {'hpa':>4}  decision [forecast]")


def print_row(sample: Sample, target: float, out: Callable[[str], None]) -> None:
    forecast = f"{sample.forecast:8.4g}" if sample.forecast is not None else "       -"
    capacity = sample.ready * target
    flag = "  UNDER" if sample.load > capacity else ""
    hpa = "-" if sample.reactive_ready is None else str(sample.reactive_ready)
    out(f"{sample.t:7.0f}s {sample.load:8.4g} {capacity:9.4g} {sample.ready:6d} "
        f"{sample.desired if sample.desired is not None else '-':>7} {forecast} {hpa:>4}  "
        f"{sample.note}{flag}")


def under_rows(run: DemoRun) -> tuple[int, int]:
    """Rows whose load was above the capacity of the predictive and of the reactive service."""
    predictive = sum(1 for s in run.samples if s.load > s.ready * run.target)
    reactive = sum(1 for s in run.samples
                   if s.reactive_ready is not None and s.load > s.reactive_ready * run.target)
    return predictive, reactive


def write_picture(run: DemoRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 6))
    # Drawn in this order, which is also the legend's.
    _draw_history(ax, run)
    _draw_load_and_capacities(ax, run)
    _draw_forecast(ax, run)
    ax.set_xlabel("demo time (s); each row of the trace is played for "
                  f"{run.row_seconds:g} s")
    ax.set_ylabel("load")
    ax.set_title("Adaptive Operator live demo")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _draw_history(ax: Any, run: DemoRun) -> None:
    """The history played before the table (at negative times), and when the services were
    created."""
    if run.history:
        n = len(run.history)
        ax.plot([(i - n + 1) * run.row_seconds for i in range(n)], run.history, color="grey",
                label="history: played into Prometheus, backfilled by the predictive service")
        ax.axvline(0, color="grey", linestyle=":")
    if run.created_at is not None:
        ax.axvline(run.created_at, color="tab:green", linestyle=":",
                   label="services created (the table starts at 0)")


def _draw_load_and_capacities(ax: Any, run: DemoRun) -> None:
    """The load, and the capacity of the predictive service and (when sampled) the reactive
    one."""
    t = [s.t for s in run.samples]
    ax.plot(t, [s.load for s in run.samples], label="load", color="black")
    ax.step(t, [s.ready * run.target for s in run.samples], where="post",
            label="capacity, predictive (ready pods x target)", color="tab:green")
    if any(s.reactive_ready is not None for s in run.samples):
        ax.step(t, [math.nan if s.reactive_ready is None else s.reactive_ready * run.target
                    for s in run.samples], where="post",
                label="capacity, reactive HPA only", color="tab:blue", alpha=0.7)


def _draw_forecast(ax: Any, run: DemoRun) -> None:
    ax.plot([s.t + s.forecast_offset for s in run.samples],
            [s.forecast if s.forecast is not None else math.nan for s in run.samples],
            label="forecast (high quantile), drawn at the time it is for", color="tab:orange",
            linestyle="--")


def pace(start: float, row: int, row_seconds: float) -> None:
    """Wait until row `row` has been played for its time (pacing the replay, not a race)."""
    time.sleep(max(0.0, start + (row + 1) * row_seconds - time.monotonic()))


def play_history(values: Sequence[float], row_seconds: float,
                 set_load: Callable[[float], None], progress: Callable[[int], None]) -> None:
    """Play rows without sampling; `progress(rows played)` every tenth row and at the end."""
    start = time.monotonic()
    for i, value in enumerate(values):
        set_load(value)
        pace(start, i, row_seconds)
        if (i + 1) % 10 == 0 or i + 1 == len(values):
            progress(i + 1)


def play(values: Sequence[float], row_seconds: float, set_load: Callable[[float], None],
         sample: Callable[[float, float], Sample], out: Callable[[str], None],
         run: DemoRun) -> None:
    out(HEADER)
    start = time.monotonic()
    for i, value in enumerate(values):
        set_load(value)
        pace(start, i, row_seconds)
        current = sample(time.monotonic() - start, value)
        run.samples.append(current)
        print_row(current, run.target, out)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
