"""AdaptiveService: one daemon per object runs observe -> decide -> act every sync period.

A daemon (not a timer) because the period is per object and changes with the spec; kopf stops it
when the object is deleted. Nothing is returned to kopf (it would store it in status).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import kopf
from pydantic import ValidationError

from adaptive_operator import failpoints, logs
from adaptive_operator.adapters import (
    cached_reads,
    kube,
    prometheus_access,
    telemetry,
    workers,
)
from adaptive_operator.adapters.prometheus import MetricError, Target
from adaptive_operator.api.adaptive_service import PLURAL, AdaptiveServiceSpec, ScaleWrites
from adaptive_operator.api.base import GROUP, VERSION
from adaptive_operator.domain.common.conditions import Condition, merge_conditions
from adaptive_operator.domain.healing.inputs import LedgerError, ledger_from_json
from adaptive_operator.domain.healing.ladder import policy_from_spec, scale_out_floor
from adaptive_operator.domain.healing.targets import CONDITION as LIMITED
from adaptive_operator.domain.healing.targets import limited_condition, remedies
from adaptive_operator.domain.scaling import algorithm as scaling
from adaptive_operator.domain.scaling import writes as scale_writes
from adaptive_operator.domain.scaling.config import (
    history_from_status,
    history_to_status,
    spec_from_model,
)
from adaptive_operator.domain.scaling.forecast import ServiceForecast
from adaptive_operator.domain.scaling.plan import (
    history_to_write,
    kept_history,
    merged,
    plan_actions,
    status_changed,
    status_update,
)
from adaptive_operator.domain.scaling.records import ScaleEvent
from adaptive_operator.domain.scaling.status import Problem, SyncOutcome, sync_conditions
from adaptive_operator.handlers import coupled as coupling
from adaptive_operator.handlers import forecast_report, forecasts, runtime, settings, specs
from adaptive_operator.handlers.healing import LEDGER
from adaptive_operator.handlers.warmup import WarmUps

log = logs.get(__name__)
MAX_BACKOFF_SECONDS = 300.0


@kopf.daemon(GROUP, VERSION, PLURAL, when=settings.served, cancellation_timeout=10.0)
async def scaling_daemon(name: str, namespace: str | None, body: kopf.Body,
                         stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    assert namespace is not None  # the resource is namespaced
    workers.TENANT.set(namespace)  # its blocking calls queue with its namespace's (fair share)
    rt = runtime.of(memo)
    failures = 0
    # In the object's own memo, so kopf drops it with the object; each daemon starts afresh.
    memory = memo.scaling = Memory()
    try:
        while not stopped:
            started = rt.clock.monotonic()
            period, ok = await guarded_sync(namespace, name, body, memory, rt)
            elapsed = rt.clock.monotonic() - started
            telemetry.RECONCILE_SECONDS.observe(elapsed)
            failures = 0 if ok else failures + 1
            await stopped.wait(backoff(period, failures, elapsed))
    finally:
        memory.drop_forecast()
        memory.coupling.forget()
        spec = body.get("spec", {}) or {}
        quantile = float((spec.get("predictive") or {}).get("quantile", 0.8))
        forecast_report.unpublish(namespace, name,
                                  [str(m.get("name")) for m in spec.get("metrics", [])], quantile)


def backoff(period: float, failures: int, elapsed: float = 0.0) -> float:
    """The wait until the next sync: syncs start every period (the forecast's history is one row
    per period, so a slow sync must not push every later row back); after failures the period
    doubles per consecutive failure, capped at five minutes."""
    if failures == 0:
        return max(0.0, period - elapsed)
    return min(period * 2.0 ** min(failures, 10), max(period, MAX_BACKOFF_SECONDS))


@dataclass
class Memory:
    """What one service's scaling daemon keeps between syncs, fresher than the watched body:
    its replica writes, the stabilization history it last decided, and the one it last wrote
    to status and when (the history is written only when it changes materially)."""

    record: scale_writes.WriteRecord | None = None
    history: scaling.ScalingHistory | None = None
    written: tuple[scaling.ScalingHistory, float] | None = None
    spec: specs.Parsed | None = None  # the spec validated at a generation
    # The service's forecast history and advisors: this daemon's alone, dropped with it.
    forecaster: forecasts.ServiceForecaster | None = None
    coupled: coupling.Coupled | None = None  # the last sync's coupled forecast
    coupling: coupling.CouplingMemory = field(default_factory=coupling.CouplingMemory)
    # The status as this process last wrote it: the watched body lags behind its own patches,
    # and compared with the body a status already written would be written again.
    status: dict[str, Any] | None = None

    def forget(self) -> None:
        """Another replica may lead now and write status: start again from status later."""
        self.record = self.history = self.written = self.status = None

    def shown(self, body: kopf.Body) -> dict[str, Any]:
        """Status as it stands: this process's last write, else the watched body's."""
        if self.status is not None:
            return self.status
        return dict(body.get("status", {}) or {})

    async def patch_status(self, namespace: str, name: str, body: kopf.Body,
                           patch: dict[str, Any]) -> None:
        """Write status and remember what it holds now."""
        before = self.shown(body)
        await kube.patch_status(PLURAL, namespace, name, patch)
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


async def guarded_sync(namespace: str, name: str, body: kopf.Body, memory: Memory,
                       rt: runtime.Runtime) -> tuple[float, bool]:
    """A sync that the API server going away (a restart, a broken connection) fails, not ends:
    the daemon backs off and carries on, instead of kopf restarting it a minute later."""
    if not rt.may_act():  # a paused leader may have been replaced: do nothing
        memory.forget()
        return float((body.get("spec") or {}).get("syncPeriodSeconds") or 15), True
    try:
        return await sync_once(namespace, name, body, memory, rt)
    except kube.API_ERRORS as err:
        telemetry.ERRORS.labels(namespace, name, "ApiUnavailable").inc()
        log.warning("sync failed: the API server did not answer", namespace=namespace,
                    name=name, error=f"{type(err).__name__}: {err}"[:300])
        period = float((body.get("spec") or {}).get("syncPeriodSeconds") or 15)
        return period, False


async def sync_once(namespace: str, name: str, body: kopf.Body, memory: Memory,
                    rt: runtime.Runtime) -> tuple[float, bool]:
    """One reconciliation; returns the period to wait and whether it fully succeeded."""
    clock = rt.clock
    try:
        spec, memory.spec = specs.validated(body, memory.spec)
    except ValidationError as err:
        # The CRD schema refuses most of this; what slips through is reported, never acted on.
        await write_conditions(namespace, name, body, [
            Condition("Ready", "False", "InvalidSpec", str(err).replace("\n", " "))], clock)
        return 60.0, False
    outcome, scale, forecast = await observe_and_decide(namespace, spec, body, memory, rt)
    scaled_at = await act(namespace, name, body, spec, outcome, scale, memory, rt)
    await write_status(namespace, name, body, spec, outcome, scale, scaled_at, forecast,
                       memory, clock)
    ok = outcome.blocker is None and outcome.metric_problem is None
    return float(spec.sync_period_seconds), ok


Sent = tuple[Target, AdaptiveServiceSpec]  # the endpoint, and the spec with its queries as sent


async def read_metrics(namespace: str, spec: AdaptiveServiceSpec, totals: runtime.Totals) -> tuple[
        tuple[scaling.MetricReading, ...], Problem | None, Sent | None]:
    try:
        source = await prometheus_access.source_for(namespace, spec)
        sent = source.scaling_spec(spec)
    except MetricError as err:  # not allowed, no credentials, a query that cannot be sent
        return tuple(scaling.MetricReading(m.name, None, m.target_per_replica, err.message)
                     for m in spec.metrics), Problem(err.reason, err.message), None
    readings, problem = [], None
    for metric in sent.metrics:
        try:
            sample = await totals.total(source.endpoint, metric.query, settings.answer_age(spec))
            readings.append(scaling.MetricReading(metric.name, sample.value,
                                                  metric.target_per_replica))
        except MetricError as err:
            problem = problem or Problem(err.reason, f"metric {metric.name}: {err.message}")
            readings.append(scaling.MetricReading(metric.name, None, metric.target_per_replica,
                                                  err.message))
    return tuple(readings), problem, (source.endpoint, sent)


Observed = tuple[SyncOutcome, kube.Scale | None, ServiceForecast | None]


async def observe_and_decide(namespace: str, spec: AdaptiveServiceSpec, body: kopf.Body,
                             memory: Memory, rt: runtime.Runtime) -> Observed:
    clock = rt.clock
    ref = spec.scale_target_ref
    target = kube.TargetRef(ref.api_version, ref.kind, ref.name)
    hpa = await cached_reads.conflicting_hpa(namespace, target, settings.answer_age(spec))
    if hpa is not None:
        blocker = Problem("ConflictingAutoscaler", f"HorizontalPodAutoscaler {hpa} already "
                                                   f"scales {ref.kind} {ref.name}; this service "
                                                   "does nothing")
        return SyncOutcome(spec.mode, None, blocker=blocker), None, None
    try:
        scale = await cached_reads.read_scale(namespace, target)
        pods = await cached_reads.count_pods(namespace, scale) if scale.selector else None
    except kube.TargetError as err:
        return SyncOutcome(spec.mode, None, blocker=Problem(err.reason, err.message)), None, None
    readings, problem, sent = await read_metrics(namespace, spec, rt.totals)
    forecast = await forecast_for(memory, spec, readings, pods.startup_seconds if pods else (),
                                  sent, clock.now(), rt.warmups)
    snapshot = scaling.ScalingSnapshot(
        current_replicas=scale.replicas,
        ready_pods=pods.ready if pods else scale.status_replicas,
        unready_pods=pods.unready if pods else 0,
        metrics=readings,
    )
    status = body.get("status", {}) or {}
    history = memory.history or history_from_status(_stored_history(status.get("history")))
    check = check_own_writes(spec, status, scale.replicas, memory, clock.now())
    if check.completed is not None:  # made before a crash: it counts in the rate limits
        done = check.completed
        event = ScaleEvent(done.at, done.replicas - done.previous)
        history = scaling.ScalingHistory(history.recommendations, (*history.scale_events, event))
    now = clock.now()
    floor, source = floor_for(spec, body, forecast, now)
    memory.coupled = await coupling.coupled_for(namespace, str(body.meta.get("name")),
                                                memory.coupling, spec, forecast, now,
                                                memory.forecaster, rt.totals)
    floor, source = coupling.raised(floor, source, memory.coupled)
    ceiling = forecast.ceiling if forecast else None
    decision = scaling.decide(spec_from_model(spec), snapshot, history, now, floor, ceiling,
                              floor_source=source)
    memory.history = kept_history(spec.mode, history, decision)
    all_failed = all(r.value is None for r in readings)
    conflict = Problem("ConflictingWriter", check.conflict) if check.conflict else None
    return SyncOutcome(spec.mode, decision, metric_problem=problem, all_metrics_failed=all_failed,
                       readings=readings, conflict=conflict, writes=check,
                       ready_pods=snapshot.ready_pods), scale, forecast


def check_own_writes(spec: AdaptiveServiceSpec, status: Any, current: int,
                     memory: Memory, now: float) -> scale_writes.WriteCheck:
    """The record of the operator's replica writes (this process's own, else the one in status,
    after a restart or a leader change), checked against the target's current count."""
    if spec.mode != "Active":  # nothing is written: nothing to tell apart
        memory.record = scale_writes.WriteRecord()
        return scale_writes.WriteCheck(memory.record)
    record = memory.record or _stored_writes(status.get("scaleWrites"))
    window = scale_writes.window_seconds(spec.sync_period_seconds)
    check = scale_writes.check_writes(record, current, now, window)
    memory.record = check.record
    return check


