"""Healing touches only its own pods: the Deployment's whole selector (matchExpressions too)
finds them, and ownership (pod -> ReplicaSet -> Deployment, by UID) decides."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.adapters.workload import WorkloadError, owned_by, owned_pods, selector_text


def deployment(selector: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web", "uid": "d-web"}, "spec": {"selector": selector}}


def owned(name: str, owner: str, uid: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid, "ownerReferences": [{"uid": owner}]}}


def test_the_whole_selector_is_used() -> None:
    selector = {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]}
    assert selector_text(deployment(selector)) == "app=web,track notin (canary)"


def test_an_empty_selector_selects_nothing_rather_than_everything() -> None:
    with pytest.raises(WorkloadError, match="empty selector"):
        selector_text(deployment({}))


def test_only_owned_pods_the_deployments_own_replica_sets_count() -> None:
    sets = owned_by([owned("web-1", "d-web", "rs-1"), owned("other-1", "d-other", "rs-2")],
                    "d-web")
    pods = [owned("web-1-a", "rs-1"), owned("other-1-a", "rs-2"), owned("bare", "")]
    assert [p["metadata"]["name"] for p in owned_pods(pods, sets)] == ["web-1-a"]
