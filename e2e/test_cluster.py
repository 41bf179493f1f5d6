"""The test cluster behaves like Kubernetes: nodes, Deployments, rollouts, Jobs, Prometheus."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from adaptive_operator.demo.exporter import Exporter

from conftest import (
    REAL_NODE_LABEL,
    REAL_NODE_SELECTOR,
    REAL_NODE_TOLERATION,
    Cluster,
    kwok_pod,
    parse_exports,
)
from support import deployment_of, deployment_yaml, prom_query, wait_until

HERE = Path(__file__).resolve().parent

def job(cluster: Cluster) -> str:
    """A Job of one stand-in (`Cluster.stand_in`), which succeeds at once."""
    pod = {**cluster.stand_in("once", "busybox", exits=True), "restartPolicy": "Never"}
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
                       "spec": {"template": {"spec": pod}}})


def ready_replicas(cluster: Cluster, ns: str, name: str) -> int:
    status = cluster.json("get", "deployment", name, "-n", ns).get("status", {})
    assert isinstance(status, dict)
    return int(status.get("readyReplicas", 0))


def rollout_done(cluster: Cluster, ns: str) -> bool:
    dep = cluster.json("get", "deployment", "web", "-n", ns)
    status, meta = dep["status"], dep["metadata"]
    assert isinstance(status, dict) and isinstance(meta, dict)
    return (status.get("observedGeneration") == meta["generation"]
            and status.get("updatedReplicas") == 3 and status.get("readyReplicas") == 3
            and status.get("replicas") == 3)


def test_fake_nodes_are_listed_and_ready(cluster: Cluster) -> None:
    nodes = cluster.json("get", "nodes")["items"]
    assert isinstance(nodes, list) and len(nodes) >= 1
    for node in nodes:
        conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert conditions.get("Ready") == "True", node["metadata"]["name"]


def test_deployment_becomes_ready_rolls_out_and_undoes(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=deployment_yaml(cluster, "web", 3))
    wait_until(lambda: ready_replicas(cluster, namespace, "web") == 3, 60, "3 ready pods")

    # A new template (an env var: on kind stand-ins run the one workload image there is).
    cluster.kubectl("set", "env", "deployment/web", "VERSION=2", "-n", namespace)
    wait_until(lambda: rollout_done(cluster, namespace), 60, "the new template to roll out")
    cluster.kubectl("rollout", "undo", "deployment/web", "-n", namespace)
    wait_until(lambda: rollout_done(cluster, namespace), 60, "the undo to roll out")

    dep = cluster.json("get", "deployment", "web", "-n", namespace)
    assert "env" not in dep["spec"]["template"]["spec"]["containers"][0]
    revisions = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                 for rs in cluster.json("get", "rs", "-n", namespace)["items"]}
    assert revisions == {"2", "3"}  # the undo made revision 3 out of revision 1's template


def test_job_completes(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=job(cluster))

    def succeeded() -> bool:
        status = cluster.json("get", "job", "once", "-n", namespace).get("status", {})
        return isinstance(status, dict) and status.get("succeeded") == 1

    wait_until(succeeded, 60, "the Job to complete")


def test_prometheus_scrapes_an_exporter(local_cluster: Cluster) -> None:
    assert local_cluster.prometheus_url and local_cluster.targets_dir
    with Exporter("e2e-cluster-check", local_cluster.targets_dir) as exporter:
        exporter.set("e2e_answer", 42.0)
        result = wait_until(
            lambda: prom_query(local_cluster.prometheus_url or "",
                               'e2e_answer{exporter="e2e-cluster-check"}'),
            60, "Prometheus to scrape the exporter")
    assert float(result[0]["value"][1]) == 42.0  # type: ignore[index]


def test_helm_and_kubectl_print_the_pinned_versions(local_cluster: Cluster) -> None:
    kubectl = local_cluster.kubectl("version")
    assert "Client Version: v1.36.3" in kubectl and "Server Version: v1.36.3" in kubectl
    helm = subprocess.run(["helm", "version", "--short"], capture_output=True, text=True,
                          check=True).stdout
    assert helm.startswith("v3.22.0")


def our_processes(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


@pytest.mark.skipif(bool(os.environ.get("KUBECONFIG_EXTERNAL")), reason="local cluster only")
def test_up_is_idempotent_and_down_leaves_no_process(local_cluster: Cluster,
                                                      tmp_path: Path) -> None:
    # A second, throw-away cluster: the session's cluster stays up for the other tests. KWOK
    # nodes only: one machine runs one real node.
    env = dict(os.environ, ADAPTIVE_CLUSTER_STATE=str(tmp_path / "state"),
               ADAPTIVE_CLUSTER_NAME="lifecycle", ADAPTIVE_REAL_NODE="0")
    script = str(HERE / "cluster")
    check_up_twice_reuses_the_cluster(script, env, tmp_path)
    routes = blackholes()

    # Without the name `up` had, the commands act on the cluster the state holds.
    unnamed = {key: value for key, value in env.items() if key != "ADAPTIVE_CLUSTER_NAME"}
    check_down_removes_the_cluster(script, unnamed, tmp_path, routes)


def check_up_twice_reuses_the_cluster(script: str, env: dict[str, str], tmp_path: Path) -> None:
    first = parse_exports(subprocess.run([script, "up"], env=env, capture_output=True,
                                         text=True, check=True).stdout)
    again = subprocess.run([script, "up"], env=env, capture_output=True, text=True, check=True)
    assert "reusing the running cluster" in again.stderr
    assert parse_exports(again.stdout) == first
    status = subprocess.run([script, "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "kube-apiserver" in status.stdout
    assert our_processes(str(tmp_path))  # it did start processes of its own


def check_down_removes_the_cluster(script: str, unnamed: dict[str, str], tmp_path: Path,
                                   routes: list[str]) -> None:
    status = subprocess.run([script, "status"], env=unnamed, capture_output=True, text=True)
    assert status.returncode == 0 and "cluster lifecycle" in status.stdout
    assert "kube-apiserver" in status.stdout
    subprocess.run([script, "down"], env=unnamed, capture_output=True, text=True, check=True)
    assert our_processes(str(tmp_path)) == []
    assert not (tmp_path / "state").exists()
    assert len(blackholes()) < len(routes)  # its own route to nowhere went with it


def blackholes() -> list[str]:
    return run("ip", "route", "show", "type", "blackhole").splitlines()


def run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


# The real node: containerd, kubelet, kube-proxy and CoreDNS on this machine.
BASE_IMAGE = "localhost/adaptive-debian:bookworm"  # Debian's python3, built by e2e/images/build
POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
KWOK_POD_NETWORK = ipaddress.ip_network("10.0.0.0/16")
KWOK_NODE_NETWORK = ipaddress.ip_network("10.1.0.0/16")
SERVE = ["python3", "-m", "http.server", "8080"]


def real_pod(name: str, command: list[str], **container: object) -> dict[str, object]:
    """A pod for the real node: it tolerates the node's taint, selects it, uses a local image."""
    spec = {"name": name, "image": BASE_IMAGE, "imagePullPolicy": "Never", "command": command,
            **container}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"nodeSelector": REAL_NODE_SELECTOR, "tolerations": [REAL_NODE_TOLERATION],
                     "terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
                     "containers": [spec]}}


