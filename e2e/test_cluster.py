"""The test cluster behaves like Kubernetes: nodes, Deployments, rollouts, Jobs, Prometheus."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from adaptive_operator.demo.exporter import Exporter

from conftest import Cluster, parse_exports
from support import deployment_yaml, prom_query, wait_until

HERE = Path(__file__).resolve().parent

JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers: [{name: once, image: busybox}]
"""


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
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=deployment_yaml("web", 3, "nginx:1"))
    wait_until(lambda: ready_replicas(cluster, namespace, "web") == 3, 60, "3 ready pods")

    cluster.kubectl("set", "image", "deployment/web", "app=nginx:2", "-n", namespace)
    wait_until(lambda: rollout_done(cluster, namespace), 60, "the new image to roll out")
    cluster.kubectl("rollout", "undo", "deployment/web", "-n", namespace)
    wait_until(lambda: rollout_done(cluster, namespace), 60, "the undo to roll out")

    dep = cluster.json("get", "deployment", "web", "-n", namespace)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"  # type: ignore[index]
    revisions = {rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                 for rs in cluster.json("get", "rs", "-n", namespace)["items"]}  # type: ignore[union-attr]
    assert revisions == {"2", "3"}  # the undo made revision 3 out of revision 1's template


def test_job_completes(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=JOB)

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
    # A second, throw-away cluster: the session's cluster stays up for the other tests.
    env = dict(os.environ, ADAPTIVE_CLUSTER_STATE=str(tmp_path / "state"),
               ADAPTIVE_CLUSTER_NAME="lifecycle")
    script = str(HERE / "cluster")
    first = parse_exports(subprocess.run([script, "up"], env=env, capture_output=True,
                                         text=True, check=True).stdout)
    again = subprocess.run([script, "up"], env=env, capture_output=True, text=True, check=True)
    assert "reusing the running cluster" in again.stderr
    assert parse_exports(again.stdout) == first
    status = subprocess.run([script, "status"], env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "kube-apiserver" in status.stdout
    assert our_processes(str(tmp_path))  # it did start processes of its own

    subprocess.run([script, "down"], env=env, capture_output=True, text=True, check=True)
    assert our_processes(str(tmp_path)) == []
    assert not (tmp_path / "state").exists()