def _stored_writes(stored: Any) -> scale_writes.WriteRecord:
    try:
        return scale_writes.record_from_status(
            ScaleWrites.model_validate(dict(stored)) if stored else None)
    except ValidationError:
        return scale_writes.WriteRecord()  # damaged: start again from what the target says


async def forecast_for(memory: Memory, spec: AdaptiveServiceSpec,
                       readings: tuple[scaling.MetricReading, ...],
                       startups: tuple[float, ...], sent: Sent | None,
                       now: float, warmups: WarmUps) -> ServiceForecast | None:
    """The forecast's floor and state, or None when predictive scaling is off (or no query
    can be sent: nothing is read unscoped or unallowed, history included)."""
    if spec.predictive is None or not spec.predictive.enabled:
        memory.drop_forecast()
        return None
    if sent is None:
        return None
    endpoint, sent_spec = sent
    return await memory.forecasting(warmups).update(sent_spec, endpoint, readings, startups, now)


HEALING_FLOOR = "a healing scale-out (saturation)"


def floor_for(spec: AdaptiveServiceSpec, body: kopf.Body,
              forecast: ServiceForecast | None, now: float) -> tuple[int | None, str]:
    """The higher of the forecast's floor and a healing scale-out's, and which one it is."""
    floor = forecast.floor if forecast else None
    healed = healing_floor(spec, body, now)
    if healed is not None and (floor is None or healed > floor):
        return healed, HEALING_FLOOR
    return floor, "the forecast"


