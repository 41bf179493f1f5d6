"""Applying a ShardSet plan, in an order that survives a restart at any point.

The routing table is written first (it is the record of ownership and of migrations started),
then Jobs are created, and finished Jobs and empty shards are deleted last. Everything created is
owned by the ShardSet, so deleting it lets the garbage collector remove the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf

from adaptive_operator import failpoints
from adaptive_operator.adapters.shard_cluster import ShardSetObjects
from adaptive_operator.api.shard_set import ShardSetSpec
from adaptive_operator.domain.sharding import manifests
from adaptive_operator.domain.sharding.plan import ShardSetPlan
from adaptive_operator.domain.sharding.resharding import Decision
from adaptive_operator.handlers.ports import post_events
from adaptive_operator.handlers.runtime import Runtime
from adaptive_operator.routing import build_table

TARGET_KEY = "target"  # next to the routing table: the assignment being carried out


async def apply(rt: Runtime, name: str, namespace: str, spec: ShardSetSpec,
                 objects: ShardSetObjects, plan: ShardSetPlan, body: Any) -> str | None:
    """Carry the plan out; returns the routing ConfigMap's version after it."""
    api, decision = rt.shards, plan.decision
    template = spec.template.model_dump(by_alias=True)
    for shard in decision.create_shards:
        for manifest in (manifests.headless_service(name, shard),
                         manifests.stateful_set(name, shard, template)):
            kopf.adopt(manifest, owner=body)
            await asyncio.to_thread(api.create, namespace, manifest)
    await _update_templates(rt, name, namespace, template, objects)
    version = objects.routing_version
    if plan.write_routing:
        version = await asyncio.to_thread(
            api.write_routing, namespace, routing_manifest(name, namespace, decision, body),
            version)
    await _start_jobs(rt, name, namespace, spec, decision, body)
    await _delete_finished(rt, name, namespace, decision, body)
    await post_events(rt.events, body, plan.events)
    return version


async def _delete_finished(rt: Runtime, name: str, namespace: str, decision: Decision,
                           body: Any) -> None:
    """Finished Jobs, then the shards no longer needed (only those this ShardSet owns)."""
    for move, attempt in decision.delete_jobs:
        await asyncio.to_thread(rt.shards.delete, namespace, "Job",
                                manifests.job_name(name, move, attempt))
    for shard in decision.delete_shards:
        for kind in ("StatefulSet", "Service"):
            await asyncio.to_thread(rt.shards.delete_owned, namespace, kind,
                                    manifests.shard_name(name, shard), body["metadata"]["uid"])


async def _start_jobs(rt: Runtime, name: str, namespace: str, spec: ShardSetSpec,
                      decision: Decision, body: Any) -> None:
    """The migration Jobs, after the routing table that marks their moves has been written."""
    if decision.start_jobs:
        failpoints.hit("sharding.after_routing")
    for move, attempt in decision.start_jobs:
        job = manifests.migration_job(
            name, namespace, spec.slots, spec.migration.job_template, move, attempt)
        kopf.adopt(job, owner=body)
        await asyncio.to_thread(rt.shards.create, namespace, job)


async def _update_templates(rt: Runtime, name: str, namespace: str,
                            template: Mapping[str, Any], objects: ShardSetObjects) -> None:
    """Shards whose StatefulSet was made from an older template get the current one."""
    for obj in objects.stateful_sets:
        shard = manifests.shard_of(obj)
        if shard is not None and manifests.is_out_of_date(obj, template):
            patch = manifests.template_update(name, shard, template)
            await asyncio.to_thread(rt.shards.patch_stateful_set, namespace,
                                    manifests.shard_name(name, shard), patch)


def routing_manifest(name: str, namespace: str, decision: Decision, body: Any) -> dict[str, Any]:
    owners = decision.routing.owners
    shards = set(owners) | {s for m in decision.routing.migrating for s in (m.source, m.target)}
    addresses = {s: manifests.shard_address(name, namespace, s) for s in shards}
    table = build_table(owners, addresses, decision.routing.epoch, decision.routing.migrating)
    data = table.to_config_map_data() | {TARGET_KEY: decision.target.to_json()}
    manifest = manifests.routing_config_map(name, data)
    kopf.adopt(manifest, owner=body)
    return manifest
