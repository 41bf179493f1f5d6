"""A pod is evicted only when its ownerReferences chain leads to the scale target's UID, for
every kind: pod -> ReplicaSet -> Rollout, pod -> ReplicationController, pod -> custom resource
directly or through what it made. What cannot be established is not guessed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adaptive_operator import permissions
from adaptive_operator.adapters import discovery, workload
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.healing.ladder import Action, LedgerEntry, Outcome
from adaptive_operator.domain.healing.ownership import MAX_DEPTH, owned_by_target
from adaptive_operator.handlers import healing_apply
from adaptive_operator.handlers.ports import ClusterWorkloads

from fakes import KubeHttp, fenced_client


def obj(uid: str, *owners: tuple[str, str, str, str]) -> dict[str, Any]:
    refs = [{"apiVersion": v, "kind": k, "name": n, "uid": u} for v, k, n, u in owners]
    return {"metadata": {"uid": uid, "ownerReferences": refs}}


class Objects:
    """A namespace's objects by (apiVersion, kind, name); a missing one cannot be read."""

    def __init__(self, **found: dict[str, Any]) -> None:
        self.found = found
        self.reads: list[str] = []

    def __call__(self, api_version: str, kind: str, name: str) -> Mapping[str, Any] | None:
        self.reads.append(f"{kind}/{name}")
        return self.found.get(f"{kind}/{name}")


ROLLOUT = ("argoproj.io/v1alpha1", "Rollout", "web", "ro-web")
RS = ("apps/v1", "ReplicaSet", "web-1", "rs-1")


def test_a_rollouts_pod_is_owned_through_its_replica_set() -> None:
    objects = Objects(**{"ReplicaSet/web-1": obj("rs-1", ROLLOUT)})
    assert owned_by_target(obj("p", RS), "ro-web", objects)


def test_a_pod_owned_directly_by_an_rc_or_a_custom_resource() -> None:
    assert owned_by_target(obj("p", ("v1", "ReplicationController", "web", "rc-web")),
                           "rc-web", Objects())


def test_a_pod_the_selector_matches_but_the_target_does_not_own_is_not_its() -> None:
    other = ("argoproj.io/v1alpha1", "Rollout", "other", "ro-other")
    objects = Objects(**{"ReplicaSet/web-1": obj("rs-1", other)})
    assert not owned_by_target(obj("p", RS), "ro-web", objects)
    assert not owned_by_target(obj("bare"), "ro-web", objects)


def test_what_cannot_be_read_or_is_a_reused_name_is_not_guessed() -> None:
    assert not owned_by_target(obj("p", RS), "ro-web", Objects())  # owner unreadable
    reused = Objects(**{"ReplicaSet/web-1": obj("rs-NEW", ROLLOUT)})  # not the one referenced
    assert not owned_by_target(obj("p", RS), "ro-web", reused)
    assert not owned_by_target(obj("p", ROLLOUT), "", Objects())  # target uid unknown


def test_the_chain_is_bounded() -> None:
    chain: dict[str, dict[str, Any]] = {}
    for level in range(MAX_DEPTH + 2):
        chain[f"Layer/l{level}"] = obj(f"u{level}", ("x/v1", "Layer", f"l{level + 1}",
                                                     f"u{level + 1}"))
    objects = Objects(**chain)
    pod = obj("p", ("x/v1", "Layer", "l0", "u0"))
    assert owned_by_target(pod, f"u{MAX_DEPTH - 1}", objects)
    assert not owned_by_target(pod, f"u{MAX_DEPTH + 1}", objects)
    assert len(objects.reads) <= 2 * MAX_DEPTH


KINDS = {"Rollout": discovery.Resource("argoproj.io", "v1alpha1", "Rollout", "rollouts", True,
                                       True),
         "ReplicaSet": discovery.Resource("apps", "v1", "ReplicaSet", "replicasets", True, True),
         "Pod": discovery.Resource("", "v1", "Pod", "pods", True, False)}


def resolve(api_version: str, kind: str) -> discovery.Resource:
    return KINDS[kind]


def stored(**found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The API server's objects by path, from (kind/name) keys."""
    return {KINDS[key.split("/")[0]].path("ns", key.split("/")[1]): manifest
            for key, manifest in found.items()}


def evictions(server: KubeHttp) -> list[str]:
    """The pods evicted (pod/UID held to), in order."""
    return [f"{body['metadata']['name']}/{body['deleteOptions']['preconditions']['uid']}"
            for method, path, body in server.sent if path.endswith("/eviction")]


async def test_healing_evicts_only_the_pods_a_rollout_owns() -> None:
    objects = stored(**{"Rollout/web": obj("ro-web"), "ReplicaSet/web-1": obj("rs-1", ROLLOUT),
                        "Pod/web-1-a": obj("pa", RS), "Pod/impostor": obj("pb")})

    def reply(method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "POST" and path.endswith("/eviction"):
            return 201, {}
        return (200, objects[path]) if path in objects else (404, {"kind": "Status"})

    server = KubeHttp(reply)
    workloads = ClusterWorkloads(resolve=resolve, api=fenced_client(server, lambda: True))
    spec = AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                           "name": "web"},
        "maxReplicas": 5, "metrics": [{"name": "load", "query": "sum(x)",
                                       "targetPerReplica": 10}]})
    intent = LedgerEntry("evictpods-1", Action.EVICT_PODS, 1.0, Outcome.PENDING,
                         pods=("impostor", "web-1-a"), pod_uids=("pb", "pa"))
    done = await healing_apply._evict("ns", spec, intent, workloads)
    problem, blocked, not_owned = done.problem, done.blocked, done.not_owned
    assert evictions(server) == ["web-1-a/pa"] and not blocked  # with the UID decided on
    assert not_owned == ("impostor",)  # for the status condition
    assert problem is not None and "impostor: not shown to be owned by Rollout web" in problem


def test_the_chart_grants_every_read_the_ownership_check_makes() -> None:
    """The real reads of the check (by path, as the API server sees them) against what the
    chart grants with `rbac.scaleTargets: [{apiGroup: argoproj.io, resource: rollouts}]`: a
    read it does not grant is refused (403) as RBAC would, and the pod would never be evicted."""
    granted = {(p.api_group, p.resource, verb)
               for p in (*permissions.PERMISSIONS, *permissions.scale_target("argoproj.io",
                                                                             "rollouts"))
               for verb in p.verbs}
    objects = stored(**{"Rollout/web": obj("ro-web"), "ReplicaSet/web-1": obj("rs-1", ROLLOUT),
                        "Pod/web-1-a": obj("pa", RS)})
    refused: list[str] = []

    def reply(method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.split("/")  # /api/v1/namespaces/ns/pods/x, /apis/g/v/namespaces/ns/r/x
        group, plural = ("", parts[5]) if parts[1] == "api" else (parts[2], parts[6])
        if (group, plural, method.lower()) not in granted:
            refused.append(path)
            return 403, {"kind": "Status", "reason": "Forbidden"}
        return 200, objects[path]

    server = KubeHttp(reply)
    assert ("", "pods", "get") in granted  # the pod's own read
    owned = workload._owned_by_target(fenced_client(server, lambda: True), "ns",
                                      ("argoproj.io/v1alpha1", "Rollout", "web"), ("web-1-a",),
                                      resolve)
    assert refused == [] and owned == {"web-1-a"}
    assert [path for _, path, _ in server.sent] == [  # every read was made, none refused
        KINDS["Rollout"].path("ns", "web"), KINDS["Pod"].path("ns", "web-1-a"),
        KINDS["ReplicaSet"].path("ns", "web-1")]
