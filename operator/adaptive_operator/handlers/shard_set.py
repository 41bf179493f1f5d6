"""kopf wiring for ShardSets: observe the owned objects, decide (pure), act, report.

One periodic reconcile per ShardSet (a timer, so spec changes, Job completions and shard
readiness are all picked up the same way and never handled concurrently for one object).
Order of acting matters for a restart at any point: the routing table is written first (it is the
record of ownership and of migrations started), then Jobs are created, and finished Jobs and
empty shards are deleted last. Everything created is owned by the ShardSet, so deleting it lets
the garbage collector remove the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from adaptive_operator import failpoints
from adaptive_operator.adapters import prometheus_access, telemetry, workers
from adaptive_operator.adapters.prometheus import MetricError
from adaptive_operator.adapters.shard_cluster import ShardSetObjects
from adaptive_operator.api.base import GROUP, VERSION
from adaptive_operator.api.shard_set import PLURAL, ShardSetSpec
from adaptive_operator.domain.common.conditions import Condition, replace_conditions
from adaptive_operator.domain.common.times import parse_time
from adaptive_operator.domain.sharding import manifests, records
from adaptive_operator.domain.sharding.migration import RoutingState
from adaptive_operator.domain.sharding.rebalancing import RebalancePolicy, rebalance, shard_loads
from adaptive_operator.domain.sharding.resharding import Decision, ShardSetSnapshot, Target, decide
from adaptive_operator.domain.sharding.status import status_for
from adaptive_operator.handlers import runtime, settings
from adaptive_operator.handlers.runtime import Runtime
from adaptive_operator.routing import RoutingTable, build_table

TARGET_KEY = "target"  # next to the routing table: the assignment being carried out
REBALANCE_ANNOTATION = "adaptive.dev/rebalance"  # {"at": last check, "active": hysteresis}

log = structlog.get_logger("shardset")


@kopf.timer(GROUP, VERSION, PLURAL, interval=5.0, when=settings.served)
async def reconcile_shard_set(
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    namespace = namespace or "default"
    workers.TENANT.set(namespace)  # its blocking calls queue with its namespace's (fair share)
    rt = runtime.of(memo)
    if not rt.may_act():  # a paused leader may have been replaced: act never
        return
    try:
        shard_spec = ShardSetSpec.model_validate(dict(spec))
    except ValidationError as err:
        _report_refusal(patch, status, meta, "InvalidSpec", " ".join(str(err).split()),
                        rt.clock.now())
        return
    objects = await asyncio.to_thread(
        rt.shards.observe, namespace, name, manifests.routing_config_map_name(name)
    )
    try:
        snapshot = _snapshot(shard_spec, objects, meta)
        decision = decide(snapshot, now=rt.clock.now())
    except ValueError as err:  # includes a malformed routing table: never act on it
        _report_refusal(patch, status, meta, "RoutingTableMismatch", str(err), rt.clock.now())
        return
    version = await _act(rt, name, namespace, shard_spec, objects, snapshot, decision, body)
    _record(patch, snapshot, decision, status, meta, shard_spec.shards, rt.clock.now())
    _publish(namespace, name, decision, shard_spec.shards)
    await _maybe_rebalance(rt, name, namespace, shard_spec, decision, meta, patch, body, version)
    log.info(
        "shardset.reconciled", name=name, namespace=namespace, shards=shard_spec.shards,
        epoch=decision.routing.epoch, migrating=len(decision.routing.migrating),
        pending=decision.pending_moves, started=len(decision.start_jobs),
        created_shards=decision.create_shards, deleted_shards=decision.delete_shards,
    )


def _publish(namespace: str, name: str, decision: Decision, shards: int) -> None:
    """Slot balance and migrations, for the dashboard and the migration-stuck alert."""
    routing = decision.routing
    telemetry.SHARD_EPOCH.labels(namespace, name).set(routing.epoch)
    telemetry.SHARD_MIGRATING.labels(namespace, name).set(len(routing.migrating))
    for shard in range(shards):
        telemetry.SHARD_SLOTS.labels(namespace, name, str(shard)).set(routing.owned_by(shard))


def _snapshot(
    spec: ShardSetSpec, objects: ShardSetObjects, meta: Mapping[str, Any]
) -> ShardSetSnapshot:
    routing = target = None
    if objects.routing_data is not None:
        table = RoutingTable.from_config_map_data(objects.routing_data)
        routing = RoutingState(table.epoch, tuple(table.owners.tolist()), table.migrating)
        if TARGET_KEY in objects.routing_data:
            target = Target.from_json(objects.routing_data[TARGET_KEY])
    existing, ready = _shards(objects.stateful_sets)
    jobs = [manifests.job_observation(job, parse_time) for job in objects.jobs]
    annotations = meta.get("annotations") or {}
    given_up = records.given_up_from(annotations.get(records.GIVEN_UP_ANNOTATION), spec.shards)
    return ShardSetSnapshot(
        shards=spec.shards,
        slots=spec.slots,
        concurrency=spec.migration.concurrency,
        backoff_limit=spec.migration.backoff_limit,
        backoff_seconds=spec.migration.backoff_seconds,
        routing=routing,
        jobs=tuple(job for job in jobs if job is not None),
        existing_shards=existing,
        ready_shards=ready,
        given_up=given_up.moves,
        stranded=given_up.stranded,
        recorded=records.attempts_from(annotations.get(records.ATTEMPTS_ANNOTATION)),
        target=target,
    )


def _shards(stateful_sets: list[dict[str, Any]]) -> tuple[frozenset[int], frozenset[int]]:
    """The shards that have a StatefulSet, and those whose StatefulSet is ready."""
    existing: set[int] = set()
    ready: set[int] = set()
    for obj in stateful_sets:
        shard = manifests.shard_of(obj)
        if shard is None:
            continue
        existing.add(shard)
        if manifests.is_ready(obj):
            ready.add(shard)
    return frozenset(existing), frozenset(ready)


async def _act(
    rt: Runtime,
    name: str,
    namespace: str,
    spec: ShardSetSpec,
    objects: ShardSetObjects,
    snapshot: ShardSetSnapshot,
    decision: Decision,
    body: Any,
) -> str | None:
    """Carry the decision out; returns the routing ConfigMap's version after it."""
    api = rt.shards
    template = spec.template.model_dump(by_alias=True)
    for shard in decision.create_shards:
        for manifest in (manifests.headless_service(name, shard),
                         manifests.stateful_set(name, shard, template)):
            kopf.adopt(manifest, owner=body)
            await asyncio.to_thread(api.create, namespace, manifest)
    await _update_templates(rt, name, namespace, template, objects)
    version = objects.routing_version
    if decision.routing != snapshot.routing or decision.target != snapshot.target:
        version = await asyncio.to_thread(
            api.write_routing, namespace, _routing_manifest(name, namespace, decision, body),
            version)
    await _start_jobs(rt, name, namespace, spec, decision, body)
    for move, attempt in decision.delete_jobs:
        job_name = manifests.job_name(name, move, attempt)
        await asyncio.to_thread(api.delete, namespace, "Job", job_name)
    for shard in decision.delete_shards:
        for kind in ("StatefulSet", "Service"):
            await asyncio.to_thread(api.delete_owned, namespace, kind,
                                    manifests.shard_name(name, shard), body["metadata"]["uid"])
    for message in decision.events:
        # kopf.event, not kopf.info: the operator posts only warnings from kopf's own helpers
        # (settings.posting.level), while these are decisions the user must see.
        kopf.event(body, type="Normal", reason="Resharding", message=message)
    return version


