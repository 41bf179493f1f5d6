"""What a pod's manifest says about its life: one rule for scaling's pod counts and healing's
pod reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FINISHED_PHASES = ("Succeeded", "Failed")


def is_live(pod: Mapping[str, Any]) -> bool:
    """Neither terminating (it has a deletion timestamp) nor finished (Succeeded, Failed)."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in FINISHED_PHASES
