"""Healing touches only its own pods: the Deployment's whole selector (matchExpressions too)
finds them, and ownership (pod -> ReplicaSet -> Deployment, pod -> StatefulSet, by UID)
decides."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client  # the adapter's: its API classes are patched here
from kubernetes.client.exceptions import ApiException

from adaptive_operator.adapters import workload
from adaptive_operator.adapters.workload import WorkloadError, owned_by, owned_pods, selector_text

from fakes import KubeHttp, fenced_client

API = fenced_client(KubeHttp(), lambda: True)  # what the calls go through (faked where it matters)


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


class FakeApps:
    """The StatefulSet `web` (uid s-web) and one ControllerRevision of it."""

    def __init__(self, *_: Any) -> None:
        pass

    def read_namespaced_stateful_set(self, name: str, namespace: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "uid": "s-web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}, "matchExpressions": [
                    {"key": "track", "operator": "In", "values": ["stable"]}]}}}

    def list_namespaced_controller_revision(self, namespace: str,
                                            label_selector: str) -> dict[str, Any]:
        return {"items": [{"metadata": {"ownerReferences": [{"uid": "s-web"}]}, "revision": 1,
                           "data": {"spec": {"template": {"metadata": {}}}}}]}


def test_a_statefulsets_pods_are_those_it_owns_found_by_its_whole_selector(
        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def list_pods(api: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
        asked.append(selector)
        # The selector also matches a bare pod and another StatefulSet's pod.
        return [owned("web-0", "s-web"), owned("impostor-0", "s-other"), owned("bare", "")]

    monkeypatch.setattr(client, "AppsV1Api", FakeApps)
    monkeypatch.setattr(workload, "list_pods", list_pods)
    pods, revisions = workload._statefulset_pods_and_revisions(API, "ns", "web")
    assert asked == ["app=web,track in (stable)"]
    assert [p["metadata"]["name"] for p in pods] == ["web-0"]
    assert len(revisions) == 1


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet"])
async def test_a_pod_its_owner_does_not_own_is_not_evicted(
        monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    evicted: list[str] = []

    async def pods_and_sets(api: Any, namespace: str,
                            name: str) -> tuple[list[dict[str, Any]], list[Any]]:
        return [owned("web-0", "owner")], []

    def evict_one(api: Any, namespace: str, pod: str, uid: str = "") -> None:
        evicted.append(pod)

    monkeypatch.setattr(workload, "statefulset_pods_and_revisions", pods_and_sets)
    monkeypatch.setattr(workload, "pods_and_replica_sets", pods_and_sets)
    monkeypatch.setattr(workload, "_evict", evict_one)
    refused = await workload.evict(API, "ns", ("web-0", "impostor-0"), (kind, "web"))
    assert evicted == ["web-0"]
    assert [r.message for r in refused] == [f"impostor-0: not a pod of {kind} web; left alone"]
    assert [r.not_owned for r in refused] == ["impostor-0"]


class FakeCore:
    """Records the Eviction bodies sent, as JSON; answers with `status` (0: evicted)."""

    sent: list[dict[str, Any]] = []
    status = 0

    def __init__(self, *_: Any) -> None:
        pass

    def create_namespaced_pod_eviction(self, name: str, namespace: str, body: Any) -> None:
        FakeCore.sent.append(workload._plain(API, body))
        if FakeCore.status:
            raise ApiException(status=FakeCore.status, reason="Conflict")


async def test_an_eviction_holds_only_while_the_pod_is_the_one_decided_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    FakeCore.sent, FakeCore.status = [], 0

    async def pods_and_sets(api: Any, namespace: str,
                            name: str) -> tuple[list[dict[str, Any]], list[Any]]:
        return [owned("db-0", "s-web"), owned("db-1", "s-web")], []

    monkeypatch.setattr(workload, "statefulset_pods_and_revisions", pods_and_sets)
    monkeypatch.setattr(client, "CoreV1Api", FakeCore)
    refused = await workload.evict(API, "ns", ("db-0", "db-1"), ("StatefulSet", "db"),
                                   {"db-0": "uid-0", "db-1": ""})
    assert refused == []
    assert FakeCore.sent[0] == {
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "db-0", "namespace": "ns"},
        "deleteOptions": {"preconditions": {"uid": "uid-0"}}}
    # A UID not known (a ledger from before UIDs were recorded): no precondition to send.
    assert FakeCore.sent[1]["deleteOptions"] == {}
    # The API server refuses a precondition that no longer holds (409): reported, not retried.
    FakeCore.status = 409
    refused = await workload.evict(API, "ns", ("db-0",), ("StatefulSet", "db"),
                                   {"db-0": "uid-0"})
    assert [r.message for r in refused] == [
        "db-0: no longer the pod decided on (UID uid-0): re-created since; left alone"]
    assert not refused[0].by_budget
