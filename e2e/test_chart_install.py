"""The Helm chart installs into a real API server, and its ServiceAccount may do exactly what
operator/adaptive_operator/permissions.py says the code calls, and nothing around it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from adaptive_operator.permissions import PERMISSIONS
from metrics_source import Exporters
from operator_process import OperatorProcess

from conftest import Cluster
from support import helm_binary, wait_until

CHART = Path(__file__).resolve().parent.parent / "charts" / "adaptive-operator"
KWOK_TOLERATION = "tolerations[0].key=kwok.x-k8s.io/node,tolerations[0].operator=Exists"
OPERATOR_IMAGE = "localhost/adaptive-operator:dev"  # what the local cluster and kind's CI load
HELD = "e2e-held"  # a Lease that a holder who never comes keeps for an hour

# Near misses: things an operator like this might be tempted to do, that ours never needs.
DENIED = [
    # `get` of one referenced Secret is needed (Prometheus credentials); listing them is not.
    ("list", "secrets", ""),
    ("watch", "secrets", ""),
    ("delete", "deployments", "apps"),
    ("create", "deployments", "apps"),
    ("list", "nodes", ""),
    ("update", "customresourcedefinitions", "apiextensions.k8s.io"),
    ("delete", "adaptiveservices", "adaptive.dev"),
    ("create", "pods", ""),
    # Granted once, never used by the code: healing evicts pods, the routing ConfigMap is
    # replaced, kopf runs standalone (no peering).
    ("delete", "pods", ""),
    ("patch", "configmaps", ""),
    ("delete", "configmaps", ""),
    ("patch", "clusterkopfpeerings", "kopf.dev"),
]


def helm(cluster: Cluster, binary: str, *args: str) -> str:
    result = subprocess.run([binary, "--kubeconfig", cluster.kubeconfig, *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result.stdout


def chart_pods(cluster: Cluster, namespace: str) -> list[str]:
    """Helm arguments for the chart's operator pods, which here only have to be ready. Where
    stand-ins are KWOK's (`Cluster.stand_in`): fake pods. Elsewhere (kind): the operator image
    (never pulled), kept standby by a Lease held by no one that runs, so they act on nothing."""
    if not cluster.real_stand_ins:
        return ["--set", KWOK_TOLERATION]
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": HELD},
             "spec": {"holderIdentity": "e2e-nobody", "leaseDurationSeconds": 3600}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(lease))
    repository, tag = OPERATOR_IMAGE.rsplit(":", 1)
    placement = cluster.placement
    return ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never", "--set", f"peering.name={HELD}",
            "--set-json", f"nodeSelector={json.dumps(placement.get('nodeSelector', {}))}",
            "--set-json", f"tolerations={json.dumps(placement.get('tolerations', []))}"]


@pytest.fixture
def release(crds: Cluster, namespace: str) -> Iterator[tuple[str, str]]:
    cluster = crds
    name = f"ao-{namespace[-5:]}"  # cluster-scoped RBAC names must not clash between tests
    binary = helm_binary()
    # The session installed the CRDs already (Helm cannot adopt objects it did not create);
    # the chart's CRD template is checked against the API server on its own below.
    helm(cluster, binary, "install", name, str(CHART), "--namespace", namespace,
         *chart_pods(cluster, namespace), "--set", "crds.install=false", "--wait",
         "--timeout", "180s")
    yield name, namespace
    helm(cluster, binary, "uninstall", name, "--namespace", namespace, "--wait")


def allowed(cluster: Cluster, account: str, ns: str, verb: str, resource: str, group: str,
            home: str | None = None) -> bool:
    """Ask the authorizer itself: a SubjectAccessReview needs no discovery, so it also answers
    for resources whose CRD is not installed (kopf's peering). `home`: the account's namespace
    when it is not `ns`."""
    name, _, sub = resource.partition("/")
    home = home or ns
    review = {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": f"system:serviceaccount:{home}:{account}",
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{home}",
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
    assert deployment["status"]["readyReplicas"] == 2
    checks = [(verb, p.resource, p.api_group, True) for p in PERMISSIONS for verb in p.verbs]
    checks += [(verb, resource, group, False) for verb, resource, group in DENIED]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda c: allowed(cluster, account, ns, *c[:3]), checks))
    wrong = [c[:3] for c, answer in zip(checks, answers, strict=True) if answer != c[3]]
    assert not wrong, f"RBAC differs from permissions.py for (verb, resource, group): {wrong}"


def test_the_charts_crds_are_accepted_by_the_api_server(cluster: Cluster) -> None:
    rendered = subprocess.run(
        [helm_binary(), "template", "x", str(CHART), "--show-only", "templates/crds.yaml"],
        capture_output=True, text=True, check=True).stdout
    out = cluster.kubectl("apply", "--dry-run=server", "--server-side", "--force-conflicts",
                          "-f", "-", stdin=rendered)
    assert "adaptiveservices.adaptive.dev" in out


def service_account_kubeconfig(cluster: Cluster, ns: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the chart's ServiceAccount (TokenRequest API)."""
    token = cluster.kubectl("create", "token", account, "-n", ns, "--duration=1h").strip()
    config = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json"))
    server = config["clusters"][0]["cluster"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": server}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": account,
                                                "namespace": ns}}],
    }))
    return path


SERVICE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: POD
---
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {name: web}
spec:
  scaleTargetRef: {name: web}
  maxReplicas: 10
  syncPeriodSeconds: 2
  metrics: [{name: load, query: 'sum(e2e_load{exporter="NS"})', targetPerReplica: 10}]
