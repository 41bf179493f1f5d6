"""The chart installed as a user would, with its default values: two operator pods that really
run (real containers, probes really probed, the ServiceAccount token mounted by the kubelet and
used through in-cluster config), one of them leading, scaling and healing a real workload.

The cluster provides what a user's cluster would: the chart's default image present on the node
(built here from the Dockerfile and tagged as the chart names it) and a Prometheus at the
chart's default URL (`prometheus-operated.monitoring.svc:9090`).

One value differs from the defaults: `watch.namespaces` names this module's own namespaces. The
default (every namespace) would have the installed operator act on the services of the modules
that run beside this one, with the chart's default Prometheus allowlist: it once made another
module's service report PrometheusNotAllowed.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from real_pods import apply, http_deployment, scraped, wait_ready

from conftest import FAILED, Cluster, dump_namespace, module_tag
from support import wait_until

CHART = Path(__file__).resolve().parent.parent / "charts" / "adaptive-operator"
RELEASE, SYSTEM = "adaptive-operator", "adaptive-system"
CRDS = ("adaptiveservices.adaptive.dev", "shardsets.adaptive.dev")
SHARDS = 4  # peering.leaseShards in the last test


def helm(cluster: Cluster, *args: str) -> str:
    result = subprocess.run(["helm", "--kubeconfig", cluster.kubeconfig, *args],
                            capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result.stdout


# The tests that need a namespace, each given its own: made before the install, which names them.
TESTS = {"test_the_installed_operator_scales_a_real_workload": "scales",
         "test_the_installed_operator_heals_a_real_workload": "heals",
         "test_with_lease_shards_both_pods_act_each_renewing_its_share": "shards"}


@pytest.fixture(scope="module")
def watched(crds: Cluster) -> Iterator[dict[str, str]]:
    """Each test's namespace, by test name: the only namespaces the installed operator watches."""
    suffix = uuid.uuid4().hex[:5]
    names = {test: f"e2e-{module_tag(__name__)}-{word}-{suffix}" for test, word in TESTS.items()}
    for ns in names.values():
        crds.kubectl("create", "namespace", ns)
    yield names
    for ns in names.values():
        crds.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def namespace(installed: Cluster, watched: dict[str, str],
              request: pytest.FixtureRequest) -> Iterator[str]:
    """The test's namespace (this module's own `namespace`: one the installed chart watches)."""
    ns = watched[request.node.name]
    yield ns
    if request.node.stash.get(FAILED, False):
        dump_namespace(installed, ns)


@pytest.fixture(scope="module")
def installed(crds: Cluster, runs_containers: Cluster, watched: dict[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = crds
    # The session applied the CRDs with kubectl; these marks let Helm adopt them as a user's
    # install would own them (the chart keeps CRDs on uninstall).
    for crd in CRDS:
        cluster.kubectl("annotate", "--overwrite", f"crd/{crd}",
                        f"meta.helm.sh/release-name={RELEASE}",
                        f"meta.helm.sh/release-namespace={SYSTEM}")
        cluster.kubectl("label", "--overwrite", f"crd/{crd}", "app.kubernetes.io/managed-by=Helm")
    # Default values, but for where the pods go: the local cluster's real node is tainted so
    # that the suite's fake pods stay on KWOK (`Cluster.placement`; nothing on kind).
    placement = tmp_path_factory.mktemp("chart") / "placement.json"
    placement.write_text(json.dumps(cluster.placement))
    helm(cluster, "install", RELEASE, str(CHART), "--namespace", SYSTEM, "--create-namespace",
         "--values", str(placement), "--set", f"watch.namespaces={{{','.join(watched.values())}}}",
         "--wait", "--timeout", "300s")
    yield cluster
    helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM, "--wait")
    cluster.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)


def operator_pods(cluster: Cluster) -> list[dict[str, Any]]:
    pods = cluster.json("get", "pods", "-n", SYSTEM, "-l",
                        f"app.kubernetes.io/instance={RELEASE}")["items"]
    assert isinstance(pods, list)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def leader(cluster: Cluster) -> str | None:
    leases = cluster.json("get", "leases", "-n", SYSTEM)["items"]
    assert isinstance(leases, list)
    holders = [lease["spec"].get("holderIdentity") for lease in leases
               if lease["metadata"]["name"].startswith("adaptive-operator")]
    return next((str(h) for h in holders if h), None)


def test_the_chart_watches_only_the_namespaces_it_names(installed: Cluster,
                                                       watched: dict[str, str]) -> None:
    (pod, *_) = operator_pods(installed)
    args = pod["spec"]["containers"][0]["args"]
    assert "--all-namespaces" not in args
    assert sorted(a for a in args if a.startswith("--namespace=")) == sorted(
        f"--namespace={ns}" for ns in watched.values())


