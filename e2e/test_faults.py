"""Faults on the real cluster: the operator keeps its promises when things go wrong.

The API server restarts; Prometheus answers later than the operator's timeout; another client
fights over the replicas or edits the resource. (The operator killed in the middle of an action,
and a frozen leader: test_crashes.py, with these helpers.) Double actions are counted where they
cannot hide: a Deployment's metadata.generation grows by one per replica change, and each change
has exactly one Scaled Event.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from metrics_source import Exporters, MetricsSource
from operator_process import ROOT, OperatorProcess, free_port
from test_self_healing import crash_loop, pods

from conftest import Cluster, module_tag
from support import HoldingProxy, changes_chain, deployment_yaml, wait_until

SYNC = 2
WATCHED = f"e2e-{module_tag(__name__)}-*"
FAILPOINTS = "ADAPTIVE_FAILPOINTS"



def service_yaml(name: str, ns: str, *, prometheus: str | None = None, healing: bool = False,
                 max_replicas: int = 10) -> str:
    where = f'exporter="{ns}"'
    text = f"""
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: {max_replicas}
  syncPeriodSeconds: {SYNC}
  metrics: [{{name: load, query: 'sum(e2e_load{{{where},app="{name}"}})', targetPerReplica: 10}}]
  behavior: {{scaleDown: {{stabilizationWindowSeconds: 0}}}}
"""
    if prometheus:
        text += f"  prometheus: {{url: '{prometheus}'}}\n"
    if healing:
        text += f"""  healing:
    enabled: true
    metrics:
      errorRatio: 'sum(e2e_errors{{{where}}})'
      latency: 'sum(e2e_latency{{{where}}})'
    verifySeconds: 6
