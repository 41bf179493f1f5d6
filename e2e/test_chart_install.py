"""The Helm chart installs into a real API server, and its ServiceAccount may do exactly what
operator/adaptive_operator/permissions.py says the code calls, and nothing around it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from adaptive_operator.permissions import PERMISSIONS

from conftest import Cluster

CHART = Path(__file__).resolve().parent.parent / "charts" / "adaptive-operator"
KWOK_TOLERATION = "tolerations[0].key=kwok.x-k8s.io/node,tolerations[0].operator=Exists"

# Near misses: things an operator like this might be tempted to do, that ours never needs.
DENIED = [
    ("get", "secrets", ""),
    ("delete", "deployments", "apps"),
    ("create", "deployments", "apps"),
    ("list", "nodes", ""),
    ("update", "customresourcedefinitions", "apiextensions.k8s.io"),
    ("delete", "adaptiveservices", "adaptive.dev"),
    ("create", "pods", ""),
]


def helm_binary() -> str:
    found = shutil.which("helm")
    assert found, "helm is not on PATH (e2e/cluster up puts it there)"
    # The built file, not the bin folder's link, which `e2e/cluster up` may be re-creating.
    return str(Path(found).resolve())


def helm(cluster: Cluster, binary: str, *args: str) -> str:
    result = subprocess.run([binary, "--kubeconfig", cluster.kubeconfig, *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture
def release(cluster: Cluster, namespace: str) -> Iterator[tuple[str, str]]:
    name = f"ao-{namespace[-5:]}"  # cluster-scoped RBAC names must not clash between tests
    binary = helm_binary()
    helm(cluster, binary, "install", name, str(CHART), "--namespace", namespace,
         "--set", KWOK_TOLERATION, "--wait", "--timeout", "180s")
    yield name, namespace
    helm(cluster, binary, "uninstall", name, "--namespace", namespace, "--wait")


def allowed(cluster: Cluster, account: str, ns: str, verb: str, resource: str, group: str) -> bool:
    """Ask the authorizer itself: a SubjectAccessReview needs no discovery, so it also answers
    for resources whose CRD is not installed (kopf's peering)."""
    name, _, sub = resource.partition("/")
    review = {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": f"system:serviceaccount:{ns}:{account}",
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                            "system:authenticated"],
                 "resourceAttributes": {"namespace": ns, "verb": verb, "group": group,
                                        "resource": name, "subresource": sub}},
    }
    answer = cluster.kubectl("create", "-f", "-", "-o", "jsonpath={.status.allowed}",
                             stdin=json.dumps(review))
    return answer.strip() == "true"


@pytest.mark.cluster
def test_chart_installs_and_its_account_may_do_exactly_what_the_code_calls(
        cluster: Cluster, release: tuple[str, str]) -> None:
    name, ns = release
    account = f"{name}-adaptive-operator"
    deployment = cluster.json("get", "deployment", account, "-n", ns)
    assert deployment["status"]["readyReplicas"] == 2  # type: ignore[index]
    checks = [(verb, p.resource, p.api_group, True) for p in PERMISSIONS for verb in p.verbs]
    checks += [(verb, resource, group, False) for verb, resource, group in DENIED]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda c: allowed(cluster, account, ns, *c[:3]), checks))
    wrong = [c[:3] for c, answer in zip(checks, answers, strict=True) if answer != c[3]]
    assert not wrong, f"RBAC differs from permissions.py for (verb, resource, group): {wrong}"
