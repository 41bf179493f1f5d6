"""ShardSet status and conditions, from a reconcile decision (Kubernetes API conventions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adaptive_operator.domain.common.conditions import Condition, replace_conditions
from adaptive_operator.domain.sharding.resharding import Decision, ShardSetSnapshot
from adaptive_operator.domain.sharding.slots import Move

STRANDED_ANNOTATION = "adaptive.dev/given-up-moves"


def conditions_for(snapshot: ShardSetSnapshot, decision: Decision) -> list[Condition]:
    """Ready (the summary), Resharding and Degraded."""
    routing = decision.routing
    wanted = set(range(snapshot.shards))
    not_ready = sorted(wanted - snapshot.ready_shards)
    moving = len(routing.migrating) + decision.pending_moves > 0
    degraded = Condition("Degraded", "False", "MigrationsSucceeding", "")
    if decision.stranded:
        ranges = ", ".join(f"{m.start}..{m.end - 1} (kept by shard {m.source}, partly copied to "
                           f"shard {m.target})" for m in sorted(decision.stranded, key=_key))
        degraded = Condition(
            "Degraded", "True", "MigrationFailed",
            f"migration gave up on slots {ranges}: keys on the target shards are stranded; "
            f"clean them, then remove the annotation {STRANDED_ANNOTATION}")
    resharding = Condition(
        "Resharding",
        "True" if moving else "False",
        "MovingSlots" if moving else "Balanced",
        f"{len(routing.migrating)} migrations running, {decision.pending_moves} waiting",
    )
    ready = _ready(not_ready, moving, decision.stranded != frozenset())
    return [ready, resharding, degraded]


def _key(move: Move) -> tuple[int, int]:
    return (move.start, move.end)


def _ready(not_ready: Sequence[int], moving: bool, failed: bool) -> Condition:
    if not_ready:
        return Condition("Ready", "False", "ShardsNotReady", f"shards not ready: {not_ready}")
    if failed:
        return Condition("Ready", "False", "MigrationFailed", "a migration gave up")
    if moving:
        return Condition("Ready", "False", "Resharding", "slots are being moved")
    return Condition("Ready", "True", "AllShardsReady", "every shard is ready and balanced")


def status_for(
    snapshot: ShardSetSnapshot,
    decision: Decision,
    previous_conditions: Sequence[Mapping[str, Any]],
    now: float,
    generation: int | None,
) -> dict[str, Any]:
    """The whole status block, camelCase, as the ShardSetStatus model describes it."""
    conditions = conditions_for(snapshot, decision)
    return {
        "shards": len(snapshot.existing_shards | set(decision.create_shards))
        - len(decision.delete_shards),
        "readyShards": len(snapshot.ready_shards & set(range(snapshot.shards))),
        "migrationsInFlight": len(decision.routing.migrating),
        "epoch": decision.routing.epoch,
        "observedGeneration": generation,
        "conditions": replace_conditions(previous_conditions, conditions, now, generation),
    }
