"""Healing: a second daemon per AdaptiveService (only with `spec.healing.enabled`).

Each sync: observe (health metrics from Prometheus into a bounded in-memory history, backfilled
by range queries when the daemon starts; the target's pods and ReplicaSets; the ledger of past
actions in the `adaptive.dev/healing-ledger` annotation, read fresh from the API server), decide
with the pure `decide_healing`, then act thinly: the intent is written to the ledger BEFORE the
action is carried out, so an operator killed in between comes back, finds the Pending entry and
verifies it instead of acting again. The pause annotation stops every action at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from adaptive_operator import failpoints, logs
from adaptive_operator.adapters import cached_reads, kube, telemetry, workers, workload
from adaptive_operator.adapters.prometheus import MetricError, PrometheusError, Target
from adaptive_operator.adapters.prometheus_access import health_queries, source_for
from adaptive_operator.adapters.query_batch import read_total
from adaptive_operator.adapters.range_batch import aligned, read_range
from adaptive_operator.api.adaptive_service import PLURAL, AdaptiveServiceSpec
from adaptive_operator.api.base import GROUP, VERSION, truncated
from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.common.times import timestamp
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict
from adaptive_operator.domain.healing.inputs import (
    LedgerError,
    ledger_from_json,
    ledger_to_json,
    pod_report,
    rollback_template,
    rollout_info,
    with_entry,
)
from adaptive_operator.domain.healing.ladder import (
    Action,
    HealingPlan,
    LedgerEntry,
    Observation,
    Outcome,
    decide_healing,
    detector_settings_from_spec,
    policy_from_spec,
    summarise,
)
from adaptive_operator.domain.healing.targets import remedies
from adaptive_operator.domain.healing.watch import (
    Watcher,
    new_watcher,
    refit_due,
    saturation,
    score,
)
from adaptive_operator.handlers import runtime, settings, specs

log = logs.get(__name__)
LEDGER = "adaptive.dev/healing-ledger"
PAUSED = "adaptive.dev/healing-paused"
POD_GRACE_SECONDS = 15.0  # a pod this young is starting, not yet expected to be ready


def healing_enabled(spec: kopf.Spec, namespace: str | None, memo: Any, **_: Any) -> bool:
    return settings.served(namespace, memo) and bool((spec.get("healing") or {}).get("enabled"))


@kopf.daemon(GROUP, VERSION, PLURAL, id="healing", when=healing_enabled,
             cancellation_timeout=10.0)
async def healing_daemon(name: str, namespace: str | None, body: kopf.Body,
                         stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    workers.TENANT.set(namespace or "")  # its blocking calls queue with its namespace's
    assert namespace is not None  # the resource is namespaced
    try:
        await heal_every_period(namespace, name, body, stopped, memo)
    finally:  # deleted, or healing switched off: no score left behind
        telemetry.forget(telemetry.ANOMALY_SCORE, namespace, name)


async def heal_every_period(namespace: str, name: str, body: kopf.Body,
                            stopped: kopf.DaemonStopped, memo: kopf.Memo) -> None:
    rt = runtime.of(memo)
    # The watcher lives in the object's own memo, so kopf drops it with the object.
    watcher: Watcher | None = None
    memo.healing = None
    kept: specs.Parsed | None = None
    while not stopped:
        try:
            spec, kept = specs.validated(body, kept)
        except ValidationError:
            await stopped.wait(60.0)  # the scaling daemon reports the invalid spec
            continue
        healing = spec.healing or HealingSpec()
        if watcher is None or (watcher.metrics, watcher.roles) != (healing.metrics,
                                                                   healing.roles_by_name()):
            watcher = memo.healing = await start_watcher(namespace, spec, healing, rt.clock.now())
        started = rt.clock.monotonic()
        await guarded_heal(namespace, name, body, spec, watcher, rt)
        # Syncs start every period (the detector's history is one row per period): waiting a
        # whole period after a sync made the period the sync's time longer.
        elapsed = rt.clock.monotonic() - started
        await stopped.wait(max(0.0, float(spec.sync_period_seconds) - elapsed))


async def pod_names(namespace: str, spec: AdaptiveServiceSpec) -> tuple[str, ...] | None:
    """The target's own pods ({{pods}}); None for a kind whose pods are not looked up."""
    if spec.scale_target_ref.kind != "Deployment":
        return None
    raw_pods, _ = await cached_reads.pods_and_replica_sets(namespace, spec.scale_target_ref.name)
    return tuple(str(pod["metadata"].get("name", "")) for pod in raw_pods)


