"""What healing can do to each kind of target, said in HealingLimited, and never more."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.healing.inputs import rollback_template, rollout_info
from adaptive_operator.domain.healing.ladder import Action, LedgerEntry, Outcome
from adaptive_operator.domain.healing.scaler import healing_conditions
from adaptive_operator.domain.healing.targets import (
    limited_condition,
    not_allowed,
    remedies,
    revisions_as_replica_sets,
)
from adaptive_operator.handlers import healing_apply

from fakes import Cluster


@pytest.mark.parametrize(("api_version", "kind", "missing"), [
    pytest.param("apps/v1", "Deployment", (), id="deployment"),
    pytest.param("apps/v1", "StatefulSet", (), id="statefulset"),
    pytest.param("e2e.adaptive.dev/v1", "Widget", ("RollBack", "RolloutRestart"),
                 id="custom-resource"),
    pytest.param("example.com/v1", "Deployment", ("RollBack", "RolloutRestart"),
                 id="a-deployment-of-another-group-is-not-apps"),
])
def test_remedies_by_kind(api_version: str, kind: str, missing: tuple[str, ...]) -> None:
    found = remedies(api_version, kind)
    assert found.missing == missing
    condition = limited_condition(found)
    assert condition.status == ("True" if missing else "False")
    for action in missing:
        assert action in condition.message and not found.allows(action)
        assert not_allowed(api_version, kind, action) == (
            f"healing cannot {action} a {kind} (see HealingLimited)")
    assert not_allowed(api_version, kind, "EvictPods") is None


def spec(kind: str, api_version: str, healing_on: bool = True) -> AdaptiveServiceSpec:
    body: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": "w"},
        "maxReplicas": 5, "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 1}]}
    if healing_on:
        body["healing"] = {"enabled": True}
    return AdaptiveServiceSpec.model_validate(body)


def test_the_scaling_status_carries_the_condition_while_healing_is_on() -> None:
    found = healing_conditions(spec("Widget", "e2e.adaptive.dev/v1"), {})
    assert [(c.type, c.status, c.reason) for c in found] == [
        ("HealingLimited", "True", "RemediesUnavailable")]
    off = spec("Widget", "e2e.adaptive.dev/v1", healing_on=False)
    assert healing_conditions(off, {}) == []
    shown = {"conditions": [{"type": "HealingLimited"}]}
    assert [c.reason for c in healing_conditions(off, shown)] == [
        "HealingDisabled"]


async def test_an_action_a_kind_does_not_allow_is_refused_not_guessed() -> None:
    intent = LedgerEntry("restart-1", Action.ROLLOUT_RESTART, 1.0, Outcome.PENDING)
    problem = await healing_apply._perform("ns", spec("Widget", "e2e.adaptive.dev/v1"), intent,
                                           Cluster())
    assert problem == "healing cannot RolloutRestart a Widget (see HealingLimited)"
    rollback = LedgerEntry("rollback-1", Action.ROLL_BACK, 1.0, Outcome.PENDING, 3)
    problem = await healing_apply._perform("ns", spec("Rollout", "argoproj.io/v1alpha1"), rollback,
                                           Cluster())
    assert problem == "healing cannot RollBack a Rollout (see HealingLimited)"


def revision(number: int, image: str, owner: str = "sts-uid") -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": image}]}, "$patch": "replace"}
    return {"metadata": {"name": f"db-{number}", "ownerReferences": [{"uid": owner}],
                         "creationTimestamp": f"2026-12-03T2{number}:00:00Z"},
            "revision": number, "data": {"spec": {"template": template}}}


def test_a_statefulsets_revisions_give_its_rollout_and_the_template_to_return_to() -> None:
    revisions = [revision(1, "db:1"), revision(2, "db:2"), revision(3, "db:3", owner="other"),
                 {"metadata": {}, "revision": "x"}]
    sets = revisions_as_replica_sets(revisions, "sts-uid")
    rollout = rollout_info(sets)
    assert rollout is not None
    assert (rollout.current_revision, rollout.previous_revision) == (2, 1)
    template = rollback_template(sets, 1)
    assert template == {"metadata": {"labels": {"app": "db"}},
                        "spec": {"containers": [{"name": "db", "image": "db:1"}]}}