def test_default_values_run_two_ready_operator_pods_one_leading(installed: Cluster) -> None:
    pods = operator_pods(installed)
    assert len(pods) == 2
    for pod in pods:
        (status,) = pod["status"]["containerStatuses"]
        # Ready is the kubelet's verdict from the readiness probe it ran against the pod.
        assert status["ready"] and status["started"] and status["restartCount"] == 0, status
        assert status["imageID"], "a real container runtime reports the image it ran"
        assert pod["spec"]["containers"][0]["readinessProbe"]
        volumes = {v["name"] for v in pod["spec"]["volumes"]}
        assert any(v.startswith("kube-api-access-") for v in volumes), volumes
    holder = wait_until(lambda: leader(installed), 60, "a replica to hold the Lease")
    # The holder is one of the pods: it reached the API server through in-cluster config.
    assert any(holder.startswith(p["metadata"]["name"]) for p in pods), holder


def service(namespace: str, *, healing: bool) -> str:
    load = f'sum(rate(http_requests_total{{namespace="{namespace}",app="loadgen"}}[10s]))'
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 4, "syncPeriodSeconds": 2,
        "metrics": [{"name": "load", "query": load, "targetPerReplica": 2}],
    }
    if healing:
        spec.update(mode="Paused", healing={"enabled": True, "cooldownSeconds": 10,
                                             "verifySeconds": 8,
                                             "metrics": {"load": load}})
    return json.dumps({"apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
                       "metadata": {"name": "web"}, "spec": spec})


def test_the_installed_operator_scales_a_real_workload(installed: Cluster, namespace: str) -> None:
    cluster = installed
    apply(cluster, namespace, http_deployment(cluster, "loadgen", self_load=6),
          http_deployment(cluster, "web"))
    scraped(cluster, namespace, "loadgen")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service(namespace, healing=False))
    wait_ready(cluster, namespace, "web", 3, timeout=180)
    status = cluster.json("get", "adaptiveservice", "web", "-n", namespace)["status"]
    assert status["desiredReplicas"] == 3


def test_the_installed_operator_heals_a_real_workload(installed: Cluster, namespace: str) -> None:
    cluster = installed
    apply(cluster, namespace, http_deployment(cluster, "loadgen", self_load=2),
          http_deployment(cluster, "web", startup_seconds=100_000))
    scraped(cluster, namespace, "loadgen")
    first = {p["metadata"]["name"] for p in web_pods(cluster, namespace)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service(namespace, healing=True))

    def evicted() -> bool:
        return not first & {p["metadata"]["name"] for p in web_pods(cluster, namespace)}

    wait_until(evicted, 180, "the never-ready pod to be evicted by the installed operator",
               interval=2.0)
    reasons = {e["reason"] for e in cluster.json("get", "events", "-n", namespace)["items"]}
    assert "UnhealthyPods" in reasons


def web_pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    pods = cluster.json("get", "pods", "-n", namespace, "-l", "app=web")["items"]
    assert isinstance(pods, list)
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def shard_leases(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """The release's shard Leases by name: their holder and renewTime."""
    leases = cluster.json("get", "leases", "-n", SYSTEM)["items"]
    assert isinstance(leases, list)
    return {lease["metadata"]["name"]: lease["spec"] for lease in leases
            if lease["metadata"]["name"].startswith(f"{RELEASE}-shard-")}


def split_in_two(cluster: Cluster) -> dict[str, str] | None:
    holders = {name: str(spec.get("holderIdentity") or "")
               for name, spec in shard_leases(cluster).items()}
    counts = Counter(holders.values())
    if len(holders) == SHARDS and "" not in counts and sorted(counts.values()) == [2, 2]:
        return holders
    return None


def test_with_lease_shards_both_pods_act_each_renewing_its_share(
        installed: Cluster, namespace: str) -> None:
    """The release upgraded to `peering.leaseShards=4` (last in the module: it changes the
    release). Both real pods hold two shard Leases each, renewed from the child process each
    runs inside its container (read-only root filesystem, no capabilities), and a workload is
    scaled by whichever pod holds its shard."""
    cluster = installed
    helm(cluster, "upgrade", RELEASE, str(CHART), "--namespace", SYSTEM, "--reuse-values",
         "--set", f"peering.leaseShards={SHARDS}", "--wait", "--timeout", "300s")
    holders = wait_until(lambda: split_in_two(cluster), 180,
                         "the two pods to hold two shard Leases each")
    pods = {p["metadata"]["name"] for p in operator_pods(cluster)}
    assert {next(pod for pod in pods if holder.startswith(pod))
            for holder in holders.values()} == pods
    renewed = {name: spec["renewTime"] for name, spec in shard_leases(cluster).items()}

    def renewed_again() -> bool:
        now = shard_leases(cluster)
        return all(now[name]["renewTime"] != at for name, at in renewed.items())

    wait_until(renewed_again, 30, "every shard Lease renewed again", interval=1.0)
    assert split_in_two(cluster) == holders, "a shard moved between two healthy pods"
    test_the_installed_operator_scales_a_real_workload(cluster, namespace)