"""
    return text


# The slow-Prometheus proxy's address, fixed before the operator starts so that its allowlist of
# Prometheus endpoints can name it.
PROXY = f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def operator(cluster: Cluster, crds: Cluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess("faults", args=("--namespace", WATCHED,
                                              "--leader-election", "false",
                                              "--prometheus-allowed-url", PROXY)).start()
    yield process
    process.stop()


@pytest.fixture
def load(exporters: Exporters, namespace: str) -> Iterator[MetricsSource]:
    with exporters(namespace) as exporter:
        exporter.set("e2e_errors", 0.01)
        exporter.set("e2e_latency", 0.2)
        yield exporter


def apply(cluster: Cluster, ns: str, text: str) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=text)


def deploy(cluster: Cluster, ns: str, name: str, replicas: int = 1) -> None:
    apply(cluster, ns, deployment_yaml(cluster, name, replicas))


def deployment(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict(cluster.json("get", "deployment", name, "-n", ns))


def replicas(cluster: Cluster, ns: str, name: str) -> int:
    return int(deployment(cluster, ns, name)["spec"]["replicas"])


def generation(cluster: Cluster, ns: str, name: str) -> int:  # +1 per replica change here
    return int(deployment(cluster, ns, name)["metadata"]["generation"])


def status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict(cluster.json("get", "adaptiveservice", name, "-n", ns).get("status") or {})


def condition(cluster: Cluster, ns: str, name: str, kind: str) -> dict[str, Any]:
    found = [c for c in status(cluster, ns, name).get("conditions", []) if c["type"] == kind]
    return dict(found[0]) if found else {}


def scaled(cluster: Cluster, ns: str, name: str) -> list[str]:
    """The Scaled Events of one service, each repeat counted (the API folds duplicates)."""
    items: Any = cluster.json("get", "events", "-n", ns)["items"]
    return [e["message"] for e in items if e.get("reason") == "Scaled"
            and e["involvedObject"]["name"] == name for _ in range(int(e.get("count") or 1))]


def events(cluster: Cluster, ns: str, reason: str) -> list[str]:
    items: Any = cluster.json("get", "events", "-n", ns)["items"]
    return [e["message"] for e in items if e.get("reason") == reason]


def syncs(process: OperatorProcess, ns: str) -> float:
    return process.counter("adaptive_decisions_total", namespace=ns)


def more_syncs(process: OperatorProcess, ns: str, count: int = 3) -> None:
    seen = syncs(process, ns)
    wait_until(lambda: syncs(process, ns) >= seen + count, 60, f"{count} more syncs")


def assert_each_change_once(cluster: Cluster, ns: str, name: str) -> None:
    """Every replica change made exactly once, and said exactly once."""
    changes = generation(cluster, ns, name) - 1
    said = scaled(cluster, ns, name)
    assert len(said) == changes, f"{changes} replica changes but Scaled Events {said}"


# --- the API server restarts ------------------------------------------------------------------


@pytest.mark.disrupts_cluster  # every test of the other group would lose the API server too
def test_api_server_restart_loses_and_repeats_nothing(
        cluster: Cluster, namespace: str, operator: OperatorProcess,
        load: MetricsSource) -> None:
    if not cluster.local:
        pytest.skip("restarts the local cluster's API server (`e2e/cluster restart`)")
    deploy(cluster, namespace, "web")
    load.set("e2e_load", 25.0, {"app": "web"})
    apply(cluster, namespace, service_yaml("web", namespace))
    wait_until(lambda: replicas(cluster, namespace, "web") == 3, 60, "scale to 3")

    subprocess.run([str(ROOT / "e2e" / "cluster"), "restart", "kube-apiserver"], check=True,
                   timeout=300, stdout=subprocess.DEVNULL)
    assert operator.proc is not None and operator.proc.poll() is None, "the operator died"
    load.set("e2e_load", 55.0, {"app": "web"})  # a change seen only through new connections
    wait_until(lambda: replicas(cluster, namespace, "web") == 6, 120,
               "the operator to scale again after the restart")
    # A spec change reaches the daemon only through a watch: this one was re-established.
    cluster.kubectl("patch", "adaptiveservice", "web", "-n", namespace, "--type=merge",
                    "-p", '{"spec": {"maxReplicas": 5}}')
    wait_until(lambda: replicas(cluster, namespace, "web") == 5, 60, "max 5 applied")
    more_syncs(operator, namespace)
    # 1 -> 3 -> 6 -> 5, once each; the way up to 6 may take two steps (3 -> 5 -> 6) when the
    # restart is quicker than the scale-up policy's period, which still limits the first step.
    assert_each_change_once(cluster, namespace, "web")
    assert changes_chain(scaled(cluster, namespace, "web"), 1, 5)
    assert condition(cluster, namespace, "web", "Ready")["observedGeneration"] == 2


# --- Prometheus slow ----------------------------------------------------------------------------


def healing_syncs(process: OperatorProcess, ns: str, reason: str) -> int:
    lines = process.log_path.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if "healing decision" in line and ns in line
               and reason in line)


def deploy_through_the_proxy(cluster: Cluster, namespace: str, operator: OperatorProcess,
                             load: MetricsSource, proxy_url: str) -> None:
    """`slow` (scaling) and `sick` (healing) read Prometheus through the proxy: both Ready,
    healing syncing."""
    deploy(cluster, namespace, "slow", replicas=3)
    deploy(cluster, namespace, "sick", replicas=3)
    for name in ("slow", "sick"):
        load.set("e2e_load", 29.0, {"app": name})
    apply(cluster, namespace, service_yaml("slow", namespace, prometheus=proxy_url))
    apply(cluster, namespace,
          service_yaml("sick", namespace, prometheus=proxy_url, healing=True))
    for name in ("slow", "sick"):
        wait_until(lambda n=name: condition(cluster, namespace, n, "Ready").get(
            "status") == "True", 60, f"{name} Ready through the proxy")
    wait_until(lambda: len(pods(cluster, namespace, "sick")) == 3, 60, "3 pods")
    wait_until(lambda: healing_syncs(operator, namespace, "Healthy"), 60, "healing syncs")


def check_unread_metrics_said(cluster: Cluster, namespace: str) -> None:
    cond = wait_until(lambda: (c := condition(cluster, namespace, "slow",
                                              "MetricsAvailable")).get("status") == "False"
                      and c, 90, "MetricsAvailable=False")
    assert cond["reason"] == "PrometheusTimeout", cond
    state = wait_until(lambda: status(cluster, namespace, "sick").get(
        "healing", {}).get("state", {}).get("reason") == "MetricsUnreadable"
        and status(cluster, namespace, "sick")["healing"]["state"], 90,
        "healing to say it does not act on unread metrics")
    assert "could not be read" in state["message"]


def check_nothing_done_on_unread_metrics(cluster: Cluster, namespace: str,
                                         operator: OperatorProcess) -> str:
    """A pod of `sick` crash-looping, two healing syncs and a scaling sync later: nothing done.
    The pod's name."""
    sick: str = sorted(p["metadata"]["name"] for p in pods(cluster, namespace, "sick"))[0]
    crash_loop(cluster, namespace, sick)  # plain to see in the API, yet not acted on
    held = healing_syncs(operator, namespace, "MetricsUnreadable")
    wait_until(lambda: healing_syncs(operator, namespace, "MetricsUnreadable") >= held + 2,
               90, "two healing syncs on unread metrics")
    errors = operator.counter("adaptive_reconcile_errors_total", namespace=namespace)
    wait_until(lambda: operator.counter("adaptive_reconcile_errors_total",
                                        namespace=namespace) > errors, 90,
               "one more scaling sync on missing data")
    assert replicas(cluster, namespace, "slow") == 3
    assert sick in [p["metadata"]["name"] for p in pods(cluster, namespace, "sick")]
    assert not events(cluster, namespace, "UnhealthyPods")
    return sick


