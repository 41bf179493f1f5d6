"""Applying a healing plan: the ledger first, then the action, then Events and status.

The intent is written to the ledger BEFORE the action is carried out, so an operator killed in
between comes back, finds the Pending entry and verifies it instead of acting again.
"""

from __future__ import annotations

import kopf

from adaptive_operator import failpoints
from adaptive_operator.adapters import kube, telemetry, workload
from adaptive_operator.api.adaptive_service import PLURAL, AdaptiveServiceSpec
from adaptive_operator.domain.common.conditions import Condition
from adaptive_operator.domain.common.times import timestamp
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict
from adaptive_operator.domain.healing.inputs import ledger_to_json, rollback_template
from adaptive_operator.domain.healing.ladder import Action, HealingPlan, LedgerEntry
from adaptive_operator.domain.healing.ownership import Carried, Evicted, evicted, eviction_uids
from adaptive_operator.domain.healing.plan import (
    LEDGER,
    action_event,
    differs,
    healing_status,
    last_written,
    ownership_condition,
    recorded,
    reported_events,
    scale_out_problem,
    verified_event,
    with_blocked,
)
from adaptive_operator.domain.healing.targets import not_allowed
from adaptive_operator.domain.healing.watch import Watcher
from adaptive_operator.handlers.ports import (
    EventPoster,
    StatusWriter,
    Workloads,
    WorkloadWriter,
    post_events,
)
from adaptive_operator.handlers.runtime import Runtime


async def apply(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                watcher: Watcher, verdict: AnomalyVerdict | None,
                planned: tuple[HealingPlan, list[LedgerEntry]], now: float, rt: Runtime) -> None:
    """The ledger written first, then the action (a budget's refusal recorded as Blocked), then
    the Events and status."""
    decided, ledger = planned
    ledger = await record(namespace, name, body, decided, ledger, rt)
    carried = Carried()
    if decided.acts and decided.intent is not None:
        failpoints.hit("healing.after_record")
        carried = await carry_out(namespace, body, spec, decided, decided.intent, rt)
        if carried.blocked:
            ledger = with_blocked(ledger, decided.intent)
            await rt.workloads.annotate(PLURAL, namespace, name, LEDGER, ledger_to_json(ledger))
    await report(body, watcher, decided, rt.events)
    ref = spec.scale_target_ref
    await write_status(namespace, name, body, watcher, verdict, decided, ledger, now, rt.status,
                       ownership_condition(carried.not_owned, ref.kind, ref.name))


async def record(namespace: str, name: str, body: kopf.Body, plan: HealingPlan,
                 ledger: list[LedgerEntry], rt: Runtime) -> list[LedgerEntry]:
    """The ledger with the plan's verification and intent, written before any action."""
    entries, ledger = recorded(plan, ledger)
    for entry in entries:
        telemetry.HEALING_ACTIONS.labels(namespace, name, entry.action.value,
                                         entry.outcome.value).inc()
    if plan.verified is not None:
        await post_events(rt.events, body, [verified_event(plan.verified)])
    if entries:
        await rt.workloads.annotate(PLURAL, namespace, name, LEDGER, ledger_to_json(ledger))
    return ledger


async def carry_out(namespace: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                    plan: HealingPlan, intent: LedgerEntry, rt: Runtime) -> Carried:
    """Carry out the intent, and say what became of it."""
    carried = Carried()
    try:
        if intent.action is Action.EVICT_PODS:
            done = await _evict(namespace, spec, intent, rt.workloads)
            problem, carried = done.problem, Carried(done.blocked, done.not_owned)
        else:
            problem = await _perform(namespace, spec, intent, rt.workloads)
    except (workload.WorkloadError, kube.TargetError) as err:
        problem = err.message
    await post_events(rt.events, body, [action_event(plan, intent, spec.scale_target_ref.name,
                                                     problem, carried.blocked)])
    return carried


async def _evict(namespace: str, spec: AdaptiveServiceSpec, intent: LedgerEntry,
                 writes: WorkloadWriter) -> Evicted:
    ref = spec.scale_target_ref
    uids = eviction_uids(intent.pods, intent.pod_uids)
    if ref.kind in workload.OWNING_KINDS:
        refusals = await writes.evict(namespace, intent.pods, (ref.kind, ref.name), uids)
    else:  # any other kind: its ownerReferences chain must lead to the target
        refusals = await writes.evict_owned(namespace, intent.pods,
                                              (ref.api_version, ref.kind, ref.name), uids)
    return evicted(intent.pods, refusals)


async def _perform(namespace: str, spec: AdaptiveServiceSpec, intent: LedgerEntry,
                   workloads: Workloads) -> str | None:
    ref = spec.scale_target_ref
    refused = not_allowed(ref.api_version, ref.kind, intent.action.value)
    if refused is not None:
        return refused
    if intent.action is Action.ROLL_BACK:
        return await _roll_back(namespace, ref.kind, ref.name, intent.target_revision or 0,
                                workloads)
    if intent.action is Action.ROLLOUT_RESTART:
        await _restart(namespace, spec, timestamp(intent.at), workloads)
    elif intent.action is Action.SCALE_OUT:
        return scale_out_problem(spec.mode)
    return None


async def _restart(namespace: str, spec: AdaptiveServiceSpec, at: str,
                   writes: WorkloadWriter) -> None:
    """`kubectl rollout restart`: a Deployment's own way, any other kind's pod template."""
    ref = spec.scale_target_ref
    if ref.kind == "Deployment":
        await writes.restart(namespace, ref.name, at)
    else:
        await writes.restart_template(namespace, ref.api_version, ref.kind, ref.name, at)


async def _roll_back(namespace: str, kind: str, name: str, revision: int,
                     workloads: Workloads) -> str | None:
    """`kubectl rollout undo --to-revision`: a Deployment from its ReplicaSets, a StatefulSet
    from its ControllerRevisions."""
    if kind == "StatefulSet":
        _, sets = await workloads.statefulset_pods_and_revisions(namespace, name)
    else:
        _, sets = await workloads.pods_and_replica_sets(namespace, name)
    template = rollback_template(sets, revision)
    if template is None:
        return f"revision {revision} no longer exists"
    if kind == "StatefulSet":
        await workloads.roll_back_statefulset(namespace, name, template)
    else:
        await workloads.roll_back(namespace, name, template)
    return None


async def report(body: kopf.Body, watcher: Watcher, plan: HealingPlan,
                 poster: EventPoster) -> None:
    """Events for what was only decided: a dry run, and giving up (once per incident)."""
    events, watcher.reported = reported_events(plan, watcher.reported)
    await post_events(poster, body, events)


async def write_status(namespace: str, name: str, body: kopf.Body, watcher: Watcher,
                       verdict: AnomalyVerdict | None, plan: HealingPlan,
                       ledger: list[LedgerEntry], now: float, status: StatusWriter,
                       ownership: Condition | None = None) -> None:
    """status.healing, when it changed from what this process last wrote (the watched body
    until then: it may not show the last write yet); `ownership`, the PodsNotOwned condition
    of an eviction made this sync."""
    old = last_written(watcher.status, body)
    new = healing_status(old, verdict, plan, ledger, now, ownership)
    if differs(old, new, now):
        await status.patch_status(PLURAL, namespace, name, {"healing": new})
        watcher.status = new
