"""Coupled scaling in the operator: the upstreams' objects and metric histories for the domain's
`CoupledForecaster`, and its gauges (what status and Events say: domain/scaling/coupled_status).

The upstreams are read as objects (their spec names the metric's query; their status holds the
forecast they made: the coupled one while trusted, else their own while trusted), their metric's
history from Prometheus on this service's grid. A cycle of couplings is refused, never followed.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from adaptive_operator.adapters import kube, telemetry
from adaptive_operator.adapters.prometheus import MetricError, PrometheusError
from adaptive_operator.adapters.prometheus_access import source_for
from adaptive_operator.api.adaptive_service import PLURAL, AdaptiveServiceSpec
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.coupled_status import Coupled, refused, reported
from adaptive_operator.domain.scaling.coupling import (
    CoupledForecaster,
    UpstreamInput,
    find_cycle,
)
from adaptive_operator.domain.scaling.forecast import ServiceForecast
from adaptive_operator.domain.scaling.forecast_history import aligned_view, grid_shift
from adaptive_operator.handlers import settings
from adaptive_operator.handlers.forecasts import MetricForecaster, ServiceForecaster
from adaptive_operator.handlers.runtime import Totals

MAX_WALK = 32  # objects read to look for a cycle
MAX_PATH = 1000  # forecast points read from an upstream's status


@dataclass
class CouplingMemory:
    forecaster: CoupledForecaster = field(default_factory=CoupledForecaster)
    made_for: tuple[int, tuple[str, ...], float] | None = None
    upstreams: dict[str, MetricForecaster] = field(default_factory=dict)

    def forget(self) -> None:
        """Not coupled (any longer): the learned relation and the upstreams' histories go."""
        if self.made_for is not None or self.upstreams:
            self.forecaster, self.made_for, self.upstreams = CoupledForecaster(), None, {}


async def read_graph(namespace: str, name: str,
                     spec: AdaptiveServiceSpec) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The upstream objects reachable from this service (at most MAX_WALK), and the edges."""
    edges = {name: [c.service for c in spec.coupling or []]}
    bodies: dict[str, Any] = {}
    queue = list(edges[name])
    while queue and len(bodies) < MAX_WALK:
        upstream = queue.pop(0)
        if upstream in bodies or upstream == name:
            continue
        body = await kube.read_service(PLURAL, namespace, upstream)
        bodies[upstream] = body
        coupling = ((body or {}).get("spec") or {}).get("coupling") or []
        edges[upstream] = [str(c.get("service")) for c in coupling if isinstance(c, dict)]
        queue.extend(edges[upstream])
    return bodies, edges


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
    coupling, own = status.get("coupling") or {}, status.get("forecast") or {}
    points: Any = []
    if coupling.get("trusted"):
        first = ((body.get("spec") or {}).get("metrics") or [{}])[0]
        points = coupling.get("forecast") if first.get("name") == metric else []
    if not points and own.get("reliable") and own.get("metric") == metric:
        points = own.get("forecast")
    return on_grid(points if isinstance(points, list) else [], period)


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


async def upstream_history(memory: CouplingMemory, spec: AdaptiveServiceSpec, service: str,
                           body: Any, metric: str, now: float,
                           totals: Totals) -> MetricForecaster:
    """The upstream metric's history on this service's grid (backfilled, then one reading per
    sync; the reading shares the upstream's own query when it was made moments before)."""
    written = upstream_query(body, metric) or ""
    forecaster = memory.upstreams.setdefault(service, MetricForecaster())
    try:  # through the allowlist, the upstream's credentials and the query scope
        upstream = AdaptiveServiceSpec.model_validate(body.get("spec") or {})
        source = await source_for(str((body.get("metadata") or {}).get("namespace", "")),
                                  upstream)
        url, query = source.endpoint, source.query(written)
    except (MetricError, ValueError):
        return forecaster  # nothing read: nothing learned
    try:
        value = (await totals.total(url, query, settings.answer_age(spec))).value
    except MetricError:
        value = None  # a gap in the history, never a load
    assert spec.predictive is not None
    reading = MetricReading(metric, value, 1.0)
    await forecaster.observe(url, query, float(spec.sync_period_seconds), spec.predictive,
                             reading, now)
    return forecaster


async def coupled_for(namespace: str, name: str, memory: CouplingMemory,
                      spec: AdaptiveServiceSpec, forecast: ServiceForecast | None, now: float,
                      forecaster: ServiceForecaster | None, totals: Totals) -> Coupled | None:
    """The coupled forecast's floor and what status says about it; None when not coupled.
    `memory` and `forecaster` are the service's own (its scaling daemon keeps them)."""
    if not spec.coupling or forecast is None:
        memory.forget()
        return None
    bodies, edges = await read_graph(namespace, name, spec)
    problem = graph_problem(name, spec, bodies, edges)
    if problem is not None:
        memory.forget()
        return refused(spec, *problem)
    own = forecaster.metrics.get(spec.metrics[0].name) if forecaster else None
    if own is None or own.history is None:
        return refused(spec, "OwnHistoryUnavailable", f"metric {spec.metrics[0].name}'s "
                       "history could not be read; coupling waits for it")
    inputs = []
    try:
        for coupling in spec.coupling:
            body = bodies[coupling.service]
            up = await upstream_history(memory, spec, coupling.service, body, coupling.metric,
                                        now, totals)
            assert up.history is not None
            view = aligned_view(up.history, grid_shift(own.history, up.history),
                               own.history.total)
            path = upstream_path(body, coupling.metric, float(spec.sync_period_seconds))
            inputs.append(UpstreamInput(view, path))
    except PrometheusError as err:
        return refused(spec, "UpstreamHistoryUnavailable", f"upstream history: {err}")
    return await advise(memory, spec, own, inputs, forecast)


async def advise(memory: CouplingMemory, spec: AdaptiveServiceSpec, own: MetricForecaster,
                 inputs: list[UpstreamInput], forecast: ServiceForecast) -> Coupled:
    assert own.history is not None
    period = float(spec.sync_period_seconds)
    key = (id(own.history), tuple(c.service for c in spec.coupling or []), period)
    if memory.made_for != key:  # a new history or other upstreams: learn again
        memory.forecaster, memory.made_for = CoupledForecaster(), key
    horizon = max(1, math.ceil(forecast.look_ahead.seconds / period - 1e-9))
    lead = next((m for m in forecast.metrics if m.metric == spec.metrics[0].name), None)
    points = lead.state.forecast if lead is not None and lead.state.reliable else ()
    own_median = points[min(horizon, len(points)) - 1].p50 if points else None
    target = spec.metrics[0].target_per_replica
    down = aligned_view(own.history, 0, own.history.total)
    floor = await asyncio.to_thread(memory.forecaster.advise, down, inputs, own_median,
                                    horizon, target)
    return reported(spec, memory.forecaster.state, floor, period)


def report(namespace: str, name: str, coupled: Coupled | None) -> None:
    """The coupling's gauges."""
    if coupled is None:
        telemetry.forget(telemetry.COUPLING_TRUSTED, namespace, name)
        telemetry.forget(telemetry.COUPLING_FLOOR, namespace, name)
        return
    telemetry.COUPLING_TRUSTED.labels(namespace, name).set(1 if coupled.status.trusted else 0)
    if coupled.floor is None:
        telemetry.forget(telemetry.COUPLING_FLOOR, namespace, name)
    else:
        telemetry.COUPLING_FLOOR.labels(namespace, name).set(coupled.floor)