def check_held_work_done(cluster: Cluster, namespace: str, sick: str) -> None:
    wait_until(lambda: replicas(cluster, namespace, "slow") == 1, 180,
               "the scale-down once the load can be read")
    why = wait_until(lambda: events(cluster, namespace, "UnhealthyPods"), 120,
                     "the crash-looping pod evicted")
    assert sick in why[0]
    assert condition(cluster, namespace, "slow", "MetricsAvailable")["status"] == "True"


def test_slow_prometheus_holds_scaling_and_healing_until_it_answers(
        cluster: Cluster, namespace: str, operator: OperatorProcess,
        load: MetricsSource) -> None:
    assert cluster.prometheus_url
    proxy = HoldingProxy(cluster.prometheus_url, port=int(PROXY.rsplit(":", 1)[1]))
    try:
        deploy_through_the_proxy(cluster, namespace, operator, load, proxy.url)

        proxy.holding.set()  # from now on Prometheus answers later than the 5 s timeout
        load.set("e2e_load", 0.0, {"app": "slow"})  # read as no load, this would scale to 1
        check_unread_metrics_said(cluster, namespace)
        sick = check_nothing_done_on_unread_metrics(cluster, namespace, operator)

        proxy.holding.clear()  # Prometheus answers again: the work held back is done
        check_held_work_done(cluster, namespace, sick)
    finally:
        cluster.kubectl("delete", "adaptiveservice", "--all", "-n", namespace,
                        "--timeout=30s", check=False)
        proxy.close()


# --- conflicting writes -------------------------------------------------------------------------


class Fighter:
    """Another client that keeps setting the replicas to its own count (a GitOps loop)."""

    def __init__(self, api: client.ApiClient, ns: str, name: str, replicas_: int) -> None:
        self.apps = client.AppsV1Api(api)
        self.ns, self.name, self.replicas = ns, name, replicas_
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.apps.patch_namespaced_deployment_scale(
                self.name, self.ns, {"spec": {"replicas": self.replicas}})


def test_conflicting_writers_are_not_fought(cluster: Cluster, namespace: str,
                                            operator: OperatorProcess, load: MetricsSource,
                                            api: client.ApiClient) -> None:
    deploy(cluster, namespace, "fought")
    load.set("e2e_load", 25.0, {"app": "fought"})
    apply(cluster, namespace, service_yaml("fought", namespace))
    wait_until(lambda: replicas(cluster, namespace, "fought") == 3, 60, "scale to 3")
    before = generation(cluster, namespace, "fought")

    fighter = Fighter(api, namespace, "fought", 7)
    fighter.thread.start()
    try:
        cond = wait_until(lambda: (c := condition(cluster, namespace, "fought",
                                                  "ScalingActive")).get("reason")
                          == "ConflictingWriter" and c, 60, "the operator to stand aside")
        assert cond["status"] == "False" and "another client changed the replicas" in (
            cond["message"])
        more_syncs(operator, namespace, 5)  # of standing aside
        # 3 -> 7 (the other client), at most one 7 -> 3 put back, then 3 -> 7 again: the other
        # client's count holds and the operator no longer writes.
        changes = generation(cluster, namespace, "fought") - before
        assert changes <= 3, f"{changes} replica changes: the operator fought"
        assert replicas(cluster, namespace, "fought") == 7
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        fighter.stop.set()
        fighter.thread.join()

    # Quiet for a window (15 syncs): the operator takes the replicas back, once.
    wait_until(lambda: replicas(cluster, namespace, "fought") == 3, 120,
               "the operator to resume once the other writer is quiet")
    wait_until(lambda: condition(cluster, namespace, "fought", "ScalingActive").get(
        "status") == "True", 30, "ScalingActive=True again")

    # Another client edits the resource (spec and status): the newest spec wins, status heals.
    cluster.kubectl("patch", "adaptiveservice", "fought", "-n", namespace, "--type=merge",
                    "-p", '{"spec": {"maxReplicas": 2}}')
    cluster.kubectl("patch", "adaptiveservice", "fought", "-n", namespace, "--type=merge",
                    "--subresource=status", "-p", '{"status": {"desiredReplicas": 99}}')
    wait_until(lambda: replicas(cluster, namespace, "fought") == 2, 60, "max 2 applied")
    wait_until(lambda: status(cluster, namespace, "fought").get("desiredReplicas") == 2,
               30, "status written again")
    ready = condition(cluster, namespace, "fought", "Ready")
    assert ready["observedGeneration"] == 2 and ready["status"] == "True", ready
    assert operator.proc is not None and operator.proc.poll() is None