async def start_watcher(namespace: str, spec: AdaptiveServiceSpec,
                        healing: HealingSpec, now: float) -> Watcher:
    watcher = new_watcher(dict(healing.metrics), healing.roles_by_name(),
                          detector_settings_from_spec(healing))
    limit = watcher.history.limit
    step = float(spec.sync_period_seconds)
    end = aligned(now, step)  # on the grid: services starting together share queries
    start = end - step * (limit - 1)
    names = list(healing.metrics)
    try:
        url, queries = await health_queries(namespace, spec, healing.metrics,
                                            await pod_names(namespace, spec))
        answers = await asyncio.gather(*(read_range(url, queries[name], start, end, step)
                                       for name in names))
    except (MetricError, workload.WorkloadError) as err:
        log.warning("no healing history to backfill", error=err.message)
        return watcher
    except PrometheusError as err:
        log.warning("no healing history to backfill", error=str(err))
        return watcher
    series = dict(zip(names, answers, strict=True))
    ignored = {name: found.ignored_text() for name, found in series.items() if found.ignored}
    if ignored:
        log.warning("healing history samples ignored", ignored=ignored)
    watcher.history.backfill({name: found.values for name, found in series.items()})
    log.info("healing history backfilled", rows=len(watcher.history))
    return watcher


async def read_row(url: Target, metrics: dict[str, str],
                   max_age: float) -> tuple[dict[str, float], str | None]:
    row: dict[str, float] = {}
    for name, query in metrics.items():
        try:
            row[name] = (await read_total(url, query, max_age)).value
        except MetricError as err:
            return row, f"metric {name}: {err.message}"
    return row, None


async def observe_metrics(namespace: str, watcher: Watcher, spec: AdaptiveServiceSpec,
                          now: float, pods: Sequence[str] | None,
                          ) -> tuple[AnomalyVerdict | None, str | None]:
    try:
        url, queries = await health_queries(namespace, spec, watcher.metrics, pods)
    except MetricError as err:
        return None, f"health metrics: {err.message}"
    row, error = await read_row(url, queries, settings.answer_age(spec))
    if error is not None:
        return None, error
    watcher.history.append(row)
    watcher.rows_since_fit += 1
    await observe_load(namespace, watcher, spec)
    if refit_due(watcher):  # fitting is CPU work: off the event loop, like the forecasts
        return await asyncio.to_thread(score, watcher, now), None
    return score(watcher, now), None  # one row's verdict: a thread would only add a wait


async def observe_load(namespace: str, watcher: Watcher, spec: AdaptiveServiceSpec) -> None:
    """The scaling metrics' totals, the same queries the scaling daemon reads; a row that
    cannot be read is skipped (logged), so saturation is never judged on data not read."""
    try:
        source = await source_for(namespace, spec)
        queries = {m.name: m.query for m in source.scaling_spec(spec).metrics}
    except MetricError as err:
        log.warning("load row ignored for saturation", error=err.message)
        return
    row, error = await read_row(source.endpoint, queries, settings.answer_age(spec))
    if error is not None:
        log.warning("load row ignored for saturation", error=error)
        return
    watcher.load.append(row)