async def _start_jobs(
    rt: Runtime, name: str, namespace: str, spec: ShardSetSpec, decision: Decision, body: Any
) -> None:
    """The migration Jobs, after the routing table that marks their moves has been written."""
    if decision.start_jobs:
        failpoints.hit("sharding.after_routing")
    for move, attempt in decision.start_jobs:
        job = manifests.migration_job(
            name, namespace, spec.slots, spec.migration.job_template, move, attempt
        )
        kopf.adopt(job, owner=body)
        await asyncio.to_thread(rt.shards.create, namespace, job)


async def _maybe_rebalance(
    rt: Runtime,
    name: str,
    namespace: str,
    spec: ShardSetSpec,
    decision: Decision,
    meta: Mapping[str, Any],
    patch: kopf.Patch,
    body: kopf.Body,
    version: str | None,
) -> None:
    """Once per period, when nothing is moving: a new target from the per-shard load.

    The next reconcile carries the target out with migration Jobs like any resize.
    """
    policy = spec.rebalance
    if policy is None or not decision.settled:
        return
    record = json.loads((meta.get("annotations") or {}).get(REBALANCE_ANNOTATION) or "{}")
    now = rt.clock.now()
    if now - float(record.get("at", 0)) < policy.period_seconds:
        return
    try:
        query = prometheus_access.operator_query(namespace, name, policy.load_query)
        loads = shard_loads(await rt.read_load(query), spec.shards)
    except (MetricError, ValueError) as err:  # load not read, or not per shard: move nothing
        kopf.warn(body, reason="LoadQueryFailed", message=str(err))
        patch.meta.annotations[REBALANCE_ANNOTATION] = json.dumps({"at": now, "active": False})
        return
    rules = RebalancePolicy(
        policy.imbalance_threshold, policy.hysteresis, policy.max_moves_per_period
    )
    outcome = rebalance(decision.routing.owners, loads, rules, bool(record.get("active")))
    patch.meta.annotations[REBALANCE_ANNOTATION] = json.dumps({"at": now, "active": outcome.active})
    log.info("shardset.rebalance", name=name, namespace=namespace, loads=loads,
             imbalance=outcome.imbalance, moved=outcome.plan.slots_moved, reason=outcome.reason)
    if outcome.plan.moves:
        retarget = replace(decision, target=Target(spec.shards, outcome.plan.after))
        manifest = _routing_manifest(name, namespace, retarget, body)
        await asyncio.to_thread(rt.shards.write_routing, namespace, manifest, version)
        kopf.event(body, type="Normal", reason="Rebalancing", message=outcome.reason)


