"""Status conditions per the Kubernetes API conventions, as plain dictionaries.

`lastTransitionTime` changes only when a condition's status changes, so `kubectl get -w` and
alerting see real transitions, not every sync.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from adaptive_operator.api.base import truncated

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str


def timestamp(now: float) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes times."""
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    current: Sequence[Mapping[str, Any]],
    updates: Iterable[Condition],
    now: float,
    generation: int,
) -> list[dict[str, Any]]:
    """The conditions after `updates`, keeping untouched ones and their transition times."""
    merged = {str(c["type"]): dict(c) for c in current}
    for update in updates:
        previous = merged.get(update.type)
        changed = previous is None or previous.get("status") != update.status
        merged[update.type] = {
            "type": update.type,
            "status": update.status,
            "reason": update.reason,
            "message": truncated(update.message),
            "lastTransitionTime": timestamp(now) if changed or previous is None
            else previous.get("lastTransitionTime", timestamp(now)),
            "observedGeneration": generation,
        }
    return sorted(merged.values(), key=lambda c: str(c["type"]))

