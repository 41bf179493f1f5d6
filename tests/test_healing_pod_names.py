"""{{pods}} is filled for every kind whose pods are found: a Deployment's and a StatefulSet's
own pods, any other kind's through its /scale selector; a terminating pod is named but not
judged (it is not yet replaced)."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.handlers import healing_observe

from fakes import Cluster


def spec(api_version: str, kind: str) -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": "web"},
        "maxReplicas": 5, "metrics": [{"name": "load", "query": "sum(x)",
                                       "targetPerReplica": 10}]})


def pod(name: str, uid: str, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


PODS = [pod("web-0", "u0"), pod("web-1", "u1", terminating=True)]


def cluster() -> Cluster:
    """A target of 2 replicas whose /scale selector is app=web, with PODS."""
    return Cluster(replicas=2, selector="app=web", pods=PODS)


@pytest.mark.parametrize(("api_version", "kind"), [
    ("apps/v1", "StatefulSet"), ("v1", "ReplicationController"),
    ("argoproj.io/v1alpha1", "Rollout"), ("example.com/v1", "Worker")])
async def test_pods_are_named_for_every_kind(api_version: str, kind: str) -> None:
    target = spec(api_version, kind)
    assert await healing_observe.pod_names("ns", target, cluster()) == ("web-0", "web-1")
    replicas, _, pods, names, unread = await healing_observe.observe_workload(
        "ns", target, 0.0, cluster())
    assert (replicas, names, unread) == (2, ("web-0", "web-1"), None)
    assert [p.uid for p in pods] == ["u0"]  # the terminating pod is not judged


async def test_unreadable_pods_leave_the_placeholder_unfilled() -> None:
    missing = Cluster(missing=True)
    assert await healing_observe.pod_names("ns", spec("apps/v1", "StatefulSet"), missing) is None
