"""What healing makes of the Eviction API's answers (pure: domain/healing/ownership.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from adaptive_operator.domain.healing.ownership import Evicted, evicted, eviction_uids


@dataclass(frozen=True)
class Refusal:
    message: str
    by_budget: bool
    not_owned: str = ""


BUDGET = Refusal("a: budget", True)
OTHER = Refusal("b: gone", False)
STRANGER = Refusal("c: not the target's", False, "c")


def test_the_uids_decided_on_go_with_their_pods() -> None:
    assert eviction_uids(("a", "b"), ("u1", "u2")) == {"a": "u1", "b": "u2"}


def test_a_ledger_without_uids_evicts_by_name_only() -> None:
    assert eviction_uids(("a", "b"), ()) == {}


@pytest.mark.parametrize(("pods", "refusals", "expected"), [
    pytest.param(("a",), [], Evicted(None, False, ()), id="all-evicted"),
    pytest.param(("a",), [BUDGET], Evicted("a: budget", True, ()), id="budget-refused-all"),
    pytest.param(("a", "b"), [BUDGET], Evicted("a: budget", False, ()),
                 id="budget-refused-some-so-not-blocked"),
    pytest.param(("a", "b"), [BUDGET, OTHER], Evicted("a: budget; b: gone", False, ()),
                 id="another-refusal-is-not-a-budget"),
    pytest.param(("c",), [STRANGER], Evicted("c: not the target's", False, ("c",)),
                 id="a-pod-not-the-targets-is-named"),
])
def test_evicted(pods: tuple[str, ...], refusals: list[Refusal], expected: Evicted) -> None:
    assert evicted(pods, refusals) == expected
