"""The chart's namespaced install, aggregated user roles, NetworkPolicy, digest-pinned image and
ShardSet admission policy, rendered with `helm template` (skipped without helm, as test_chart)."""

from __future__ import annotations

from pathlib import Path

from adaptive_operator.permissions import CLUSTER_SCOPED, PERMISSIONS
from test_chart import (
    NAMESPACE,
    Manifest,
    by_kind,
    container,
    one,
    operator_role,
    rbac_gaps,
    render,
)

CLUSTER = tuple(p for p in PERMISSIONS if p.resource in CLUSTER_SCOPED)
NAMESPACED = tuple(p for p in PERMISSIONS if p.resource not in CLUSTER_SCOPED)


def test_a_namespaced_install_grants_roles_per_namespace_and_only_reads_cluster_wide(
        helm: Path) -> None:
    manifests = render(helm, {"watch": {"namespaces": ["team-a", "team-b"]},
                              "rbac": {"namespaced": True}})
    cluster_role = operator_role(manifests)
    assert rbac_gaps(cluster_role["rules"], CLUSTER) == (set(), set())
    assert {verb for rule in cluster_role["rules"] for verb in rule["verbs"]} <= {
        "get", "list", "watch"}
    roles = by_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(
        ["team-a", "team-b", NAMESPACE])
    for role in roles:
        assert rbac_gaps(role["rules"], NAMESPACED) == (set(), set())
    bindings = by_kind(manifests, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b", NAMESPACE}
    assert all(b["subjects"][0]["namespace"] == NAMESPACE for b in bindings)


def test_namespaced_without_watched_namespaces_stays_cluster_wide(helm: Path) -> None:
    manifests = render(helm, {"rbac": {"namespaced": True}})
    assert by_kind(manifests, "Role") == []
    assert rbac_gaps(operator_role(manifests)["rules"], PERMISSIONS) == (set(), set())


def _aggregated(manifests: list[Manifest], suffix: str) -> Manifest:
    (role,) = [m for m in by_kind(manifests, "ClusterRole")
               if m["metadata"]["name"].endswith(suffix)]
    return role


def test_users_view_and_edit_roles_include_the_two_kinds(helm: Path) -> None:
    manifests = render(helm)
    view, edit = _aggregated(manifests, "-view"), _aggregated(manifests, "-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in edit["metadata"]["labels"]
    assert {v for r in view["rules"] for v in r["verbs"]} == {"get", "list", "watch"}
    assert {"create", "delete"} <= {v for r in edit["rules"] for v in r["verbs"]}
    assert {"shardsets", "adaptiveservices"} <= {x for r in edit["rules"] for x in r["resources"]}
    off = render(helm, {"rbac": {"aggregateToUserRoles": False}})
    assert by_kind(off, "ClusterRole") == [operator_role(off)]


def test_the_image_can_be_pinned_by_digest(helm: Path) -> None:
    digest = "sha256:" + "ab" * 32
    pinned = render(helm, {"image": {"digest": digest, "tag": "ignored"}})
    assert container(pinned)["image"] == f"ghcr.io/adaptive-operator/adaptive-operator@{digest}"


def test_a_network_policy_admits_only_the_metrics_and_health_ports(helm: Path) -> None:
    assert by_kind(render(helm), "NetworkPolicy") == []
    peers = [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    policy = one(render(helm, {"networkPolicy": {"enabled": True, "metricsFrom": peers}}),
                 "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert {p["port"] for p in rule["ports"]} == {8080, 8081}
    assert rule["from"] == peers


def test_the_shard_set_admission_policy_is_optional(helm: Path) -> None:
    assert by_kind(render(helm), "ValidatingAdmissionPolicy") == []
    manifests = render(helm, {"admissionPolicy": {"enabled": True}})
    policy = one(manifests, "ValidatingAdmissionPolicy")
    binding = one(manifests, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    text = " ".join(v["expression"] for v in policy["spec"]["validations"])
    for field in ("serviceAccountName", "privileged", "hostPath", "hostNetwork"):
        assert field in text
