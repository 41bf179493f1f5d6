"""What one ShardSet reconcile writes, decided from its snapshot: pure functions, no I/O.

The handler observes the owned objects into a `ShardSetSnapshot`, `plan` decides, and the handler
applies the plan in an order that survives a restart at any point (the routing table first).
A rebalance is a second, smaller cycle: its load is read only once the first plan has settled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from adaptive_operator.api.shard_set import Rebalance, ShardSetSpec
from adaptive_operator.domain.common.conditions import Condition, replace_conditions
from adaptive_operator.domain.common.events import Event
from adaptive_operator.domain.sharding import manifests, records
from adaptive_operator.domain.sharding.migration import RoutingState
from adaptive_operator.domain.sharding.rebalancing import (
    RebalanceDecision,
    RebalancePolicy,
    rebalance,
)
from adaptive_operator.domain.sharding.resharding import (
    Decision,
    JobObservation,
    ShardSetSnapshot,
    Target,
    decide,
)
from adaptive_operator.domain.sharding.status import status_for

REBALANCE_ANNOTATION = "adaptive.dev/rebalance"  # {"at": last check, "active": hysteresis}


@dataclass(frozen=True)
class ShardSetPlan:
    """The decision, whether the routing table is to be written, and the Events to post."""

    decision: Decision
    write_routing: bool  # the table or the target moved: write the ConfigMap
    events: tuple[Event, ...] = ()


def shards_of(stateful_sets: Sequence[Mapping[str, Any]]) -> tuple[frozenset[int],
                                                                    frozenset[int]]:
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


def snapshot_of(spec: ShardSetSpec, routing: RoutingState | None, target: Target | None,
                stateful_sets: Sequence[Mapping[str, Any]], jobs: Sequence[JobObservation | None],
                annotations: Mapping[str, str]) -> ShardSetSnapshot:
    """One immutable snapshot of what was observed, and of the records kept in annotations."""
    existing, ready = shards_of(stateful_sets)
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


def plan(snapshot: ShardSetSnapshot, now: float) -> ShardSetPlan:
    """Decide (raises ValueError on a table that does not fit the spec), and what to write.
    The status and the records are made after applying, by `record`."""
    decision = decide(snapshot, now=now)
    moved = decision.routing != snapshot.routing or decision.target != snapshot.target
    events = tuple(Event("Normal", "Resharding", message) for message in decision.events)
    return ShardSetPlan(decision, moved, events)


def record(snapshot: ShardSetSnapshot, decision: Decision, status: Mapping[str, Any],
           meta: Mapping[str, Any], shards: int,
           now: float) -> tuple[dict[str, Any], dict[str, str]]:
    """Status and the given-up and attempts annotations, each only when it changed."""
    new_status = status_for(
        snapshot, decision, status.get("conditions") or [], now, meta.get("generation")
    )
    if all(status.get(key) == value for key, value in new_status.items()):
        new_status = {}
    annotations = meta.get("annotations") or {}
    changed: dict[str, str] = {}
    for key, text, empty in (
        (records.GIVEN_UP_ANNOTATION,
         records.given_up_record(shards, decision.given_up, decision.stranded),
         not decision.stranded),
        (records.ATTEMPTS_ANNOTATION, records.attempts_record(decision.attempts),
         not decision.attempts),
    ):
        if annotations.get(key, text if empty else None) != text:
            changed[key] = text
    return new_status, changed


def refusal(status: Mapping[str, Any], generation: int | None, reason: str, message: str,
            now: float) -> list[dict[str, Any]] | None:
    """Nothing was done: the conditions that say why in Ready (the others kept as they are),
    or None when they already say so."""
    previous = status.get("conditions") or []
    ready = replace_conditions(previous, [Condition("Ready", "False", reason, message)], now,
                               generation)
    others = [c for c in previous if c.get("type") != "Ready"]
    return None if [*ready, *others] == list(previous) else [*ready, *others]


def rebalance_due(policy: Rebalance | None, decision: Decision, meta: Mapping[str, Any],
                  now: float) -> dict[str, Any] | None:
    """The last rebalance record when a check is due (a policy, nothing moving, a period
    passed since the last), else None."""
    if policy is None or not decision.settled:
        return None
    found = json.loads((meta.get("annotations") or {}).get(REBALANCE_ANNOTATION) or "{}")
    return found if now - float(found.get("at", 0)) >= policy.period_seconds else None


@dataclass(frozen=True)
class RebalancePlan:
    annotation: str  # the new record: when this check was made, and the hysteresis
    outcome: RebalanceDecision
    retarget: Decision | None  # the decision with the new target to write, when slots move
    event: Event | None = None


def plan_rebalance(policy: Rebalance, spec_shards: int, decision: Decision,
                   previous: Mapping[str, Any], loads: Sequence[float],
                   now: float) -> RebalancePlan:
    """A new target from the per-shard load; the next reconcile carries it out."""
    rules = RebalancePolicy(policy.imbalance_threshold, policy.hysteresis,
                            policy.max_moves_per_period)
    outcome = rebalance(decision.routing.owners, loads, rules, bool(previous.get("active")))
    annotation = json.dumps({"at": now, "active": outcome.active})
    if not outcome.plan.moves:
        return RebalancePlan(annotation, outcome, None)
    retarget = replace(decision, target=Target(spec_shards, outcome.plan.after))
    return RebalancePlan(annotation, outcome, retarget,
                         Event("Normal", "Rebalancing", outcome.reason))


def failed_check(now: float) -> str:
    """The record after a load that could not be read: nothing moves, tried next period."""
    return json.dumps({"at": now, "active": False})
