"""Which remedies healing can carry out on a kind of scale target, and what it cannot.

A Deployment can be rolled back (its ReplicaSets hold the earlier templates), restarted (a
template annotation) and have its pods evicted. A StatefulSet can be restarted the same way and
its pods evicted; any target with a /scale selector can have its pods evicted and be scaled out.
What is not listed is not attempted: healing never guesses how another kind is rolled back.
"""

from __future__ import annotations

from dataclasses import dataclass

from adaptive_operator.domain.common.conditions import Condition

CONDITION = "HealingLimited"
ALL = ("RollBack", "EvictPods", "RolloutRestart", "ScaleOut")
BY_KIND: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps", "Deployment"): ALL,
    ("apps", "StatefulSet"): ("EvictPods", "RolloutRestart", "ScaleOut"),
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


def limited_condition(found: Remedies) -> Condition:
    """HealingLimited: True (with what is missing) unless every remedy is available."""
    if not found.missing:
        return Condition(CONDITION, "False", "AllRemediesAvailable",
                         f"healing can {', '.join(found.available)} a {found.kind}")
    return Condition(CONDITION, "True", "RemediesUnavailable",
                     f"healing cannot {' or '.join(found.missing)} a {found.kind}; it can "
                     f"{', '.join(found.available)} (pods found through the /scale selector)")
