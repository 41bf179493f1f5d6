"""Whether a pod belongs to the scale target, by its ownerReferences chain up to the target's
UID: pod -> ReplicaSet -> Rollout, pod -> ReplicationController, pod -> custom resource
directly or through what it made. Pure: the owners are read by the function given.

What cannot be established is not guessed: an owner that cannot be read, a chain that ends or
runs too long, all say "not shown to be the target's", and the pod is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_DEPTH = 4  # pod -> ReplicaSet -> Rollout is 2; an operator's own layers add a few
# (api_version, kind, name) -> the owner's manifest, None when it cannot be read.
Reader = Callable[[str, str, str], Mapping[str, Any] | None]


def owned_by_target(pod: Mapping[str, Any], target_uid: str, read: Reader) -> bool:
    """True when a chain of ownerReferences leads from `pod` to the object of `target_uid`."""
    return bool(target_uid) and _leads(pod, target_uid, read, MAX_DEPTH)


def _leads(item: Mapping[str, Any], target_uid: str, read: Reader, depth: int) -> bool:
    refs = (item.get("metadata") or {}).get("ownerReferences") or []
    if any(ref.get("uid") == target_uid for ref in refs):
        return True
    if depth <= 1:
        return False
    return any(_owner_leads(ref, target_uid, read, depth - 1) for ref in refs)


def _owner_leads(ref: Mapping[str, Any], target_uid: str, read: Reader, depth: int) -> bool:
    """Whether the owner `ref` names leads to the target in at most `depth` more links."""
    owner = read(str(ref.get("apiVersion", "")), str(ref.get("kind", "")),
                 str(ref.get("name", "")))
    # The owner read must be the one referenced (a name may have been reused).
    if owner is None or (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
        return False
    return _leads(owner, target_uid, read, depth)


class Refusal(Protocol):
    """A pod an eviction did not evict (adapters.workload.Refusal)."""

    @property
    def message(self) -> str: ...

    @property
    def by_budget(self) -> bool: ...

    @property
    def not_owned(self) -> str: ...


@dataclass(frozen=True)
class Evicted:
    """What the evictions ran into (None: nothing), whether PodDisruptionBudgets refused every
    one, and the pods left alone as not the target's."""

    problem: str | None
    blocked: bool
    not_owned: tuple[str, ...]


@dataclass(frozen=True)
class Carried:
    """What became of an action: PodDisruptionBudgets refused all of it (Blocked), and the
    pods an eviction left alone as not the target's (None: no eviction was made)."""

    blocked: bool = False
    not_owned: tuple[str, ...] | None = None


def eviction_uids(pods: tuple[str, ...], uids: tuple[str, ...]) -> dict[str, str]:
    """The UIDs decided on, by pod name (ledgers written before they were recorded have
    none)."""
    return dict(zip(pods, uids, strict=True)) if len(uids) == len(pods) else {}


def evicted(pods: tuple[str, ...], refusals: Sequence[Refusal]) -> Evicted:
    blocked = len(refusals) == len(pods) and all(r.by_budget for r in refusals)
    return Evicted("; ".join(r.message for r in refusals) or None, blocked,
                   tuple(r.not_owned for r in refusals if r.not_owned))