async def observe(namespace: str, spec: AdaptiveServiceSpec, watcher: Watcher,
                  now: float) -> Observation:
    """Everything the decision reads but the ledger and the pause (`decide` adds those)."""
    ref = spec.scale_target_ref
    pods: list[Any] = []
    rollout, replicas, names, unread = None, 0, None, None
    try:
        scale = await cached_reads.read_scale(namespace, kube.TargetRef(
            ref.api_version, ref.kind, ref.name))
        replicas = scale.replicas
        if ref.kind == "Deployment":
            raw_pods, sets = await cached_reads.pods_and_replica_sets(namespace, ref.name)
            names = tuple(str(pod["metadata"].get("name", "")) for pod in raw_pods)
            rollout = rollout_info(sets)
        elif ref.kind == "StatefulSet":
            raw_pods, sets = await workload.statefulset_pods_and_revisions(namespace, ref.name)
            rollout = rollout_info(sets)
        else:  # any other kind: its pods through the /scale selector, no rollout to judge
            raw_pods = await workload.pods_of(namespace, scale.selector)
        reports = [pod_report(pod, now, POD_GRACE_SECONDS) for pod in raw_pods]
        pods = [report.health for report in reports if report is not None]
    except (kube.TargetError, workload.WorkloadError) as err:
        unread = err.message
    verdict, error = await observe_metrics(namespace, watcher, spec, now, names)
    error = error or unread
    started = watcher.incident.started_at if watcher.incident else None
    return Observation(verdict, started, rollout, tuple(pods), saturation(watcher), replicas,
                       spec.max_replicas, False, error)


async def guarded_heal(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                       watcher: Watcher, rt: runtime.Runtime) -> None:
    """A healing sync that the API server going away fails, not ends: the next period tries
    again (kopf would restart the daemon, and its history backfill, only after a while)."""
    try:
        await heal_once(namespace, name, body, spec, watcher, rt)
    except kube.API_ERRORS as err:
        telemetry.ERRORS.labels(namespace, name, "ApiUnavailable").inc()
        log.warning("healing sync failed: the API server did not answer", namespace=namespace,
                    name=name, error=f"{type(err).__name__}: {err}"[:300])


async def heal_once(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                    watcher: Watcher, rt: runtime.Runtime) -> None:
    healing = spec.healing or HealingSpec()
    now = rt.clock.now()
    if not rt.may_act():  # a paused leader may have been replaced: act never
        watcher.status = None
        return
    annotations = dict(body.get("metadata", {}).get("annotations") or {})
    observation = await observe(namespace, spec, watcher, now)
    plan, ledger = decide(healing, observation, annotations, now)
    if observation.verdict is not None:
        telemetry.ANOMALY_SCORE.labels(namespace, name).set(observation.verdict.score)
    if plan.verified is not None or plan.intent is not None:
        # Whatever is written or done is decided on the ledger read fresh from the API server,
        # never on the watched body, which may not show this process's last entry yet.
        try:
            fresh = await workload.read_service(PLURAL, namespace, name)
        except workload.WorkloadError as err:
            log.warning("healing skipped", namespace=namespace, name=name, error=err.message)
            return
        annotations = dict(fresh.get("metadata", {}).get("annotations") or {})
        plan, ledger = decide(healing, observation, annotations, now)
    log.info("healing decision", namespace=namespace, name=name, action=plan.action,
             reason=plan.reason, message=plan.message, dry_run=plan.dry_run,
             score=observation.verdict.score if observation.verdict else None)
    telemetry.HEALING_DECISIONS.labels(namespace, name, plan.reason).inc()
    ledger = await record(namespace, name, body, plan, ledger)
    if plan.acts and plan.intent is not None:
        failpoints.hit("healing.after_record")
        if await carry_out(namespace, body, spec, plan, plan.intent):
            ledger = with_entry(ledger, replace(plan.intent, outcome=Outcome.BLOCKED))
            await workload.annotate(PLURAL, namespace, name, LEDGER, ledger_to_json(ledger))
    report(body, watcher, plan)
    await write_status(namespace, name, body, watcher, observation.verdict, plan, ledger, now)


def decide(healing: HealingSpec, observation: Observation, annotations: dict[str, str],
           now: float) -> tuple[HealingPlan, list[LedgerEntry]]:
    """The plan on the ledger and pause of these annotations; a damaged ledger acts never."""
    observation = replace(observation, paused=annotations.get(PAUSED) == "true")
    try:
        ledger = ledger_from_json(annotations.get(LEDGER))
    except LedgerError as err:
        ledger = []
        observation = Observation(observation.verdict, read_error=str(err))
    return decide_healing(policy_from_spec(healing), observation, ledger, now), ledger


