"""Status conditions per the Kubernetes API conventions, as plain dictionaries.

`lastTransitionTime` changes only when a condition's status changes, so `kubectl get -w` and
alerting see real transitions, not every sync.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from adaptive_operator.api.base import truncated
from adaptive_operator.domain.common.times import timestamp

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str


def merge_conditions(
    current: Sequence[Mapping[str, Any]],
    updates: Iterable[Condition],
    now: float,
    generation: int | None,
) -> list[dict[str, Any]]:
    """The conditions after `updates`, keeping untouched ones and their transition times."""
    merged = {str(c["type"]): dict(c) for c in current}
    for update in updates:
        merged[update.type] = _after(merged.get(update.type), update, now, generation)
    return sorted(merged.values(), key=lambda c: str(c["type"]))


def replace_conditions(
    current: Sequence[Mapping[str, Any]],
    updates: Iterable[Condition],
    now: float,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Exactly `updates`, in their order, each keeping its transition time when unchanged."""
    before = {str(c.get("type")): c for c in current}
    return [_after(before.get(update.type), update, now, generation) for update in updates]


def _after(
    previous: Mapping[str, Any] | None, update: Condition, now: float, generation: int | None
) -> dict[str, Any]:
    """One condition as written; `lastTransitionTime` moves only when the status changes."""
    since = timestamp(now)
    if previous is not None and previous.get("status") == update.status:
        since = previous.get("lastTransitionTime", since)
    return {
        "type": update.type,
        "status": update.status,
        "reason": update.reason,
        "message": truncated(update.message),
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }
