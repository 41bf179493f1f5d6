"""The upstream services of a coupling as their objects say: the edges of the coupling graph,
the query of a metric, the forecast they publish on this service's grid, and why a coupling
cannot hold (pure; handlers/coupled.py reads the objects)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.scaling.coupling import UpstreamInput, find_cycle
from adaptive_operator.domain.scaling.forecast import ServiceForecast
from adaptive_operator.domain.scaling.forecast_history import (
    MetricHistory,
    aligned_view,
    grid_shift,
)

MAX_PATH = 1000  # forecast points read from an upstream's status


def upstream_edges(body: Mapping[str, Any] | None) -> list[str]:
    """The services an upstream's own spec couples to."""
    coupling = ((body or {}).get("spec") or {}).get("coupling") or []
    return [str(c.get("service")) for c in coupling if isinstance(c, dict)]


def upstream_input(own: MetricHistory, upstream: MetricHistory, body: Any, metric: str,
                   period: float) -> UpstreamInput:
    """One upstream's history aligned on this service's rows, the forecast it publishes, and
    its persistence band's rise."""
    view = aligned_view(upstream, grid_shift(own, upstream), own.total)
    return UpstreamInput(view, upstream_path(body, metric, period), upstream_rise(body, metric))


def upstream_query(body: Any, metric: str) -> str | None:
    """The query of the upstream's metric, or None without that metric."""
    try:
        spec = AdaptiveServiceSpec.model_validate(body.get("spec") or {})
    except ValueError:
        return None
    for candidate in spec.metrics:
        if candidate.name == metric:
            return candidate.query
    return None


def upstream_path(body: Any, metric: str, period: float) -> tuple[float, ...]:
    """The upstream's median forecast on this service's grid (rows 1, 2, ... ahead): its coupled
    forecast while trusted, else its own while trusted and of this metric; else none."""
    status = body.get("status") or {}
    points = _coupled_forecast(body, status.get("coupling") or {}, metric) or _own_forecast(
        status.get("forecast") or {}, metric)
    return on_grid(points if isinstance(points, list) else [], period)


def _coupled_forecast(body: Any, coupling: Mapping[str, Any], metric: str) -> Any:
    """The upstream's coupled forecast while trusted, when it is of `metric` (the coupled
    forecast is of the upstream's first metric); else []."""
    if not coupling.get("trusted"):
        return []
    first = ((body.get("spec") or {}).get("metrics") or [{}])[0]
    return coupling.get("forecast") if first.get("name") == metric else []


def _own_forecast(own: Mapping[str, Any], metric: str) -> Any:
    """The upstream's own forecast while trusted, when it is of `metric`; else []."""
    return own.get("forecast") if own.get("reliable") and own.get("metric") == metric else []


def upstream_rise(body: Any, metric: str) -> float | None:
    """The rise over its last reading that the upstream's floor provisions for while it is its
    persistence band's, when its status shows it for this metric; else None. (Added to this
    service's own, fresher, reading of the upstream: the rise moves slowly, the reading not.)"""
    own = (body.get("status") or {}).get("forecast") or {}
    rise = own.get("persistenceRise")
    if own.get("reliable") or own.get("metric") != metric or not isinstance(rise, int | float):
        return None
    return float(rise) if math.isfinite(rise) else None


def on_grid(points: list[Any], period: float) -> tuple[float, ...]:
    """The medians at 1, 2, ... periods ahead, up to the first row without a point."""
    by_row: dict[int, float] = {}
    for point in points[:MAX_PATH]:
        try:
            offset, p50 = float(point["offsetSeconds"]), float(point["p50"])
        except (KeyError, TypeError, ValueError):
            continue
        row = round(offset / period)
        if math.isfinite(p50) and p50 >= 0 and abs(offset - row * period) < period / 2:
            by_row.setdefault(row, p50)
    path: list[float] = []
    while len(path) + 1 in by_row:
        path.append(by_row[len(path) + 1])
    return tuple(path)


def graph_problem(name: str, spec: AdaptiveServiceSpec, bodies: dict[str, Any],
                  edges: dict[str, list[str]]) -> tuple[str, str] | None:
    """Why the coupling cannot be used at all (a cycle, a missing upstream or metric), or None."""
    cycle = find_cycle(edges, name)
    if cycle is not None:
        return "CouplingCycle", (f"the couplings form a cycle ({' -> '.join(cycle)}); "
                                 "coupling is refused and scaling uses this service's own "
                                 "metrics and forecast only")
    for coupling in spec.coupling or []:
        body = bodies.get(coupling.service)
        if body is None:
            return "UpstreamNotFound", (f"AdaptiveService {coupling.service} (upstream) does "
                                        "not exist in this namespace")
        if upstream_query(body, coupling.metric) is None:
            return "UpstreamMetricNotFound", (f"AdaptiveService {coupling.service} has no "
                                              f"metric {coupling.metric}")
    return None


def own_median(forecast: ServiceForecast, metric: str, period: float) -> tuple[int, float | None]:
    """The look-ahead in rows, and this service's own trusted median forecast at its end (at
    the last point it has, when shorter)."""
    horizon = max(1, math.ceil(forecast.look_ahead.seconds / period - 1e-9))
    lead = next((m for m in forecast.metrics if m.metric == metric), None)
    points = lead.state.forecast if lead is not None and lead.state.reliable else ()
    return horizon, points[min(horizon, len(points)) - 1].p50 if points else None
