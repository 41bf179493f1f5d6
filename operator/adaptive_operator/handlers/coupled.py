"""Coupled scaling in the operator: the upstreams' objects and metric histories for the domain's
`CoupledForecaster`, and its gauges (what status and Events say: domain/scaling/coupled_status).

The upstreams are read as objects (their spec names the metric's query; their status holds the
forecast they made: the coupled one while trusted, else their own while trusted), their metric's
history from Prometheus on this service's grid. A cycle of couplings is refused, never followed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from adaptive_operator.adapters import telemetry
from adaptive_operator.adapters.prometheus import MetricError, PrometheusError, Target
from adaptive_operator.adapters.prometheus_access import PrometheusAccess
from adaptive_operator.api.adaptive_service import PLURAL, AdaptiveServiceSpec
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.coupled_status import (
    Coupled,
    refused,
    reported,
    waiting_for_own_history,
)
from adaptive_operator.domain.scaling.coupling import CoupledForecaster, UpstreamInput
from adaptive_operator.domain.scaling.forecast import ServiceForecast
from adaptive_operator.domain.scaling.forecast_history import aligned_view
from adaptive_operator.domain.scaling.upstreams import (
    graph_problem,
    own_median,
    upstream_edges,
    upstream_input,
    upstream_query,
)
from adaptive_operator.handlers import settings
from adaptive_operator.handlers.forecasts import MetricForecaster, ServiceForecaster
from adaptive_operator.handlers.ports import WorkloadReader
from adaptive_operator.handlers.runtime import Totals
from adaptive_operator.handlers.warmup import Ranges

MAX_WALK = 32  # objects read to look for a cycle


@dataclass
class CouplingMemory:
    forecaster: CoupledForecaster = field(default_factory=CoupledForecaster)
    made_for: tuple[int, tuple[str, ...], float] | None = None
    upstreams: dict[str, MetricForecaster] = field(default_factory=dict)

    def forget(self) -> None:
        """Not coupled (any longer): the learned relation and the upstreams' histories go."""
        if self.made_for is not None or self.upstreams:
            self.forecaster, self.made_for, self.upstreams = CoupledForecaster(), None, {}


async def read_graph(namespace: str, name: str, spec: AdaptiveServiceSpec,
                     reads: WorkloadReader) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The upstream objects reachable from this service (at most MAX_WALK), and the edges."""
    edges = {name: [c.service for c in spec.coupling or []]}
    bodies: dict[str, Any] = {}
    queue = list(edges[name])
    while queue and len(bodies) < MAX_WALK:
        upstream = queue.pop(0)
        if upstream in {name, *bodies}:
            continue
        bodies[upstream] = await reads.read_service(PLURAL, namespace, upstream)
        edges[upstream] = upstream_edges(bodies[upstream])
        queue.extend(edges[upstream])
    return bodies, edges


async def upstream_source(body: Any, metric: str,
                          access: PrometheusAccess) -> tuple[Target, str] | None:
    """Where the upstream's metric is read, and its query as sent: through the allowlist, the
    upstream's credentials and the query scope; None when it may not be read."""
    try:
        upstream = AdaptiveServiceSpec.model_validate(body.get("spec") or {})
        source = await access.source_for(
            str((body.get("metadata") or {}).get("namespace", "")), upstream)
        return source.endpoint, source.query(upstream_query(body, metric) or "")
    except (MetricError, ValueError):
        return None


async def upstream_history(memory: CouplingMemory, spec: AdaptiveServiceSpec, service: str,
                           body: Any, metric: str, now: float,
                           totals: Totals, ranges: Ranges,
                           access: PrometheusAccess) -> MetricForecaster:
    """The upstream metric's history on this service's grid (backfilled, then one reading per
    sync; the reading shares the upstream's own query when it was made moments before)."""
    forecaster = memory.upstreams.setdefault(service, MetricForecaster())
    found = await upstream_source(body, metric, access)
    if found is None:
        return forecaster  # nothing read: nothing learned
    url, query = found
    try:
        value = (await totals.total(url, query, settings.answer_age(spec))).value
    except MetricError:
        value = None  # a gap in the history, never a load
    assert spec.predictive is not None
    reading = MetricReading(metric, value, 1.0)
    await forecaster.follow(url, query, float(spec.sync_period_seconds), spec.predictive,
                            reading, now, ranges)
    return forecaster


async def coupled_for(namespace: str, name: str, memory: CouplingMemory,
                      spec: AdaptiveServiceSpec, forecast: ServiceForecast | None, now: float,
                      forecaster: ServiceForecaster | None, totals: Totals,
                      ranges: Ranges, reads: WorkloadReader,
                      access: PrometheusAccess) -> Coupled | None:
    """The coupled forecast's floor and what status says about it; None when not coupled.
    `memory` and `forecaster` are the service's own (its scaling daemon keeps them)."""
    if not spec.coupling or forecast is None:
        memory.forget()
        return None
    bodies, edges = await read_graph(namespace, name, spec, reads)
    problem = graph_problem(name, spec, bodies, edges)
    if problem is not None:
        memory.forget()
        return refused(spec, *problem)
    own = own_history(spec, forecaster)
    if own is None:
        return waiting_for_own_history(spec)
    try:
        inputs = await upstream_inputs(memory, spec, bodies, own, now, (totals, ranges, access))
    except PrometheusError as err:
        return refused(spec, "UpstreamHistoryUnavailable", f"upstream history: {err}")
    return await advise(memory, spec, own, inputs, forecast)


def own_history(spec: AdaptiveServiceSpec,
                forecaster: ServiceForecaster | None) -> MetricForecaster | None:
    """The first metric's forecaster, once it holds a history."""
    own = forecaster.metrics.get(spec.metrics[0].name) if forecaster else None
    return own if own is not None and own.history is not None else None


async def upstream_inputs(memory: CouplingMemory, spec: AdaptiveServiceSpec,
                          bodies: dict[str, Any], forecaster: MetricForecaster, now: float,
                          reads: tuple[Totals, Ranges, PrometheusAccess],
                          ) -> list[UpstreamInput]:
    """Each upstream's history aligned on this service's rows, and its published forecast."""
    own = forecaster.history
    assert own is not None
    inputs = []
    for coupling in spec.coupling or []:
        body = bodies[coupling.service]
        up = await upstream_history(memory, spec, coupling.service, body, coupling.metric,
                                    now, *reads)
        assert up.history is not None
        inputs.append(upstream_input(own, up.history, body, coupling.metric,
                                     float(spec.sync_period_seconds)))
    return inputs


async def advise(memory: CouplingMemory, spec: AdaptiveServiceSpec, own: MetricForecaster,
                 inputs: list[UpstreamInput], forecast: ServiceForecast) -> Coupled:
    assert own.history is not None
    period = float(spec.sync_period_seconds)
    key = (id(own.history), tuple(c.service for c in spec.coupling or []), period)
    if memory.made_for != key:  # a new history or other upstreams: learn again
        memory.forecaster, memory.made_for = CoupledForecaster(), key
    horizon, median = own_median(forecast, spec.metrics[0].name, period)
    target = spec.metrics[0].target_per_replica
    down = aligned_view(own.history, 0, own.history.total)
    floor = await asyncio.to_thread(memory.forecaster.advise, down, inputs, median,
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
