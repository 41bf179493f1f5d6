"""Which pytest-xdist group (and so which worker) runs each e2e test.

Two groups share the one cluster at the same time: the modules that use the real node (one
node, one module at a time) and the others. A module never spans two groups: its module-scoped
fixtures start one operator, which two workers would start twice. Tests marked `last` (they may
take the cluster down) form a group of their own, which must run alone: `scripts/test` runs
them in a second pytest run, once every other test is done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

REAL, OTHERS, LAST = "e2e-real", "e2e", "e2e-last"
GROUPS = (REAL, OTHERS, LAST)

# Whole modules moved beside the real-node ones to balance the groups' wall time. Per-test times
# of a CI run (.state/junit-phase1.xml, 5 December 2026) summed by group: the real-node group
# 996 s (test_predictive_scaling already in it), the others 1,299 s; these two took 106 s and
# 55 s of the others', leaving about 1,140 s to each.
BALANCE = frozenset({"test_predictive_scaling", "test_shard_set", "test_lease_sharing"})


@dataclass(frozen=True)
class E2ETest:
    module: str  # the file's stem, e.g. "test_real_healing"
    uses_real_node: bool  # the `real_node` fixture is among the fixtures it needs
    last: bool  # marked `last`


def groups(tests: Sequence[E2ETest]) -> list[str]:
    """Each test's group, in order."""
    real = {t.module for t in tests if t.uses_real_node} | BALANCE
    return [LAST if t.last else REAL if t.module in real else OTHERS for t in tests]


def misplaced(ids: Iterable[str]) -> str | None:
    """Why pytest-xdist's collection (test ids, `@group` appended) cannot run as collected, or
    None: every e2e test must be in one of the groups, and the `last` ones alone."""
    e2e = [i for i in ids if i.startswith("e2e/")]
    return ungrouped(e2e) or last_beside_others(e2e)


def ungrouped(e2e: list[str]) -> str | None:
    loose = [i for i in e2e if i.rsplit("@", 1)[-1] not in GROUPS or "@" not in i]
    if loose:
        return (f"pytest-xdist did not group {len(loose)} e2e tests (first: {loose[0]}): use "
                "the pytest and pytest-xdist versions pyproject.toml allows")
    return None


def last_beside_others(e2e: list[str]) -> str | None:
    last = [i for i in e2e if i.endswith(f"@{LAST}")]
    if last and len(last) < len(e2e):
        return (f"{last[0]} is marked last (it may take the cluster down) and cannot run beside "
                "other e2e tests: run the tests marked last on their own (`-m last`), after the "
                "others (`-m 'not last'`), as scripts/test does")
    return None
