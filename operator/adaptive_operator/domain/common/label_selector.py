"""Kubernetes label selectors (`matchLabels` + `matchExpressions`), matched against labels.

Pure: the watch-fed caches use it to find a workload's pods and ReplicaSets without asking the
API server, with the API server's own semantics (every requirement must hold; an empty selector
selects everything, a missing one nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _requirement_holds(requirement: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = str(requirement.get("key", ""))
    operator = requirement.get("operator")
    values = {str(v) for v in requirement.get("values") or []}
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False  # an operator we do not know selects nothing, never everything


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether a LabelSelector (the API's JSON form) selects an object with these labels."""
    if selector is None:
        return False
    found = labels or {}
    wanted = selector.get("matchLabels") or {}
    if any(found.get(key) != str(value) for key, value in wanted.items()):
        return False
    return all(_requirement_holds(r, found) for r in selector.get("matchExpressions") or [])


def to_text(selector: Mapping[str, Any]) -> str:
    """The selector as the API's `labelSelector` query parameter (and a scale's
    `status.selector`) writes it."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for requirement in selector.get("matchExpressions") or []:
        key, operator = requirement.get("key"), requirement.get("operator")
        values = ",".join(sorted(str(v) for v in requirement.get("values") or []))
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": f"{key}", "DoesNotExist": f"!{key}"}.get(str(operator), ""))
    return ",".join(part for part in parts if part)