"""


def with_pod(cluster: Cluster, text: str) -> str:
    """The service's Deployment with a stand-in pod (`Cluster.stand_in`), written as JSON."""
    return text.replace("POD", json.dumps(cluster.stand_in("web", "registry.example/web:1")))


def scaled_events(cluster: Cluster, ns: str) -> int:
    items = cluster.json("get", "events", "-n", ns)["items"]
    assert isinstance(items, list)
    return sum(int(e.get("count") or 1) for e in items if e.get("reason") == "Scaled")


def test_operator_with_the_charts_account_scales_and_survives_losing_its_leader(
        cluster: Cluster, release: tuple[str, str], tmp_path: Path,
        exporters: Exporters) -> None:
    name, ns = release
    account = f"{name}-adaptive-operator"
    kubeconfig = service_account_kubeconfig(cluster, ns, account, tmp_path / "sa.yaml")
    env = {"KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": ns}
    watch = ("--namespace", ns)
    first = OperatorProcess(f"ha-a-{ns[-5:]}", env=env, args=watch, lease_name="ha").start()
    second = OperatorProcess(f"ha-b-{ns[-5:]}", env=env, args=watch, lease_name="ha")
    second.start(wait_for="standby")
    try:
        with exporters(ns) as load:
            load.set("e2e_load", 25.0)
            cluster.kubectl("apply", "-n", ns, "-f", "-",
                            stdin=with_pod(cluster, SERVICE.replace("NS", ns)))
            wait_until(lambda: replicas(cluster, ns) == 3, 60, "the leader to scale to 3")
            assert scaled_events(cluster, ns) == 1

            first.kill()  # the leader dies without releasing the Lease
            wait_until(lambda: second.role() == "leader", 30, "the standby to take over")
            assert scaled_events(cluster, ns) == 1  # taking over repeats nothing
            load.set("e2e_load", 55.0)
            wait_until(lambda: replicas(cluster, ns) == 6, 60, "the new leader to scale")
            assert scaled_events(cluster, ns) == 2
    finally:
        first.stop()
        second.stop()


def replicas(cluster: Cluster, ns: str) -> int:
    spec = cluster.json("get", "deployment", "web", "-n", ns)["spec"]
    assert isinstance(spec, dict)
    return int(spec["replicas"])


# The same service, on a load that needs no exporter (25 / 10 per replica: 3 replicas).
WATCHED_SERVICE = SERVICE.replace('sum(e2e_load{exporter="NS"})', "sum(vector(25))")


def namespace_args(cluster: Cluster, account: str, namespace: str,
                   watched: str) -> tuple[str, ...]:
    """The --namespace arguments the chart gives the operator: the watched namespace's only."""
    deployment: Any = cluster.json("get", "deployment", account, "-n", namespace)
    args = tuple(a for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
                 if a.startswith("--namespace"))
    assert args == (f"--namespace={watched}",)
    return args


def check_scales_only_where_watched(cluster: Cluster, watched: str, other: str) -> None:
    for ns in (other, watched):  # the other first: it has had longer to be reconciled
        cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=with_pod(cluster, WATCHED_SERVICE))
    wait_until(lambda: replicas(cluster, watched) == 3, 60, "the watched namespace scaled")
    status: Any = cluster.json("get", "adaptiveservice", "web", "-n", watched)["status"]
    assert status["desiredReplicas"] == 3
    assert replicas(cluster, other) == 1
    assert not cluster.json("get", "adaptiveservice", "web", "-n", other).get("status")
    cluster.kubectl("delete", "adaptiveservice", "web", "-n", watched, "--timeout=30s")


def test_a_namespaced_install_reconciles_in_its_watched_namespace_and_not_in_another(
        crds: Cluster, namespace: str, tmp_path: Path) -> None:
    """Installed by Helm with Roles per watched namespace (rbac.namespaced): the operator, as the
    chart's ServiceAccount and with the chart's own --namespace arguments, scales in the watched
    namespace, and neither may nor does touch another."""
    cluster, binary = crds, helm_binary()
    watched, other = f"{namespace}-w", f"{namespace}-o"
    for ns in (watched, other):
        cluster.kubectl("create", "namespace", ns)
    name = f"ns-{namespace[-5:]}"
    helm(cluster, binary, "install", name, str(CHART), "--namespace", namespace,
         *chart_pods(cluster, namespace), "--set", "crds.install=false",
         "--set", "rbac.namespaced=true",
         "--set", f"watch.namespaces={{{watched}}}", "--wait", "--timeout", "180s")
    account = f"{name}-adaptive-operator"
    args = namespace_args(cluster, account, namespace, watched)
    # Its rights: the Role in the watched namespace, nothing in the other.
    assert allowed(cluster, account, watched, "patch", "deployments/scale", "apps", namespace)
    assert not allowed(cluster, account, other, "patch", "deployments/scale", "apps", namespace)
    kubeconfig = service_account_kubeconfig(cluster, namespace, account, tmp_path / "sa.yaml")
    process = OperatorProcess(f"namespaced-{namespace[-5:]}", args=args, lease_name=name,
                              env={"KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": namespace})
    try:
        process.start()
        check_scales_only_where_watched(cluster, watched, other)
    finally:
        process.stop()
        helm(cluster, binary, "uninstall", name, "--namespace", namespace, "--wait")
        for ns in (watched, other):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
