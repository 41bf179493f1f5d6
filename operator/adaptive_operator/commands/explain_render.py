"""What `adaptive-operator explain` prints, from an AdaptiveService's status and a few series:
plain functions of plain data, so the text can be tested without a cluster."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

PLOT_HEIGHT = 10
MARKS = (("capacity", "#"), ("load", "*"), ("forecast", "o"))


def header(body: Mapping[str, Any]) -> list[str]:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [f"AdaptiveService {meta.get('namespace')}/{meta.get('name')} -> {ref.get('kind')} "
            f"{ref.get('name')} ({ref.get('apiVersion')}), mode {spec.get('mode', 'Active')}",
            f"  replicas: current {status.get('currentReplicas', '?')}, desired "
            f"{status.get('desiredReplicas', '?')}, min {spec.get('minReplicas', 1)}, max "
            f"{spec.get('maxReplicas')}"]


def decision(status: Mapping[str, Any]) -> list[str]:
    last = status.get("lastDecision")
    if not last:
        return ["Last decision: none yet"]
    lines = [f"Last decision ({last.get('time')}): {last.get('reason')} -> "
             f"{last.get('replicas')} replicas", f"  why: {last.get('message', '')}"]
    for metric in last.get("metrics") or []:
        lines.append(f"  input {metric.get('name')}: value {metric.get('value')} at "
                     f"{metric.get('targetPerReplica')} per replica -> "
                     f"{metric.get('proposedReplicas')} replicas")
    return lines


def forecast(status: Mapping[str, Any]) -> list[str]:
    found = status.get("forecast")
    if not found:
        return ["Forecast: predictive scaling is off (reactive only)"]
    lines = [f"Forecast: model {found.get('model', 'none yet')} of metric {found.get('metric')}"
             f" (backtest MASE {found.get('backtestMase', 'n/a')}; Auto picks the model by "
             "rolling-origin backtest)",
             f"  guard: {'trusted' if found.get('reliable') else 'NOT trusted'}: "
             f"{found.get('reason', '')}",
             f"  look-ahead {found.get('lookAheadSeconds')} s ({found.get('lookAheadSource')})"]
    for point in (found.get("forecast") or [])[-3:]:
        lines.append(f"  +{point.get('offsetSeconds')} s: median {point.get('p50')}, high "
                     f"{point.get('pHigh')}")
    return lines


def coupling(status: Mapping[str, Any]) -> list[str]:
    found = status.get("coupling")
    if not found:
        return []
    lines = [f"Coupling: {found.get('summary')}: {found.get('reason')}"]
    for up in found.get("upstreams") or []:
        lines.append(f"  upstream {up.get('service')}.{up.get('metric')}: ratio "
                     f"{up.get('ratio')}, lag {up.get('lagSeconds')} s")
    return lines


def healing(status: Mapping[str, Any]) -> list[str]:
    found = status.get("healing")
    if not found:
        return ["Healing: off"]
    state, action, ledger = found.get("state") or {}, found.get("lastAction"), found.get("ledger")
    lines = [f"Healing: {state.get('reason')}: {state.get('message')}"]
    verdict = found.get("lastVerdict")
    if verdict:
        lines.append(f"  anomaly score {verdict.get('score')} "
                     f"({'anomalous' if verdict.get('isAnomaly') else 'normal'})")
    if action:
        lines.append(f"  last action {action.get('action')} ({action.get('reason')}): "
                     f"{action.get('outcome')} at {action.get('time')}")
    if ledger:
        lines.append(f"  ledger: {ledger.get('total', 0)} actions, {ledger.get('lastHour', 0)} "
                     f"in the last hour, by outcome {ledger.get('byOutcome', {})}")
    return lines


def conditions(status: Mapping[str, Any]) -> list[str]:
    return ["Conditions:"] + [
        f"  {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message', '')}"
        for c in status.get("conditions") or []]


def plot(series: Mapping[str, Sequence[float | None]], height: int = PLOT_HEIGHT) -> list[str]:
    """A small chart, one column per row of the series: # capacity, * load, o forecast (drawn
    at the time it is for); later marks cover earlier ones."""
    known = [v for values in series.values() for v in filter(_drawable, values)]
    if not known:
        return ["(no data to plot)"]
    top, width = max(known) or 1.0, max(len(v) for v in series.values())
    grid = _marked_grid(series, top, width, height)
    axis = [f"{top:>10.4g} |"] + [" " * 10 + " |"] * (height - 2) + [f"{0:>10} |"]
    return [a + "".join(row) for a, row in zip(axis, grid, strict=True)] + [
        " " * 12 + "-" * width, " " * 12 + _legend(series)]


def _legend(series: Mapping[str, Sequence[float | None]]) -> str:
    return "  ".join(f"{mark} {name}" for name, mark in MARKS if name in series)


def _drawable(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


def _marked_grid(series: Mapping[str, Sequence[float | None]], top: float, width: int,
                 height: int) -> list[list[str]]:
    """Rows of marks, the top row first: each drawable value at its height, scaled to `top`."""
    grid = [[" "] * width for _ in range(height)]
    for name, mark in MARKS:
        for x, value in enumerate(series.get(name, ())):
            if _drawable(value):
                y = min(height - 1, round(value / top * (height - 1)))
                grid[height - 1 - y][x] = mark
    return grid


def explain(body: Mapping[str, Any], series: Mapping[str, Sequence[float | None]] | None,
            series_error: str = "") -> str:
    status = body.get("status") or {}
    sections = [header(body), decision(status), forecast(status), coupling(status),
                healing(status), conditions(status)]
    if series is not None:
        sections.append(["Recent load, forecast and capacity:", *plot(series)])
    else:
        sections.append([f"Recent load, forecast and capacity: not shown ({series_error})"])
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"
