"""Load-aware rebalancing: move slots from hot shards to cold ones when the load is uneven.

Only per-shard load is observed (a PromQL query labelled by ``shard``), so a shard's load is
assumed to be spread evenly over its slots: moving ``x`` of a shard's ``n`` slots moves ``x / n``
of its load. Imbalance is the hottest shard's load over the mean, minus one (0.25 = the hottest
shard carries 25% more than its fair share).

Hysteresis keeps the operator from flapping around the threshold: a period starts rebalancing
only above ``imbalance_threshold``, but once started it keeps going (and aims for) the lower level
``imbalance_threshold - hysteresis``. The caller carries ``active`` from one period to the next.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adaptive_operator.domain.sharding.slots import (
    Plan,
    group_moves,
    shard_counts,
    validate_assignment,
)


@dataclass(frozen=True)
class RebalancePolicy:
    imbalance_threshold: float
    hysteresis: float = 0.0
    max_moves: int = 1024  # slots moved per period, the cap on migration work per period

    def __post_init__(self) -> None:
        if self.imbalance_threshold < 0 or self.hysteresis < 0 or self.max_moves < 0:
            raise ValueError("threshold, hysteresis and max_moves must not be negative")
        if self.hysteresis > self.imbalance_threshold:
            raise ValueError("hysteresis must not exceed the imbalance threshold")

    @property
    def target(self) -> float:
        return self.imbalance_threshold - self.hysteresis


@dataclass(frozen=True)
class RebalanceDecision:
    plan: Plan
    imbalance: float
    predicted_imbalance: float
    triggered: bool
    active: bool  # carry into the next period: still above the target after this period's moves
    reason: str


def shard_loads(series: Sequence[Mapping[str, Any]], shards: int) -> list[float]:
    """Per-shard load from a Prometheus instant vector, one series per ``shard`` label.

    The label is the shard number, or a name ending in it (``cache-2``, a StatefulSet's name).
    Series for shards at or above ``shards`` are ignored; a missing, repeated or unreadable
    shard is refused, since acting on partial load data would move slots the wrong way.
    """
    loads: dict[int, float] = {}
    for item in series:
        shard, value = _sample(item)
        if shard in loads:
            raise ValueError(f"more than one series for shard {shard}")
        loads[shard] = value
    missing = [shard for shard in range(shards) if shard not in loads]
    if missing:
        raise ValueError(f"the load query has no series for shards {missing}")
    return [loads[shard] for shard in range(shards)]


def _sample(item: Mapping[str, Any]) -> tuple[int, float]:
    metric = item.get("metric") or {}
    shard = _shard_number(metric.get("shard")) if isinstance(metric, Mapping) else None
    if shard is None:
        raise ValueError(f"series {metric} has no shard label ending in a number")
    try:
        value = float(item["value"][1])
    except (TypeError, ValueError, IndexError, KeyError) as err:
        raise ValueError(f"shard {shard} has load {item.get('value')!r}, not a number") from err
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"shard {shard} has load {value}, expected a finite number >= 0")
    return shard, value


def _shard_number(label: Any) -> int | None:
    text = str(label).rsplit("-", 1)[-1] if label is not None else ""
    return int(text) if text.isdigit() else None


def imbalance(loads: Sequence[float]) -> float:
    """Hottest load over the mean, minus one; 0 when there is no load at all."""
    if not loads:
        return 0.0
    mean = sum(loads) / len(loads)
    if mean <= 0:
        return 0.0
    return max(loads) / mean - 1.0


def rebalance(
    assignment: Sequence[int],
    loads: Sequence[float],
    policy: RebalancePolicy,
    active: bool = False,
) -> RebalanceDecision:
    """Decide this period's slot moves from per-shard ``loads`` (index = shard)."""
    _check_inputs(assignment, loads)
    current = imbalance(loads)
    trigger_level = policy.target if active else policy.imbalance_threshold
    if current <= trigger_level:
        reason = f"imbalance {current:.3f} is within {trigger_level:.3f}"
        return _idle(assignment, current, reason)
    after, predicted = _shift_load(assignment, loads, policy)
    plan = Plan(tuple(assignment), tuple(after), group_moves(assignment, after))
    reason = (
        f"imbalance {current:.3f} above {trigger_level:.3f}: moving {plan.slots_moved} slots, "
        f"predicted {predicted:.3f}"
    )
    return RebalanceDecision(
        plan, current, predicted, True, predicted > policy.target, reason
    )


def _idle(assignment: Sequence[int], current: float, reason: str) -> RebalanceDecision:
    unchanged = tuple(assignment)
    return RebalanceDecision(Plan(unchanged, unchanged, ()), current, current, False, False, reason)


def _check_inputs(assignment: Sequence[int], loads: Sequence[float]) -> None:
    validate_assignment(assignment)
    if max(assignment) >= len(loads):
        raise ValueError(f"slots are owned by shard {max(assignment)} but only {len(loads)} loads")
    if any(not math.isfinite(load) or load < 0 for load in loads):
        raise ValueError("loads must be finite and not negative")


def _shift_load(
    assignment: Sequence[int], loads: Sequence[float], policy: RebalancePolicy
) -> tuple[list[int], float]:
    """Greedy: repeatedly move slots from the hottest shard to the coldest one.

    Slot loads are fixed at the start (each shard's load spread over its slots), so a slot that
    moved keeps its own load. A slot moves only while it leaves the hot shard at least as loaded
    as the cold one, so the sum of squared loads falls with every move and the loop ends.
    """
    owners = list(assignment)
    counts = shard_counts(owners, len(loads))
    slot_load = [loads[owner] / counts[owner] for owner in owners]
    load = [float(x) for x in loads]
    level = sum(load) / len(load) * (1 + policy.target)
    budget = policy.max_moves
    while budget > 0 and imbalance(load) > policy.target:
        hot = max(range(len(load)), key=lambda s: (load[s], -s))
        cold = min(range(len(load)), key=lambda s: (load[s], s))
        moved = _transfer(owners, slot_load, load, (hot, cold), min(budget, counts[hot] - 1), level)
        if moved == 0:
            break
        counts[hot] -= moved
        counts[cold] += moved
        budget -= moved
    return owners, imbalance(load)


def _transfer(
    owners: list[int],
    slot_load: Sequence[float],
    load: list[float],
    pair: tuple[int, int],
    limit: int,
    level: float,
) -> int:
    """Move up to ``limit`` of the hot shard's slots, highest-numbered first (they tend to form
    one range), until it is down to ``level`` or the next slot would overshoot the cold shard."""
    hot, cold = pair
    moved = 0
    for slot in range(len(owners) - 1, -1, -1):
        if moved >= limit or load[hot] <= level:
            break
        weight = slot_load[slot]
        if owners[slot] != hot or weight <= 0 or 2 * weight > load[hot] - load[cold]:
            continue
        owners[slot] = cold
        load[hot] -= weight
        load[cold] += weight
        moved += 1
    return moved
