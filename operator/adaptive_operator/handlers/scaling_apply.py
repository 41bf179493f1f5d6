"""The scaling daemon's apply: carries out a `domain.scaling.sync.Plan`, nothing more.

In order: the plan's Events, the decision's gauges, the replica write (recorded in status first),
the problem's count, the coupling's and the forecast's gauges and the coupling's Event, the
status patch. The memory is
kept as each write lands, so a sync the API server interrupts leaves it as far as it got.
"""

from __future__ import annotations

from dataclasses import replace

import kopf

from adaptive_operator import failpoints, logs
from adaptive_operator.adapters import kube, telemetry
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.common.events import Event
from adaptive_operator.domain.scaling import sync
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.status import Problem, SyncOutcome
from adaptive_operator.handlers import coupled as coupling
from adaptive_operator.handlers import forecast_report
from adaptive_operator.handlers.ports import post_events
from adaptive_operator.handlers.runtime import Runtime
from adaptive_operator.handlers.scaling_observe import Memory

log = logs.get(__name__)


async def apply(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                snapshot: sync.Snapshot, planned: sync.Plan, memory: Memory,
                rt: Runtime) -> None:
    memory.kept = planned.memory
    await post_events(rt.events, body, planned.events)
    report_decision(namespace, name, spec.mode, planned.outcome, snapshot.current)
    status = planned.status
    if planned.scale is not None and not await scale(namespace, name, body, spec,
                                                     planned.scale, memory, rt):
        status = planned.scale.refused
    report_problem(namespace, name, planned.problem)
    report_forecasts(namespace, name, spec, snapshot)
    await post_events(rt.events, body, (planned.coupling_event,) if planned.coupling_event else ())
    if status.patch is not None:
        await memory.patch_status(namespace, name, body, status.patch, rt.status)
    memory.kept = status.memory


async def scale(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                write: sync.ScaleWrite, memory: Memory, rt: Runtime) -> bool:
    """Record the write, make it, then say so; False when the target refused it."""
    ref = spec.scale_target_ref
    await memory.patch_status(namespace, name, body,
                              {"scaleWrites": sync.writes_status(write.pending)}, rt.status)
    memory.kept = replace(memory.kept, record=write.pending)
    try:
        await rt.workloads.write_scale(namespace, kube.TargetRef(ref.api_version, ref.kind,
                                                                 ref.name), write.replicas)
    except kube.TargetError as err:
        memory.kept = replace(memory.kept, record=write.refused.memory.record)
        await post_events(rt.events, body, (Event("Warning", err.reason, err.message),))
        return False
    failpoints.hit("scaling.after_write")
    memory.kept = replace(memory.kept, record=write.made)
    telemetry.SCALES.labels(namespace, name, write.direction).inc()
    await post_events(rt.events, body, (write.event,))
    failpoints.hit("scaling.after_said")
    return True


def report_decision(namespace: str, name: str, mode: str, outcome: SyncOutcome,
                    current: int | None) -> None:
    """The decision's gauges and its log line, with the numbers behind it."""
    decision = outcome.decision
    if decision is None or current is None:
        return
    telemetry.DECISIONS.labels(namespace, name, decision.reason).inc()
    telemetry.DESIRED.labels(namespace, name).set(decision.desired_replicas)
    if outcome.ready_pods is not None:
        telemetry.READY.labels(namespace, name).set(outcome.ready_pods)
    telemetry.METRICS_AVAILABLE.labels(namespace, name).set(0 if outcome.metric_problem else 1)
    report_readings(namespace, name, outcome.readings)
    log.info("decision", namespace=namespace, name=name, mode=mode, current=current,
             desired=decision.desired_replicas, reason=decision.reason,
             message=decision.message, proposals=dict(decision.proposals))


def report_readings(namespace: str, name: str, readings: tuple[MetricReading, ...]) -> None:
    for reading in readings:
        telemetry.METRIC_TARGET.labels(namespace, name, reading.name).set(
            reading.target_per_replica)
        if reading.value is not None:
            telemetry.METRIC_VALUE.labels(namespace, name, reading.name).set(reading.value)


def report_problem(namespace: str, name: str, problem: Problem | None) -> None:
    if problem is not None:
        telemetry.ERRORS.labels(namespace, name, problem.reason).inc()
        log.warning("sync problem", namespace=namespace, name=name, reason=problem.reason,
                    message=problem.message)


def report_forecasts(namespace: str, name: str, spec: AdaptiveServiceSpec,
                     snapshot: sync.Snapshot) -> None:
    """The coupling's and the forecast's gauges."""
    coupling.report(namespace, name, snapshot.coupled)
    if snapshot.forecast is not None:
        quantile = spec.predictive.quantile if spec.predictive else 0.8
        forecast_report.publish(namespace, name, quantile, snapshot.forecast)