def healing_floor(spec: AdaptiveServiceSpec, body: kopf.Body, now: float) -> int | None:
    """A healing scale-out recorded in the ledger annotation holds the replicas up; a damaged
    ledger holds nothing (the healing daemon reports it)."""
    if spec.healing is None or not spec.healing.enabled:
        return None
    annotations = body.get("metadata", {}).get("annotations") or {}
    try:
        ledger = ledger_from_json(annotations.get(LEDGER))
    except LedgerError:
        return None
    return scale_out_floor(policy_from_spec(spec.healing), ledger, now)


def _stored_history(stored: Any) -> Any:
    from adaptive_operator.api.adaptive_service import StabilizationHistory

    if not stored:
        return None
    try:
        return StabilizationHistory.model_validate(dict(stored))
    except ValidationError:
        return None  # a damaged history is dropped: the window simply starts again


async def act(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
              outcome: SyncOutcome, scale: kube.Scale | None,
              memory: Memory, rt: runtime.Runtime) -> float | None:
    """Scale (or recommend) as planned; returns when the target was scaled, if it was."""
    ref = spec.scale_target_ref
    actions = plan_actions(spec.mode, f"{ref.kind} {ref.name}", outcome,
                           scale.replicas if scale else None, rt.may_act())
    for event in actions.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if outcome.decision is not None and scale is not None:
        report_decision(namespace, name, spec.mode, outcome, scale.replicas)
    scaled_at = None
    if actions.scale_to is not None and scale is not None and outcome.decision is not None:
        scaled_at = await scale_target(namespace, name, body, spec, scale, outcome.decision,
                                       memory, rt.clock)
    if actions.problem is not None:
        telemetry.ERRORS.labels(namespace, name, actions.problem.reason).inc()
        log.warning("sync problem", namespace=namespace, name=name,
                    reason=actions.problem.reason, message=actions.problem.message)
    return scaled_at


