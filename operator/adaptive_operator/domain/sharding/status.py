"""ShardSet status and conditions, from a reconcile decision (Kubernetes API conventions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adaptive_operator.api.base import truncated
from adaptive_operator.domain.sharding.resharding import Decision, ShardSetSnapshot
from adaptive_operator.domain.sharding.slots import Move

STRANDED_ANNOTATION = "adaptive.dev/given-up-moves"


@dataclass(frozen=True)
class ConditionState:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def conditions_for(snapshot: ShardSetSnapshot, decision: Decision) -> list[ConditionState]:
    """Ready (the summary), Resharding and Degraded."""
    routing = decision.routing
    wanted = set(range(snapshot.shards))
    not_ready = sorted(wanted - snapshot.ready_shards)
    moving = len(routing.migrating) + decision.pending_moves > 0
    degraded = ConditionState("Degraded", "False", "MigrationsSucceeding", "")
    if decision.stranded:
        ranges = ", ".join(f"{m.start}..{m.end - 1} (kept by shard {m.source}, partly copied to "
                           f"shard {m.target})" for m in sorted(decision.stranded, key=_key))
        degraded = ConditionState(
            "Degraded", "True", "MigrationFailed",
            f"migration gave up on slots {ranges}: keys on the target shards are stranded; "
            f"clean them, then remove the annotation {STRANDED_ANNOTATION}")
    resharding = ConditionState(
        "Resharding",
        "True" if moving else "False",
        "MovingSlots" if moving else "Balanced",
        f"{len(routing.migrating)} migrations running, {decision.pending_moves} waiting",
    )
    ready = _ready(not_ready, moving, decision.stranded != frozenset())
    return [ready, resharding, degraded]


def _key(move: Move) -> tuple[int, int]:
    return (move.start, move.end)


def _ready(not_ready: Sequence[int], moving: bool, failed: bool) -> ConditionState:
    if not_ready:
        return ConditionState("Ready", "False", "ShardsNotReady", f"shards not ready: {not_ready}")
    if failed:
        return ConditionState("Ready", "False", "MigrationFailed", "a migration gave up")
    if moving:
        return ConditionState("Ready", "False", "Resharding", "slots are being moved")
    return ConditionState("Ready", "True", "AllShardsReady", "every shard is ready and balanced")


def merge_conditions(
    previous: Sequence[Mapping[str, Any]],
    current: Sequence[ConditionState],
    now_iso: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Serialised conditions; lastTransitionTime moves only when a condition's status changes."""
    before = {c.get("type"): c for c in previous}
    merged: list[dict[str, Any]] = []
    for cond in current:
        old = before.get(cond.type, {})
        unchanged = old.get("status") == cond.status
        since = old.get("lastTransitionTime", now_iso) if unchanged else now_iso
        merged.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": truncated(cond.message),
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return merged


def status_for(
    snapshot: ShardSetSnapshot,
    decision: Decision,
    previous_conditions: Sequence[Mapping[str, Any]],
    now_iso: str,
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
        "conditions": merge_conditions(previous_conditions, conditions, now_iso, generation),
    }
