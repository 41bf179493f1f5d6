"""The Helm chart installs into a real API server, and its ServiceAccount may do exactly what
operator/adaptive_operator/permissions.py says the code calls, and nothing around it."""

from __future__ import annotations

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


def helm(cluster: Cluster, *args: str) -> str:
    binary = shutil.which("helm")
    assert binary, "helm is not on PATH (e2e/cluster up puts it there)"
    result = subprocess.run([binary, "--kubeconfig", cluster.kubeconfig, *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture
def release(cluster: Cluster, namespace: str) -> Iterator[tuple[str, str]]:
    name = f"ao-{namespace[-5:]}"  # cluster-scoped RBAC names must not clash between tests
    helm(cluster, "install", name, str(CHART), "--namespace", namespace,
         "--set", KWOK_TOLERATION, "--wait", "--timeout", "180s")
    yield name, namespace
    helm(cluster, "uninstall", name, "--namespace", namespace, "--wait")


def can_i(cluster: Cluster, account: str, ns: str, verb: str, resource: str, group: str) -> bool:
    name, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, f"{name}.{group}" if group else name, "-n", ns,
            f"--as=system:serviceaccount:{ns}:{account}"]
    if sub:
        args.append(f"--subresource={sub}")
    return cluster.kubectl(*args, check=False).strip() == "yes"


@pytest.mark.cluster
def test_chart_installs_and_its_account_may_do_exactly_what_the_code_calls(
        cluster: Cluster, release: tuple[str, str]) -> None:
    name, ns = release
    account = f"{name}-adaptive-operator"
    deployment = cluster.json("get", "deployment", account, "-n", ns)
    assert deployment["status"]["readyReplicas"] == 2  # type: ignore[index]
    allowed = [(p.resource, p.api_group, verb) for p in PERMISSIONS for verb in p.verbs]
    checks = [(verb, resource, group, True) for resource, group, verb in allowed]
    checks += [(verb, resource, group, False) for verb, resource, group in DENIED]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda c: can_i(cluster, account, ns, *c[:3]), checks))
    wrong = [c[:3] for c, answer in zip(checks, answers, strict=True) if answer != c[3]]
    assert not wrong, f"RBAC differs from permissions.py for (verb, resource, group): {wrong}"