def report_decision(namespace: str, name: str, mode: str, outcome: SyncOutcome,
                    current: int) -> None:
    """The decision's gauges and its log line, with the numbers behind it."""
    decision = outcome.decision
    assert decision is not None
    telemetry.DECISIONS.labels(namespace, name, decision.reason).inc()
    telemetry.DESIRED.labels(namespace, name).set(decision.desired_replicas)
    if outcome.ready_pods is not None:
        telemetry.READY.labels(namespace, name).set(outcome.ready_pods)
    telemetry.METRICS_AVAILABLE.labels(namespace, name).set(0 if outcome.metric_problem else 1)
    for reading in outcome.readings:
        telemetry.METRIC_TARGET.labels(namespace, name, reading.name).set(
            reading.target_per_replica)
        if reading.value is not None:
            telemetry.METRIC_VALUE.labels(namespace, name, reading.name).set(reading.value)
    log.info("decision", namespace=namespace, name=name, mode=mode, current=current,
             desired=decision.desired_replicas, reason=decision.reason,
             message=decision.message, proposals=dict(decision.proposals))


async def scale_target(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                       scale: kube.Scale, decision: scaling.ScalingDecision,
                       memory: Memory, clock: runtime.Clock) -> float | None:
    """Record the write, make it, then say so: a crash in between leaves a record that the next
    sync (of this process or the next) finds applied or not, so the write is never made twice."""
    ref = spec.scale_target_ref
    target = kube.TargetRef(ref.api_version, ref.kind, ref.name)
    desired = decision.desired_replicas
    record = scale_writes.with_pending(memory.record or scale_writes.WriteRecord(),
                                       desired, scale.replicas, clock.now())
    await memory.patch_status(namespace, name, body, {"scaleWrites": writes_status(record)})
    memory.record = record
    try:
        await cached_reads.write_scale(namespace, target, desired)
    except kube.TargetError as err:
        memory.record = replace(record, pending=None)
        kopf.event(body, type="Warning", reason=err.reason, message=err.message)
        return None
    failpoints.hit("scaling.after_write")
    memory.record = scale_writes.made(record, desired)
    direction = "up" if decision.desired_replicas > scale.replicas else "down"
    telemetry.SCALES.labels(namespace, name, direction).inc()
    kopf.event(body, type="Normal", reason="Scaled",
               message=f"{ref.kind} {ref.name} {scale.replicas} -> "
                       f"{decision.desired_replicas}: {decision.message}")
    return clock.now()


