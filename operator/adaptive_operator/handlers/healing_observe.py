"""Observing for healing: the health rows into the watcher, the target's pods and rollout.

Everything the ladder reads but the ledger and the pause (`domain.healing.plan.decide` reads
those from the annotations). Reads only: nothing here writes to the cluster.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

from adaptive_operator import logs
from adaptive_operator.adapters import kube, workload
from adaptive_operator.adapters.prometheus import MetricError, PrometheusError, RangeSeries, Target
from adaptive_operator.adapters.prometheus_access import PrometheusAccess
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec, ScaleTargetRef
from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.common.times import grid_window
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict
from adaptive_operator.domain.healing.inputs import names_of, pod_healths, rollout_info
from adaptive_operator.domain.healing.ladder import (
    Observation,
    RolloutInfo,
    detector_settings_from_spec,
)
from adaptive_operator.domain.healing.watch import (
    Watcher,
    add_row,
    backfilled,
    fit_rows,
    fitted_detector,
    new_watcher,
    refit_due,
    saturation,
    score,
)
from adaptive_operator.handlers import settings
from adaptive_operator.handlers.ports import WorkloadReader
from adaptive_operator.handlers.runtime import Runtime, Totals
from adaptive_operator.handlers.warmup import WarmUps, running

log = logs.get(__name__)
POD_GRACE_SECONDS = 15.0  # a pod this young is starting, not yet expected to be ready


async def pod_names(namespace: str, spec: AdaptiveServiceSpec,
                    reads: WorkloadReader) -> tuple[str, ...] | None:
    """The target's own pods ({{pods}}), of any kind; None when they cannot be read."""
    ref = spec.scale_target_ref
    try:
        scale = await reads.read_scale(namespace, kube.TargetRef(
            ref.api_version, ref.kind, ref.name))
        _, _, names = await _pods(namespace, ref, scale, reads)
    except kube.TargetError as err:
        log.warning("the target's pods cannot be read for {{pods}}", error=err.message)
        return None
    return names


def start_watcher(healing: HealingSpec) -> Watcher:
    """An empty watcher: its history is backfilled in the background (`backfill_watcher`),
    while the syncs already append their rows (and the ladder acts on what it has)."""
    return new_watcher(dict(healing.metrics), healing.roles_by_name(),
                       detector_settings_from_spec(healing))


# What a backfill may meet and log, keeping the rows the syncs appended: a metric or the target
# not readable, Prometheus failing, the API server not answering (in time).
BACKFILL_ERRORS: tuple[type[Exception], ...] = (
    MetricError, workload.WorkloadError, PrometheusError, *kube.API_ERRORS)


async def backfill_watcher(namespace: str, spec: AdaptiveServiceSpec, healing: HealingSpec,
                           watcher: Watcher, now: float, rt: Runtime) -> None:
    """The history before `now` read by range queries, the rows the syncs appended meanwhile
    kept after it."""
    step = float(spec.sync_period_seconds)
    start, end = grid_window(now, step, watcher.history.limit)
    try:
        series = await read_history(namespace, spec, healing.metrics, (start, end, step), rt)
    except BACKFILL_ERRORS as err:
        log.warning("no healing history to backfill", error=_reason(err))
        return
    _log_ignored(series)
    backfilled(watcher, {name: found.values for name, found in series.items()})
    log.info("healing history backfilled", rows=len(watcher.history))


def _log_ignored(series: dict[str, RangeSeries]) -> None:
    ignored = {name: found.ignored_text() for name, found in series.items() if found.ignored}
    if ignored:
        log.warning("healing history samples ignored", ignored=ignored)


def _reason(err: Exception) -> str:
    if isinstance(err, MetricError | workload.WorkloadError):
        return err.message
    if isinstance(err, PrometheusError):
        return str(err)
    return logs.error_text(err)  # the API server did not answer (in time)


async def read_history(namespace: str, spec: AdaptiveServiceSpec, metrics: dict[str, str],
                       grid: tuple[float, float, float], rt: Runtime) -> dict[str, RangeSeries]:
    """Each health metric's range of rows (start, end, step), by name."""
    names = list(metrics)
    url, queries = await rt.prometheus.health_queries(
        namespace, spec, metrics, await pod_names(namespace, spec, rt.workloads))
    answers = await asyncio.gather(*(rt.warmups.ranges.series(url, queries[name], *grid)
                                   for name in names))
    return dict(zip(names, answers, strict=True))


async def read_row(totals: Totals, url: Target, metrics: dict[str, str],
                   max_age: float) -> tuple[dict[str, float], str | None]:
    row: dict[str, float] = {}
    for name, query in metrics.items():
        try:
            row[name] = (await totals.total(url, query, max_age)).value
        except MetricError as err:
            return row, f"metric {name}: {err.message}"
    return row, None