async def _update_templates(
    rt: Runtime, name: str, namespace: str, template: Mapping[str, Any],
    objects: ShardSetObjects,
) -> None:
    """Shards whose StatefulSet was made from an older template get the current one."""
    for obj in objects.stateful_sets:
        shard = manifests.shard_of(obj)
        if shard is not None and manifests.is_out_of_date(obj, template):
            patch = manifests.template_update(name, shard, template)
            await asyncio.to_thread(
                rt.shards.patch_stateful_set, namespace, manifests.shard_name(name, shard), patch
            )


def _routing_manifest(name: str, namespace: str, decision: Decision, body: Any) -> dict[str, Any]:
    owners = decision.routing.owners
    shards = set(owners) | {s for m in decision.routing.migrating for s in (m.source, m.target)}
    addresses = {s: manifests.shard_address(name, namespace, s) for s in shards}
    table = build_table(owners, addresses, decision.routing.epoch, decision.routing.migrating)
    data = table.to_config_map_data() | {TARGET_KEY: decision.target.to_json()}
    manifest = manifests.routing_config_map(name, data)
    kopf.adopt(manifest, owner=body)
    return manifest


def _record(
    patch: Any,
    snapshot: ShardSetSnapshot,
    decision: Decision,
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    shards: int,
    now: float,
) -> None:
    """Status and the given-up annotation, written only when they changed."""
    new_status = status_for(
        snapshot, decision, status.get("conditions") or [], now, meta.get("generation")
    )
    if any(status.get(key) != value for key, value in new_status.items()):
        patch.status.update(new_status)
    annotations = meta.get("annotations") or {}
    for key, record, empty in (
        (records.GIVEN_UP_ANNOTATION,
         records.given_up_record(shards, decision.given_up, decision.stranded),
         not decision.stranded),
        (records.ATTEMPTS_ANNOTATION, records.attempts_record(decision.attempts),
         not decision.attempts),
    ):
        if annotations.get(key, record if empty else None) != record:
            patch.metadata.annotations[key] = record


def _report_refusal(
    patch: Any, status: Mapping[str, Any], meta: Mapping[str, Any], reason: str, message: str,
    now: float,
) -> None:
    """Nothing was done: say why in the Ready condition (other conditions are kept as they are)."""
    previous = status.get("conditions") or []
    ready = replace_conditions(
        previous, [Condition("Ready", "False", reason, message)], now,
        meta.get("generation"),
    )
    others = [c for c in previous if c.get("type") != "Ready"]
    if [*ready, *others] != list(previous):
        patch.status["conditions"] = [*ready, *others]