def web_pod(name: str = "web", **container: object) -> dict[str, object]:
    probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
    return real_pod(name, SERVE, readinessProbe=probe, **container)


def apply(cluster: Cluster, ns: str, *objects: dict[str, object]) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-",
                    stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def pod_ready(cluster: Cluster, ns: str, name: str) -> dict[str, object] | None:
    pod = cluster.json("get", "pod", name, "-n", ns)
    status = pod["status"]
    assert isinstance(status, dict)
    ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
    return pod if ready and ready[0]["status"] == "True" else None


def ready_real_pod(cluster: Cluster, ns: str, node: str, name: str = "web") -> str:
    """Wait for the pod to be Ready; its IP, checked to be on the real node's bridge (a fake
    KWOK IP is never connected to: it is not on this machine)."""
    pod = wait_until(lambda: pod_ready(cluster, ns, name), 120, f"pod {name} to be Ready")
    assert pod["spec"]["nodeName"] == node  # type: ignore[index]
    ip = str(pod["status"]["podIP"])  # type: ignore[index]
    assert ipaddress.ip_address(ip) in POD_NETWORK, ip
    return ip


def check_real_node(real: dict[str, Any]) -> None:
    """Ready, on containerd and the pinned kubelet, and tainted for our pods only."""
    conditions = {c["type"]: c["status"] for c in real["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert real["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert real["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    assert REAL_NODE_TOLERATION["key"] in {t["key"] for t in real["spec"].get("taints", [])}


@pytest.mark.cluster
def test_the_real_node_runs_containerd_beside_kwok_nodes(cluster: Cluster, real_node: str) -> None:
    nodes = {n["metadata"]["name"]: n for n in cluster.json("get", "nodes")["items"]}
    check_real_node(nodes.pop(real_node))
    kwok = [n for n in nodes.values()
            if n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake"]
    assert kwok, "the KWOK nodes are still there"


@pytest.mark.cluster
def test_a_real_pod_goes_ready_and_serves_the_host(cluster: Cluster, real_node: str,
                                                    namespace: str) -> None:
    apply(cluster, namespace, web_pod())
    ip = ready_real_pod(cluster, namespace, real_node)
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=10) as response:
        assert response.status == 200
    # The API server reaches the kubelet: exec and logs.
    assert cluster.kubectl("exec", "-n", namespace, "web", "--", "python3", "-c",
                           "print(6 * 7)").strip() == "42"
    assert "GET / HTTP/1.1" in cluster.kubectl("logs", "-n", namespace, "web")


# CoreDNS and kube-proxy take up a new Service within moments, not at once: the client polls
# until a deadline (as wait_until does), and prints only what it finally found.
CLIENT = """
import socket, sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        address = socket.gethostbyname("kubernetes.default.svc.cluster.local")
        url = f"http://web.{sys.argv[1]}.svc.cluster.local/"
        with urllib.request.urlopen(url, timeout=10) as r:
            status = r.status
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
print(address)
print(status)
"""


@pytest.mark.cluster
def test_a_pod_finds_another_by_its_service_name(cluster: Cluster, real_node: str,
                                                 namespace: str) -> None:
    service: dict[str, object] = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    apply(cluster, namespace, web_pod(), service)
    ready_real_pod(cluster, namespace, real_node)
    apply(cluster, namespace, real_pod("client", ["python3", "-c", CLIENT, namespace]))

    def finished() -> str | None:
        phase = cluster.json("get", "pod", "client", "-n", namespace)["status"]["phase"]
        return str(phase) if phase in ("Succeeded", "Failed") else None

    phase = wait_until(finished, 120, "the client pod to finish")
    lines = cluster.kubectl("logs", "-n", namespace, "client").split()
    assert phase == "Succeeded", lines
    assert lines == ["10.96.0.1", "200"]  # DNS, then kube-proxy's Service to the pod


@pytest.mark.cluster
def test_kwok_pods_get_fake_ips_that_this_machine_routes_nowhere(local_cluster: Cluster,
                                                                 namespace: str) -> None:
    local_cluster.kubectl("apply", "-n", namespace, "-f", "-",
                          stdin=deployment_of("fake", 1, kwok_pod()))

    def pod_ip() -> str | None:
        pods = local_cluster.json("get", "pods", "-n", namespace)["items"]
        assert isinstance(pods, list)
        return pods[0]["status"].get("podIP") if pods else None

    ip = ipaddress.ip_address(wait_until(pod_ip, 60, "the fake pod's IP"))
    assert ip in KWOK_POD_NETWORK
    node = local_cluster.json("get", "pods", "-n", namespace)["items"][0]["spec"]["nodeName"]
    addresses = local_cluster.json("get", "node", str(node))["status"]["addresses"]
    assert {ipaddress.ip_address(a["address"]) in KWOK_NODE_NETWORK
            for a in addresses if a["type"] == "InternalIP"} == {True}
    for network in (KWOK_POD_NETWORK, KWOK_NODE_NETWORK):
        assert any(line.startswith(f"blackhole {network}") for line in blackholes()), network


# Prometheus finds pods through Kubernetes service discovery (e2e/cluster_prometheus.py).
SCRAPE_ME = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}


def pod_targets(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    """The `kubernetes-pods` job's active and dropped targets."""
    query = urllib.parse.urlencode({"state": "any", "scrapePool": "kubernetes-pods"})
    with urllib.request.urlopen(f"{cluster.prometheus_url}/api/v1/targets?{query}",
                                timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return {"active": body["data"]["activeTargets"], "dropped": body["data"]["droppedTargets"]}


def in_namespace(targets: list[dict[str, Any]], ns: str, key: str) -> list[dict[str, Any]]:
    return [t for t in targets
            if t[key].get("__meta_kubernetes_namespace", t[key].get("namespace")) == ns]


@pytest.mark.cluster
def test_prometheus_drops_kwok_pods_and_scrapes_only_real_node_pods(local_cluster: Cluster,
                                                                    namespace: str) -> None:
    fake = json.loads(deployment_of("fake", 2, kwok_pod()))
    fake["spec"]["template"]["metadata"]["annotations"] = SCRAPE_ME
    apply(local_cluster, namespace, fake)

    def running_fake_pods() -> set[str] | None:
        pods = local_cluster.json("get", "pods", "-n", namespace)["items"]
        assert isinstance(pods, list)
        ips = {p["status"].get("podIP") for p in pods if p["status"].get("phase") == "Running"}
        return ips if len(ips) == 2 and all(ips) else None

    def dropped_fake_pods() -> list[dict[str, Any]] | None:
        dropped = in_namespace(pod_targets(local_cluster)["dropped"], namespace,
                               "discoveredLabels")
        return dropped if len(dropped) == 2 else None

    fake_ips = wait_until(running_fake_pods, 60, "two Running fake pods")
    # Discovered (so the job does watch pods), and dropped: KWOK's addresses are not here.
    dropped = wait_until(dropped_fake_pods, 60, "Prometheus to discover the fake pods")
    assert {t["discoveredLabels"]["__meta_kubernetes_pod_ip"] for t in dropped} == fake_ips
    targets = pod_targets(local_cluster)
    assert in_namespace(targets["active"], namespace, "labels") == []
    real_nodes = {n["metadata"]["name"] for n in local_cluster.json(
        "get", "nodes", "-l", f"{REAL_NODE_LABEL}=true")["items"]}
    real_ips = {p["status"].get("podIP")
                for p in local_cluster.json("get", "pods", "-A")["items"]
                if p["spec"].get("nodeName") in real_nodes}
    for target in targets["active"]:  # none without a real node
        ip = urllib.parse.urlsplit(target["scrapeUrl"]).hostname
        assert ip in real_ips and ipaddress.ip_address(ip) in POD_NETWORK, target


@pytest.mark.cluster
def test_prometheus_scrapes_an_annotated_real_pod_with_its_labels(cluster: Cluster,
                                                                  real_node: str,
                                                                  namespace: str) -> None:
    web = web_pod()
    web["metadata"]["annotations"] = SCRAPE_ME  # type: ignore[index]
    apply(cluster, namespace, web)
    ip = ready_real_pod(cluster, namespace, real_node)
    found = wait_until(lambda: in_namespace(pod_targets(cluster)["active"], namespace, "labels"),
                       60, "Prometheus to find the real pod")
    assert [t["scrapeUrl"] for t in found] == [f"http://{ip}:8080/metrics"]
    labels = found[0]["labels"]
    assert (labels["namespace"], labels["pod"], labels["app"]) == (namespace, "web", "web")


def our_iptables_rules() -> list[str]:
    """The IPv4 and IPv6 rules of kube-proxy, CNI's portmap and ours."""
    rules = run("iptables-save").splitlines() + run("ip6tables-save").splitlines()
    return [line for line in rules if "KUBE-" in line or "CNI-DN-" in line or "adaptive" in line]


def leftovers(state: Path) -> dict[str, list[str]]:
    """What the real node leaves on the host while it runs, found independently of e2e/cluster:
    if `down` forgot any, the lists after it are not empty."""
    links = run("ip", "-o", "link", "show").splitlines()
    rules = our_iptables_rules()
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    return {
        "pod bridge and veths": [line for line in links if "adaptive0" in line],
        "mounts": [line for line in mounts if f" {state}/" in line],
        "iptables": rules,
        "processes": our_processes(str(state)),
        "pod cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")],
    }


@pytest.mark.cluster
@pytest.mark.last
def test_down_leaves_nothing_behind(local_cluster: Cluster, real_node: str,
                                    namespace: str) -> None:
    """Takes the session's cluster down: only when this session started it, and last."""
    if not local_cluster.started_here:
        pytest.skip("the cluster was running before this session: others may be using it")
    state = Path(local_cluster.kubeconfig).parent
    # A pod with a host port: CNI's portmap adds its own rules too.
    apply(local_cluster, namespace, web_pod(ports=[{"containerPort": 8080, "hostPort": 18080,
                                                    "hostIP": "10.244.0.1"}]))
    ready_real_pod(local_cluster, namespace, real_node)
    before, routes = leftovers(state), blackholes()
    assert all(before.values()), before

    env = dict(os.environ, ADAPTIVE_CLUSTER_STATE=str(state))
    subprocess.run([str(HERE / "cluster"), "down"], env=env, capture_output=True, check=True)
    assert leftovers(state) == {name: [] for name in before}
    assert len(blackholes()) < len(routes)
    assert not state.exists()