async def write_status(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                       outcome: SyncOutcome, scale: kube.Scale | None, scaled_at: float | None,
                       forecast: ServiceForecast | None,
                       memory: Memory, clock: runtime.Clock) -> None:
    now = clock.now()
    old = memory.shown(body)
    writes = writes_status(memory.record) if memory.record is not None else None
    new = status_update(old, body.meta.get("generation"), outcome,
                        scale.replicas if scale else None, writes, scaled_at, now)
    generation = int(body.meta.get("generation") or 0)
    conditions = (sync_conditions(outcome) + forecast_conditions(old, forecast)
                  + coupling.conditions(old, memory.coupled) + healing_conditions(spec, old))
    new.update(forecast_fields(old, forecast))
    new.update(coupling.status_fields(old, memory.coupled))
    coupling.report(namespace, name, body, memory.coupled)
    if forecast is not None:
        quantile = spec.predictive.quantile if spec.predictive else 0.8
        forecast_report.publish(namespace, name, quantile, forecast)
    new["conditions"] = merge_conditions(old.get("conditions") or [], conditions, now, generation)
    changed = status_changed(old, new)
    checkpoint = history_to_write(memory.history, outcome, memory.written, changed, now)
    if checkpoint is not None:
        new["history"] = history_to_status(checkpoint).model_dump(by_alias=True, mode="json")
    if changed or checkpoint is not None:
        await memory.patch_status(namespace, name, body, new)
    if checkpoint is not None:
        memory.written = (checkpoint, now)


def forecast_fields(old: dict[str, Any],
                    forecast: ServiceForecast | None) -> dict[str, Any]:
    if forecast is not None:
        return {"forecast": forecast_report.forecast_status(forecast)}
    # Predictive was switched off: a merge patch's None deletes what was shown.
    return {"forecast": None} if old.get("forecast") else {}


def writes_status(record: scale_writes.WriteRecord) -> dict[str, Any]:
    """The record for a merge patch: every key, None for those unset (which deletes them)."""
    found: dict[str, Any] = scale_writes.record_to_status(record).model_dump(by_alias=True,
                                                                            mode="json")
    return found


def forecast_conditions(old: dict[str, Any],
                        forecast: ServiceForecast | None) -> list[Condition]:
    if forecast is not None:
        return [forecast_report.reliable_condition(forecast)]
    had = any(c.get("type") == "ForecastReliable" for c in old.get("conditions") or [])
    return [forecast_report.disabled_condition()] if had else []


def healing_conditions(spec: AdaptiveServiceSpec, old: dict[str, Any]) -> list[Condition]:
    """HealingLimited while healing is on: what it can and cannot do to this kind."""
    if spec.healing is not None and spec.healing.enabled:
        ref = spec.scale_target_ref
        return [limited_condition(remedies(ref.api_version, ref.kind))]
    had = any(c.get("type") == LIMITED for c in old.get("conditions") or [])
    return [Condition(LIMITED, "False", "HealingDisabled", "healing is off")] if had else []


async def write_conditions(namespace: str, name: str, body: kopf.Body,
                           conditions: list[Condition], clock: runtime.Clock) -> None:
    old = dict(body.get("status", {}) or {})
    generation = int(body.meta.get("generation") or 0)
    merged = merge_conditions(old.get("conditions") or [], conditions, clock.now(), generation)
    if merged != old.get("conditions"):
        await kube.patch_status(PLURAL, namespace, name, {"conditions": merged,
                                                          "observedGeneration": generation})
