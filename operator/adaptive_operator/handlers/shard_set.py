"""kopf wiring for ShardSets: observe the owned objects, plan (pure), apply.

One periodic reconcile per ShardSet (a timer, so spec changes, Job completions and shard
readiness are all picked up the same way and never handled concurrently for one object).
Order of applying matters for a restart at any point: the routing table is written first (it is
the record of ownership and of migrations started), then Jobs are created, and finished Jobs and
empty shards are deleted last. Everything created is owned by the ShardSet, so deleting it lets
the garbage collector remove the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from adaptive_operator.adapters import kube, telemetry, workers
from adaptive_operator.adapters.prometheus import MetricError
from adaptive_operator.adapters.shard_cluster import ShardSetObjects
from adaptive_operator.api.base import GROUP, VERSION
from adaptive_operator.api.shard_set import PLURAL, ShardSetSpec
from adaptive_operator.domain.common.events import Event
from adaptive_operator.domain.common.times import parse_time
from adaptive_operator.domain.sharding import manifests
from adaptive_operator.domain.sharding import plan as planning
from adaptive_operator.domain.sharding.migration import RoutingState
from adaptive_operator.domain.sharding.rebalancing import shard_loads
from adaptive_operator.domain.sharding.resharding import Decision, ShardSetSnapshot, Target
from adaptive_operator.handlers import runtime, settings
from adaptive_operator.handlers.ports import post_events
from adaptive_operator.handlers.runtime import Runtime
from adaptive_operator.handlers.shard_set_apply import TARGET_KEY, apply, routing_manifest
from adaptive_operator.routing import RoutingTable

REBALANCE_ANNOTATION = planning.REBALANCE_ANNOTATION

log = structlog.get_logger("shardset")


@kopf.timer(GROUP, VERSION, PLURAL, interval=5.0, when=settings.served)
async def reconcile_shard_set(spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status, name: str,
                              namespace: str | None, body: kopf.Body, memo: kopf.Memo,
                              **_: Any) -> None:
    namespace = namespace or "default"
    workers.TENANT.set(namespace)  # its blocking calls queue with its namespace's (fair share)
    rt = runtime.of(memo).for_object(namespace, name)
    if not rt.may_act():  # a paused leader may have been replaced: act never
        return
    # Status and annotations, gathered here and written through the fenced client, never
    # through kopf's `patch` (kopf sends it through its own client, which nothing fences).
    changes = kopf.Patch()
    try:
        try:
            await _reconcile(rt, dict(spec), meta, status, name, namespace, body, changes)
        finally:  # what was recorded is written even when a later step failed, as kopf did
            await _write(rt, namespace, name, changes)
    except kube.NotLeading:  # the lease was lost on the way: the new leader carries on
        log.info("shardset.not_leading", name=name, namespace=namespace)


async def _reconcile(rt: Runtime, spec: dict[str, Any], meta: Mapping[str, Any],
                     status: Mapping[str, Any], name: str, namespace: str, body: kopf.Body,
                     changes: kopf.Patch) -> None:
    try:
        shard_spec = ShardSetSpec.model_validate(spec)
    except ValidationError as err:
        _report_refusal(changes, status, meta, "InvalidSpec", " ".join(str(err).split()),
                        rt.clock.now())
        return
    objects = await asyncio.to_thread(
        rt.shards.observe, namespace, name, manifests.routing_config_map_name(name))
    try:
        snapshot = _snapshot(shard_spec, objects, meta)
        plan = planning.plan(snapshot, rt.clock.now())
    except ValueError as err:  # includes a malformed routing table: never act on it
        _report_refusal(changes, status, meta, "RoutingTableMismatch", str(err),
                        rt.clock.now())
        return
    version = await apply(rt, name, namespace, shard_spec, objects, plan, body)
    # Recorded after acting (and decided before it): the status the next reconcile compares.
    _record(changes, snapshot, plan.decision, status, meta, shard_spec.shards, rt.clock.now())
    _publish(namespace, name, plan.decision, shard_spec.shards)
    await _maybe_rebalance(rt, name, namespace, shard_spec, plan.decision, meta, changes, body,
                           version)
    decision = plan.decision
    log.info(
        "shardset.reconciled", name=name, namespace=namespace, shards=shard_spec.shards,
        epoch=decision.routing.epoch, migrating=len(decision.routing.migrating),
        pending=decision.pending_moves, started=len(decision.start_jobs),
        created_shards=decision.create_shards, deleted_shards=decision.delete_shards,
    )


async def _write(rt: Runtime, namespace: str, name: str, changes: kopf.Patch) -> None:
    """The gathered status (the /status subresource) and annotations (the object)."""
    if changes.get("status"):
        await rt.status.patch_status(PLURAL, namespace, name, dict(changes["status"]))
    annotations = (changes.get("metadata") or {}).get("annotations")
    if annotations:
        await rt.status.patch_annotations(PLURAL, namespace, name, dict(annotations))


def _snapshot(spec: ShardSetSpec, objects: ShardSetObjects,
              meta: Mapping[str, Any]) -> ShardSetSnapshot:
    """The observed objects as one snapshot (the routing table parsed here, at the edge)."""
    routing = target = None
    if objects.routing_data is not None:
        table = RoutingTable.from_config_map_data(objects.routing_data)
        routing = RoutingState(table.epoch, tuple(table.owners.tolist()), table.migrating)
        if TARGET_KEY in objects.routing_data:
            target = Target.from_json(objects.routing_data[TARGET_KEY])
    jobs = [manifests.job_observation(job, parse_time) for job in objects.jobs]
    return planning.snapshot_of(spec, routing, target, objects.stateful_sets, jobs,
                                meta.get("annotations") or {})


def _publish(namespace: str, name: str, decision: Decision, shards: int) -> None:
    """Slot balance and migrations, for the dashboard and the migration-stuck alert."""
    routing = decision.routing
    telemetry.SHARD_EPOCH.labels(namespace, name).set(routing.epoch)
    telemetry.SHARD_MIGRATING.labels(namespace, name).set(len(routing.migrating))
    for shard in range(shards):
        telemetry.SHARD_SLOTS.labels(namespace, name, str(shard)).set(routing.owned_by(shard))


async def _maybe_rebalance(rt: Runtime, name: str, namespace: str, spec: ShardSetSpec,
                           decision: Decision, meta: Mapping[str, Any], changes: kopf.Patch,
                           body: kopf.Body, version: str | None) -> None:
    """Once per period, when nothing is moving: a new target from the per-shard load.

    The next reconcile carries the target out with migration Jobs like any resize.
    """
    now = rt.clock.now()
    previous = planning.rebalance_due(spec.rebalance, decision, meta, now)
    if previous is None or spec.rebalance is None:
        return
    try:
        query = rt.prometheus.operator_query(namespace, name, spec.rebalance.load_query)
        loads = shard_loads(await rt.read_load(query), spec.shards)
    except (MetricError, ValueError) as err:  # load not read, or not per shard: move nothing
        await post_events(rt.events, body, [Event("Warning", "LoadQueryFailed", str(err))])
        changes.meta.annotations[REBALANCE_ANNOTATION] = planning.failed_check(now)
        return
    plan = planning.plan_rebalance(spec.rebalance, spec.shards, decision, previous, loads, now)
    changes.meta.annotations[REBALANCE_ANNOTATION] = plan.annotation
    outcome = plan.outcome
    log.info("shardset.rebalance", name=name, namespace=namespace, loads=loads,
             imbalance=outcome.imbalance, moved=outcome.plan.slots_moved, reason=outcome.reason)
    if plan.retarget is not None:
        manifest = routing_manifest(name, namespace, plan.retarget, body)
        await asyncio.to_thread(rt.shards.write_routing, namespace, manifest, version)
        await post_events(rt.events, body, [plan.event] if plan.event else [])


def _record(patch: Any, snapshot: ShardSetSnapshot, decision: Decision,
            status: Mapping[str, Any], meta: Mapping[str, Any], shards: int, now: float) -> None:
    """Status and the given-up annotation, written only when they changed."""
    new_status, annotations = planning.record(snapshot, decision, status, meta, shards, now)
    if new_status:
        patch.status.update(new_status)
    for key, text in annotations.items():
        patch.metadata.annotations[key] = text


def _report_refusal(patch: Any, status: Mapping[str, Any], meta: Mapping[str, Any], reason: str,
                    message: str, now: float) -> None:
    """Nothing was done: say why in the Ready condition (other conditions are kept as they are)."""
    conditions = planning.refusal(status, meta.get("generation"), reason, message, now)
    if conditions is not None:
        patch.status["conditions"] = conditions
