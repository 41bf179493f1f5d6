"""The scaling daemon's observer: one frozen `Snapshot` of everything a sync decides on.

It reads the HorizontalPodAutoscalers (one scaling the target blocks the service), the target's
/scale and pods, each metric's value, the forecast (its history backfilled on first use), the
coupled forecast (the upstream services and their histories), and the healing ledger's floor.
The forecasters it feeds are the service's own and live in its `Memory`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import kopf

from adaptive_operator.adapters import kube
from adaptive_operator.adapters.prometheus import MetricError, Target
from adaptive_operator.adapters.prometheus_access import PrometheusAccess
from adaptive_operator.api.adaptive_service import PLURAL, AdaptiveServiceSpec
from adaptive_operator.domain.healing.scaler import healing_conditions, healing_floor
from adaptive_operator.domain.scaling import sync
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.forecast import ServiceForecast
from adaptive_operator.domain.scaling.plan import merged
from adaptive_operator.domain.scaling.status import Problem
from adaptive_operator.handlers import coupled as coupling
from adaptive_operator.handlers import forecasts, runtime, settings, specs
from adaptive_operator.handlers.ports import StatusWriter
from adaptive_operator.handlers.warmup import WarmUps

Sent = tuple[Target, AdaptiveServiceSpec]  # the endpoint, and the spec with its queries as sent
Readings = tuple[tuple[MetricReading, ...], Problem | None, Sent | None]


@dataclass
class Memory:
    """What one service's scaling daemon keeps between syncs: the plan's memory, the spec
    validated at a generation, and the service's forecasters (this daemon's alone)."""

    kept: sync.Memory = field(default_factory=sync.Memory)
    spec: specs.Parsed | None = None
    forecaster: forecasts.ServiceForecaster | None = None
    coupling: coupling.CouplingMemory = field(default_factory=coupling.CouplingMemory)
    # The status as this process last wrote it: the watched body lags behind its own patches,
    # and compared with the body a status already written would be written again.
    status: dict[str, Any] | None = None

    def forget(self) -> None:
        """Another replica may lead now and write status: start again from status later, and
        hold none of the service's histories meanwhile: a replica that held every shard in its
        first seconds (before the others were counted) kept every service's forecasts for good
        after handing half of them on."""
        self.kept, self.status = sync.Memory(), None
        self.drop_forecast()
        self.coupling.forget()

    def shown(self, body: kopf.Body) -> dict[str, Any]:
        """Status as it stands: this process's last write, else the watched body's."""
        if self.status is not None:
            return self.status
        return dict(body.get("status", {}) or {})

    async def patch_status(self, namespace: str, name: str, body: kopf.Body,
                           patch: dict[str, Any], writer: StatusWriter) -> None:
        """Write status and remember what it holds now."""
        before = self.shown(body)
        await writer.patch_status(PLURAL, namespace, name, patch)
        self.status = merged(before, patch)

    def forecasting(self, warmups: WarmUps) -> forecasts.ServiceForecaster:
        """The service's forecaster, made on first use."""
        if self.forecaster is None:
            self.forecaster = forecasts.ServiceForecaster(warmups)
        return self.forecaster

    def drop_forecast(self) -> None:
        """Predictive was switched off, or the service is gone: free its history."""
        if self.forecaster is not None:
            self.forecaster.stop()
        self.forecaster = None


async def observe(namespace: str, name: str, spec: AdaptiveServiceSpec, body: kopf.Body,
                  memory: Memory, rt: runtime.Runtime) -> sync.Snapshot:
    status = memory.shown(body)
    found = sync.Snapshot(status, body.meta.get("generation"), True,
                          healing_conditions=tuple(healing_conditions(spec, status)))
    try:
        scale, pods = await read_target(namespace, spec, rt)
    except kube.TargetError as err:
        # Nothing else is read, the coupled forecast included: status shows none.
        return replace(found, blocker=Problem(err.reason, err.message), leading=rt.may_act())
    readings, problem, sent = await read_metrics(namespace, spec, rt.totals, rt.prometheus)
    forecast = await forecast_for(memory, spec, readings, pods.startup_seconds, sent,
                                  rt.clock.now(), rt.warmups)
    if spec.coupling:  # the upstreams' status as their syncs of this moment leave it
        await rt.syncs.after(namespace, name, [c.service for c in spec.coupling],
                             spec.sync_period_seconds / 2)
    now = rt.clock.now()
    coupled = await coupling.coupled_for(namespace, name, memory.coupling, spec, forecast, now,
                                         memory.forecaster, rt.totals, rt.warmups.ranges,
                                         rt.workloads, rt.prometheus)
    return replace(
        found, current=scale.replicas, ready=pods.ready, unready=pods.unready,
        readings=readings, metric_problem=problem, forecast=forecast, coupled=coupled,
        leading=rt.may_act(),
        healing_floor=healing_floor(spec, body.get("metadata", {}).get("annotations") or {}, now))


async def read_target(namespace: str, spec: AdaptiveServiceSpec,
                      rt: runtime.Runtime) -> tuple[kube.Scale, kube.PodCounts]:
    """The target's /scale and its pods (without a selector: its ready replicas, no start-up
    times); kube.TargetError when it cannot be scaled, or another autoscaler scales it."""
    ref = spec.scale_target_ref
    target = kube.TargetRef(ref.api_version, ref.kind, ref.name)
    reads = rt.workloads
    hpa = await reads.conflicting_hpa(namespace, target, rt.hpas, settings.answer_age(spec))
    if hpa is not None:
        raise kube.TargetError("ConflictingAutoscaler",
                               f"HorizontalPodAutoscaler {hpa} already scales {ref.kind} "
                               f"{ref.name}; this service does nothing")
    scale = await reads.read_scale(namespace, target)
    if not scale.selector:
        return scale, kube.PodCounts(scale.status_replicas, 0, ())
    return scale, await reads.count_pods(namespace, scale)


async def read_metrics(namespace: str, spec: AdaptiveServiceSpec, totals: runtime.Totals,
                       access: PrometheusAccess) -> Readings:
    """Each metric's value (None, with the reason, when it could not be read), the first
    problem, and where the queries went."""
    try:
        source = await access.source_for(namespace, spec)
        sent = source.scaling_spec(spec)
    except MetricError as err:  # not allowed, no credentials, a query that cannot be sent
        return tuple(MetricReading(m.name, None, m.target_per_replica, err.message)
                     for m in spec.metrics), Problem(err.reason, err.message), None
    readings, problem = [], None
    for metric in sent.metrics:
        try:
            sample = await totals.total(source.endpoint, metric.query, settings.answer_age(spec))
            readings.append(MetricReading(metric.name, sample.value, metric.target_per_replica))
        except MetricError as err:
            problem = problem or Problem(err.reason, f"metric {metric.name}: {err.message}")
            readings.append(MetricReading(metric.name, None, metric.target_per_replica,
                                          err.message))
    return tuple(readings), problem, (source.endpoint, sent)


async def forecast_for(memory: Memory, spec: AdaptiveServiceSpec,
                       readings: tuple[MetricReading, ...], startups: tuple[float, ...],
                       sent: Sent | None, now: float,
                       warmups: WarmUps) -> ServiceForecast | None:
    """The forecast's floor and state, or None when predictive scaling is off (or no query
    can be sent: nothing is read unscoped or unallowed, history included)."""
    if spec.predictive is None or not spec.predictive.enabled:
        memory.drop_forecast()
        return None
    if sent is None:
        return None
    endpoint, sent_spec = sent
    return await memory.forecasting(warmups).update(sent_spec, endpoint, readings, startups,
                                                    now)