async def observe_metrics(namespace: str, watcher: Watcher, spec: AdaptiveServiceSpec,
                          now: float, pods: Sequence[str] | None, totals: Totals,
                          access: PrometheusAccess,
                          fits: WarmUps) -> tuple[AnomalyVerdict | None, str | None]:
    try:
        url, queries = await access.health_queries(namespace, spec, watcher.metrics, pods)
    except MetricError as err:
        return None, f"health metrics: {err.message}"
    row, error = await read_row(totals, url, queries, settings.answer_age(spec))
    if error is not None:
        return None, error
    add_row(watcher, row, now, float(spec.sync_period_seconds))
    await observe_load(namespace, watcher, spec, totals, access)
    start_refit(watcher, fits)
    return score(watcher, now), None  # one row's verdict: a thread would only add a wait


def start_refit(watcher: Watcher, fits: WarmUps) -> None:
    """A refit in the background when one is due and none runs. The sync never waits for it:
    it decides on the detector fitted so far. Fits are CPU work, one at a time on a worker
    thread (`WarmUps.fit`): after a restart every service's detector is due at once, and a
    thousand fits on the shared worker threads held back every other blocking call, the
    scaling daemons' among them, until all were done (scaling stopped for minutes under a CPU
    limit: benchmarks/results/scale_replicas.md)."""
    if refit_due(watcher) and not running(watcher.fitting):
        watcher.fitting = fits.start(functools.partial(refit, watcher, fits))


async def refit(watcher: Watcher, fits: WarmUps) -> None:
    """A new detector fitted on the rows as they are when its turn at the fit gate comes
    (`WarmUps.fit_made`: then its last window is the one the next sync continues, scored one
    row at a time), swapped in once fitted."""
    try:
        watcher.detector = await fits.fit_made(lambda: functools.partial(
            fitted_detector, watcher.settings, fit_rows(watcher), watcher.window_rows))
    except ValueError as err:  # too few rows: not due after all (the history was cut)
        log.warning("detector not fitted", error=str(err))
        return
    # The threshold and season say why a later row was or was not flagged (the scores are in
    # every decision's log line).
    detector = watcher.detector
    log.info("detector fitted", rows=len(watcher.history), differenced=detector.differenced,
             threshold=detector.threshold, season=detector.season)


async def observe_load(namespace: str, watcher: Watcher, spec: AdaptiveServiceSpec,
                       totals: Totals, access: PrometheusAccess) -> None:
    """The scaling metrics' totals, the same queries the scaling daemon reads; a row that
    cannot be read is skipped (logged), so saturation is never judged on data not read."""
    try:
        source = await access.source_for(namespace, spec)
        queries = {m.name: m.query for m in source.scaling_spec(spec).metrics}
    except MetricError as err:
        log.warning("load row ignored for saturation", error=err.message)
        return
    row, error = await read_row(totals, source.endpoint, queries, settings.answer_age(spec))
    if error is not None:
        log.warning("load row ignored for saturation", error=error)
        return
    watcher.load.append(row)


Workload = tuple[int, RolloutInfo | None, tuple[Any, ...], tuple[str, ...] | None, str | None]
Pods = tuple[list[Any], RolloutInfo | None, tuple[str, ...]]


async def _pods(namespace: str, ref: ScaleTargetRef, scale: kube.Scale,
                reads: WorkloadReader) -> Pods:
    """The target's pods, its rollout (Deployments and StatefulSets) and pod names ({{pods}},
    every kind)."""
    if ref.kind == "Deployment":
        raw_pods, sets = await reads.deployment_pods(namespace, ref.name)
        return raw_pods, rollout_info(sets), names_of(raw_pods)
    if ref.kind == "StatefulSet":
        raw_pods, sets = await reads.statefulset_pods_and_revisions(namespace, ref.name)
        return raw_pods, rollout_info(sets), names_of(raw_pods)
    # Any other kind: its pods through the /scale selector, no rollout to judge.
    raw_pods = await reads.pods_of(namespace, scale.selector)
    return raw_pods, None, names_of(raw_pods)


async def observe_workload(namespace: str, spec: AdaptiveServiceSpec, now: float,
                           reads: WorkloadReader) -> Workload:
    """The replicas, the rollout, the pods' health (terminating pods left out: they count as
    not yet replaced), the pod names and what could not be read."""
    ref, replicas = spec.scale_target_ref, 0
    try:
        scale = await reads.read_scale(namespace, kube.TargetRef(
            ref.api_version, ref.kind, ref.name))
        replicas = scale.replicas
        raw_pods, rollout, names = await _pods(namespace, ref, scale, reads)
    except (kube.TargetError, workload.WorkloadError) as err:
        return replicas, None, (), None, err.message
    return replicas, rollout, pod_healths(raw_pods, now, POD_GRACE_SECONDS), names, None


async def observe(namespace: str, spec: AdaptiveServiceSpec, watcher: Watcher,
                  now: float, rt: Runtime) -> Observation:
    """Everything the decision reads but the ledger and the pause (`decide` adds those)."""
    replicas, rollout, pods, names, unread = await observe_workload(namespace, spec, now,
                                                                    rt.workloads)
    verdict, error = await observe_metrics(namespace, watcher, spec, now, names, rt.totals,
                                           rt.prometheus, rt.warmups)
    error = error or unread
    started = watcher.incident.started_at if watcher.incident else None
    return Observation(verdict, started, rollout, pods, saturation(watcher), replicas,
                       spec.max_replicas, False, error)

