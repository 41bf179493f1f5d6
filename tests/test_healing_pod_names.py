"""{{pods}} is filled for every kind whose pods are found: a Deployment's and a StatefulSet's
own pods, any other kind's through its /scale selector; a terminating pod is named but not
judged (it is not yet replaced)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from adaptive_operator.adapters import kube, workload
from adaptive_operator.adapters.cached_reads import CachedReads
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.handlers import healing_observe


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


class Reads(CachedReads):
    """The target's /scale as `scale` gives it."""

    def __init__(self, scale: Callable[[], kube.Scale]) -> None:
        super().__init__()
        self.scale = scale

    async def read_scale(self, namespace: str, target: kube.TargetRef) -> kube.Scale:
        return self.scale()


def missing() -> kube.Scale:
    raise kube.TargetError("TargetNotFound", "no such target")


READS = Reads(lambda: kube.Scale(2, 2, "app=web"))


@pytest.fixture(autouse=True)
def cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    async def statefulset(namespace: str, name: str) -> tuple[list[Any], list[Any]]:
        return PODS, []

    async def by_selector(namespace: str, selector: str) -> list[Any]:
        assert selector == "app=web"
        return PODS

    monkeypatch.setattr(workload, "statefulset_pods_and_revisions", statefulset)
    monkeypatch.setattr(workload, "pods_of", by_selector)


@pytest.mark.parametrize(("api_version", "kind"), [
    ("apps/v1", "StatefulSet"), ("v1", "ReplicationController"),
    ("argoproj.io/v1alpha1", "Rollout"), ("example.com/v1", "Worker")])
async def test_pods_are_named_for_every_kind(api_version: str, kind: str) -> None:
    target = spec(api_version, kind)
    assert await healing_observe.pod_names("ns", target, READS) == ("web-0", "web-1")
    replicas, _, pods, names, unread = await healing_observe.observe_workload(
        "ns", target, 0.0, READS)
    assert (replicas, names, unread) == (2, ("web-0", "web-1"), None)
    assert [p.uid for p in pods] == ["u0"]  # the terminating pod is not judged


async def test_unreadable_pods_leave_the_placeholder_unfilled() -> None:
    assert await healing_observe.pod_names("ns", spec("apps/v1", "StatefulSet"),
                                           Reads(missing)) is None