async def record(namespace: str, name: str, body: kopf.Body, plan: HealingPlan,
                 ledger: list[LedgerEntry]) -> list[LedgerEntry]:
    """The ledger with the plan's verification and intent, written before any action."""
    changed = False
    for entry in (plan.verified, plan.intent):
        if entry is not None:
            telemetry.HEALING_ACTIONS.labels(namespace, name, entry.action.value,
                                             entry.outcome.value).inc()
    if plan.verified is not None:
        ledger = with_entry(ledger, plan.verified)
        helped = plan.verified.outcome is Outcome.HELPED
        kopf.event(body, type="Normal" if helped else "Warning",
                   reason="HealingVerified" if helped else "HealingDidNotHelp",
                   message=f"{plan.verified.action} {plan.verified.id}: "
                           f"{plan.verified.outcome}")
        changed = True
    if plan.intent is not None:
        ledger = with_entry(ledger, plan.intent)
        changed = True
    if changed:
        await workload.annotate(PLURAL, namespace, name, LEDGER, ledger_to_json(ledger))
    return ledger


async def carry_out(namespace: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                    plan: HealingPlan, intent: LedgerEntry) -> bool:
    """Carry out the intent; True when PodDisruptionBudgets refused all of it (Blocked)."""
    target = spec.scale_target_ref.name
    blocked = False
    try:
        if intent.action is Action.EVICT_PODS:
            ref = spec.scale_target_ref
            owner = (ref.kind, ref.name) if ref.kind in workload.OWNING_KINDS else None
            refusals = await workload.evict(namespace, intent.pods, owner)
            problem = "; ".join(r.message for r in refusals) or None
            blocked = len(refusals) == len(intent.pods) and all(r.by_budget for r in refusals)
        else:
            problem = await _perform(namespace, spec, intent)
    except (workload.WorkloadError, kube.TargetError) as err:
        problem = err.message
    if blocked:
        kopf.event(body, type="Warning", reason="HealingActionFailed",
                   message=f"{intent.action} of {target} held back: {problem}; tried again "
                           f"after the cooldown ({plan.message})")
    elif problem:
        kopf.event(body, type="Warning", reason="HealingActionFailed",
                   message=f"{intent.action} of {target} failed: {problem}; it will be "
                           f"verified, not repeated ({plan.message})")
    else:
        kopf.event(body, type="Normal", reason=plan.reason,
                   message=f"{intent.action}: {plan.message}")
    return blocked


async def _perform(namespace: str, spec: AdaptiveServiceSpec, intent: LedgerEntry) -> str | None:
    ref = spec.scale_target_ref
    if not remedies(ref.api_version, ref.kind).allows(intent.action.value):
        return f"healing cannot {intent.action.value} a {ref.kind} (see HealingLimited)"
    if intent.action is Action.ROLLOUT_RESTART and ref.kind != "Deployment":
        await workload.restart_template(namespace, ref.api_version, ref.kind, ref.name,
                                        timestamp(intent.at))
    elif intent.action is Action.ROLL_BACK:
        return await _roll_back(namespace, ref.kind, ref.name, intent.target_revision or 0)
    elif intent.action is Action.ROLLOUT_RESTART:
        await workload.restart(namespace, ref.name, timestamp(intent.at))
    elif intent.action is Action.SCALE_OUT and spec.mode != "Active":
        # The scaler carries the scale-out (the ledger entry is its floor): it scales nothing
        # in DryRun or Paused mode.
        return f"the scaler is in {spec.mode} mode, so it does not carry the scale-out"
    return None


async def _roll_back(namespace: str, kind: str, name: str, revision: int) -> str | None:
    """`kubectl rollout undo --to-revision`: a Deployment from its ReplicaSets, a StatefulSet
    from its ControllerRevisions."""
    if kind == "StatefulSet":
        _, sets = await workload.statefulset_pods_and_revisions(namespace, name)
    else:
        _, sets = await workload.pods_and_replica_sets(namespace, name)
    template = rollback_template(sets, revision)
    if template is None:
        return f"revision {revision} no longer exists"
    if kind == "StatefulSet":
        await workload.roll_back_statefulset(namespace, name, template)
    else:
        await workload.roll_back(namespace, name, template)
    return None


