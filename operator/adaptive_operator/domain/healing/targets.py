"""Which remedies healing can carry out on a kind of scale target, and what it cannot.

A Deployment can be rolled back (its ReplicaSets hold the earlier templates), restarted (a
template annotation) and have its pods evicted. A StatefulSet too: its ControllerRevisions hold
the earlier templates. Any target with a /scale selector can have its pods evicted and be
scaled out.
What is not listed is not attempted: healing never guesses how another kind is rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adaptive_operator.domain.common.conditions import Condition
from adaptive_operator.domain.healing.inputs import REVISION

CONDITION = "HealingLimited"
ALL = ("RollBack", "EvictPods", "RolloutRestart", "ScaleOut")
BY_KIND: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps", "Deployment"): ALL,
    ("apps", "StatefulSet"): ALL,
}
ANY_SCALABLE = ("EvictPods", "ScaleOut")  # pods found through the /scale selector


@dataclass(frozen=True)
class Remedies:
    kind: str
    available: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(a for a in ALL if a not in self.available)

    def allows(self, action: str) -> bool:
        return action in self.available


def remedies(api_version: str, kind: str) -> Remedies:
    group = api_version.rpartition("/")[0]
    return Remedies(kind, BY_KIND.get((group, kind), ANY_SCALABLE))


def not_allowed(api_version: str, kind: str, action: str) -> str | None:
    """Why healing cannot take `action` on this kind (HealingLimited says so too); None when
    it can."""
    if remedies(api_version, kind).allows(action):
        return None
    return f"healing cannot {action} a {kind} (see HealingLimited)"


def limited_condition(found: Remedies) -> Condition:
    """HealingLimited: True (with what is missing) unless every remedy is available."""
    if not found.missing:
        return Condition(CONDITION, "False", "AllRemediesAvailable",
                         f"healing can {', '.join(found.available)} a {found.kind}")
    return Condition(CONDITION, "True", "RemediesUnavailable",
                     f"healing cannot {' or '.join(found.missing)} a {found.kind}; it can "
                     f"{', '.join(found.available)} (pods found through the /scale selector)")


def revisions_as_replica_sets(revisions: Sequence[Mapping[str, Any]],
                              owner_uid: str) -> list[dict[str, Any]]:
    """A StatefulSet's ControllerRevisions in the shape of a Deployment's ReplicaSets (revision
    annotation, creation time, pod template), so that one rollout reading serves both. Only
    those the StatefulSet owns: a selector may match another's."""
    found = []
    for revision in revisions:
        shaped = _as_replica_set(revision)
        if shaped is not None and _owned_by(revision, owner_uid):
            found.append(shaped)
    return found


def _as_replica_set(revision: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ControllerRevision in a ReplicaSet's shape, None when it holds no pod template or
    no revision number."""
    meta = revision.get("metadata") or {}
    template = ((revision.get("data") or {}).get("spec") or {}).get("template")
    number = revision.get("revision")
    if not isinstance(template, dict) or not isinstance(number, int):
        return None
    # A ControllerRevision stores the template as a strategic-merge patch: its `$patch`
    # directive is no part of what runs.
    template = {k: v for k, v in template.items() if k != "$patch"}
    return {"metadata": {"annotations": {REVISION: str(number)},
                         "creationTimestamp": meta.get("creationTimestamp")},
            "spec": {"template": template}}


def _owned_by(revision: Mapping[str, Any], owner_uid: str) -> bool:
    owners = (revision.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid for ref in owners)