def report(body: kopf.Body, watcher: Watcher, plan: HealingPlan) -> None:
    """Events for what was only decided: a dry run, and giving up (once per incident)."""
    if plan.dry_run and plan.intent is not None:
        kopf.event(body, type="Normal", reason="HealingDryRun", message=plan.message)
    if plan.exhausted and "exhausted" not in watcher.reported:
        kopf.event(body, type="Warning", reason="HealingExhausted", message=plan.message)
        watcher.reported.add("exhausted")
    elif not plan.exhausted and plan.reason == "Healthy":
        watcher.reported.discard("exhausted")
    unreadable = f"unreadable:{plan.message}"
    if plan.reason == "MetricsUnreadable" and unreadable not in watcher.reported:
        # Once per distinct problem: what was ignored, and that nothing was done on it.
        kopf.event(body, type="Warning", reason="HealingMetricsIgnored", message=plan.message)
        watcher.reported.add(unreadable)
    elif plan.reason != "MetricsUnreadable":
        watcher.reported = {key for key in watcher.reported if not key.startswith("unreadable:")}


def verdict_status(verdict: AnomalyVerdict, now: float) -> dict[str, Any]:
    return {"score": round(verdict.score, 3), "isAnomaly": verdict.is_anomaly,
            "time": timestamp(now),
            "contributions": [{"metric": c.metric, "value": c.value, "baseline": c.baseline,
                               "z": round(c.z, 2)} for c in verdict.contributions]}


async def write_status(namespace: str, name: str, body: kopf.Body, watcher: Watcher,
                       verdict: AnomalyVerdict | None, plan: HealingPlan,
                       ledger: list[LedgerEntry], now: float) -> None:
    """status.healing, when it changed from what this process last wrote (the watched body
    until then: it may not show the last write yet)."""
    old = watcher.status
    if old is None:
        old = dict((body.get("status") or {}).get("healing") or {})
    new = dict(old)
    new["state"] = {"reason": plan.reason, "message": truncated(plan.message),
                    "time": timestamp(now)}
    if verdict is not None:
        new["lastVerdict"] = verdict_status(verdict, now)
    entry = plan.intent or plan.verified
    if entry is not None:
        previous = old.get("lastAction") or {}
        same = previous.get("id") == entry.id
        message = truncated(plan.message)
        new["lastAction"] = {
            "id": entry.id, "action": entry.action.value,
            "reason": previous.get("reason", plan.reason) if same else plan.reason,
            "message": previous.get("message", message) if same else message,
            "outcome": entry.outcome.value, "time": timestamp(entry.at)}
    summary = summarise(ledger, now)
    new["ledger"] = {"total": summary.total, "lastHour": summary.last_hour,
                     "byOutcome": summary.by_outcome}
    if differs(old, new, now):
        await kube.patch_status(PLURAL, namespace, name, {"healing": new})
        watcher.status = new


# The verdict's numbers in status are refreshed this often when nothing else changed (the
# live score is the `adaptive_anomaly_score` gauge): with 1,000 services, a status write is an
# API call and a watch event for kopf, and they were most of the API server's load.
VERDICT_REFRESH_SECONDS = 300.0


def _age(verdict: dict[str, Any], now: float) -> float:
    try:
        written = datetime.strptime(str(verdict.get("time")), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return float("inf")
    return now - written.replace(tzinfo=UTC).timestamp()


def differs(old: dict[str, Any], new: dict[str, Any], now: float) -> bool:
    """Changed beyond the verdict's numbers, or those a minute old: a status write per sync
    (the score moves every sync) would be noise, and with 1,000 services, each write is an
    API call and a watch event for kopf to process."""
    def strip(status: dict[str, Any]) -> dict[str, Any]:
        verdict = status.get("lastVerdict") or {}
        state = (status.get("state") or {}).get("reason")  # its message counts down: noise
        return {**status, "lastVerdict": verdict.get("isAnomaly"), "state": state}
    if strip(old) != strip(new):
        return True
    return _age(old.get("lastVerdict") or {}, now) >= VERDICT_REFRESH_SECONDS
