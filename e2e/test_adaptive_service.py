"""AdaptiveService on the real cluster: the operator scales as HPA v2 would, from Prometheus."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adaptive_operator.demo.exporter import Exporter
from cluster_build import tool
from metrics_source import Exporters, MetricsSource
from operator_process import OperatorProcess, free_port

from conftest import Cluster, module_tag
from support import deployment_yaml, wait_until

SYNC = 2  # seconds between syncs in these tests, so that they run quickly



def service_yaml(name: str, query: str, *, mode: str = "Active", target: int = 10,
                 prometheus: str | None = None, max_replicas: int = 10) -> str:
    extra = f"\n  prometheus: {{url: '{prometheus}'}}" if prometheus else ""
    return f"""
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: {max_replicas}
  mode: {mode}
  syncPeriodSeconds: {SYNC}
  metrics:
    - name: load
      query: '{query}'
      targetPerReplica: {target}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}{extra}
"""


# The private Prometheus of the outage test: its port is chosen before the operator starts, so
# that the operator's allowlist of Prometheus endpoints can name it.
PRIVATE_PROMETHEUS = f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def operator(cluster: Cluster, crds: Cluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess("adaptive-service",
                              args=("--namespace", f"e2e-{module_tag(__name__)}-*",
                                    "--prometheus-allowed-url", PRIVATE_PROMETHEUS)).start()
    yield process
    process.stop()


@pytest.fixture
def load(exporters: Exporters, namespace: str) -> Iterator[MetricsSource]:
    with exporters(namespace) as exporter:
        yield exporter


def query_for(namespace: str) -> str:
    return f'sum(e2e_load{{exporter="{namespace}"}})'


def replicas(cluster: Cluster, ns: str, name: str) -> int:
    spec = cluster.json("get", "deployment", name, "-n", ns)["spec"]
    assert isinstance(spec, dict)
    return int(spec["replicas"])


def status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    found = cluster.json("get", "adaptiveservice", name, "-n", ns).get("status") or {}
    assert isinstance(found, dict)
    return found


def condition(cluster: Cluster, ns: str, name: str, kind: str) -> dict[str, Any]:
    for cond in status(cluster, ns, name).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return {}


def events(cluster: Cluster, ns: str, reason: str) -> list[str]:
    items = cluster.json("get", "events", "-n", ns)["items"]
    assert isinstance(items, list)
    return [e["message"] for e in items if e.get("reason") == reason]


def deploy(cluster: Cluster, ns: str, name: str, replicas_: int = 1) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-",
                    stdin=deployment_yaml(cluster, name, replicas_))


def apply(cluster: Cluster, ns: str, text: str) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=text)


def test_scales_up_and_down_as_hpa_would(cluster: Cluster, namespace: str,
                                         operator: OperatorProcess, load: MetricsSource) -> None:
    deploy(cluster, namespace, "web")
    load.set("e2e_load", 47.0)  # 47 / 10 per replica -> 5 replicas
    apply(cluster, namespace, service_yaml("web", query_for(namespace)))

    wait_until(lambda: replicas(cluster, namespace, "web") == 5, 60, "scale up to 5")
    wait_until(lambda: status(cluster, namespace, "web").get("desiredReplicas") == 5, 30,
               "status to show desired 5")
    ready = wait_until(lambda: condition(cluster, namespace, "web", "Ready"), 30, "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 1
    assert any("1 -> 5" in m for m in events(cluster, namespace, "Scaled"))
    decision = status(cluster, namespace, "web")["lastDecision"]
    assert decision["metrics"][0]["value"] == 47.0
    assert decision["metrics"][0]["proposedReplicas"] == 5

    load.set("e2e_load", 18.0)  # -> 2 replicas, stabilization window 0 in this test
    wait_until(lambda: replicas(cluster, namespace, "web") == 2, 60, "scale down to 2")
    assert any("5 -> 2" in m for m in events(cluster, namespace, "Scaled"))
    assert "lastScaleTime" in status(cluster, namespace, "web")
    table = cluster.kubectl("get", "adaptiveservices", "-n", namespace)
    assert table.split("\n")[0].split()[:7] == ["NAME", "TARGET", "MIN", "MAX", "CURRENT",
                                                "DESIRED", "MODE"]


def test_dry_run_reports_and_changes_nothing(cluster: Cluster, namespace: str,
                                             operator: OperatorProcess,
                                             load: MetricsSource) -> None:
    deploy(cluster, namespace, "dry", replicas_=2)
    load.set("e2e_load", 75.0)
    apply(cluster, namespace, service_yaml("dry", query_for(namespace), mode="DryRun"))

    # 75 / 10 asks for 8, but HPA's default scale-up policy allows max(+4 pods, +100%) = 6 from 2.
    wait_until(lambda: status(cluster, namespace, "dry").get("desiredReplicas") == 6, 60,
               "the recommendation of 6")
    assert status(cluster, namespace, "dry")["lastDecision"]["reason"] == (
        "ScaleUpLimitedByPolicy")
    assert condition(cluster, namespace, "dry", "ScalingActive")["reason"] == "DryRun"
    assert wait_until(lambda: events(cluster, namespace, "DryRunRecommendation"), 30,
                      "a DryRun event")
    assert replicas(cluster, namespace, "dry") == 2


def test_paused_holds(cluster: Cluster, namespace: str, operator: OperatorProcess,
                      load: MetricsSource) -> None:
    deploy(cluster, namespace, "held", replicas_=3)
    load.set("e2e_load", 90.0)
    apply(cluster, namespace, service_yaml("held", query_for(namespace), mode="Paused"))
    cond = wait_until(lambda: condition(cluster, namespace, "held", "ScalingActive"), 60,
                      "ScalingActive")
    assert (cond["status"], cond["reason"]) == ("False", "Paused")
    before = operator.counter("adaptive_decisions_total", namespace=namespace)
    wait_until(lambda: operator.counter("adaptive_decisions_total", namespace=namespace)
               >= before + 2, 30, "two more syncs")
    assert replicas(cluster, namespace, "held") == 3


@pytest.mark.parametrize(("patch", "message"), [
    pytest.param("minReplicas: 5\n  maxReplicas: 2",
                 "minReplicas must be less than or equal to maxReplicas", id="min-above-max"),
    pytest.param("minReplicas: 1\n  maxReplicas: 0", "spec.maxReplicas", id="zero-max"),
])
def test_invalid_object_is_refused_with_a_clear_message(
        cluster: Cluster, namespace: str, operator: OperatorProcess,
        patch: str, message: str) -> None:
    text = service_yaml("bad", "sum(x)").replace("minReplicas: 1\n  maxReplicas: 10", patch)
    result = subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, "apply", "-n", namespace, "-f",
         "-"], input=text, capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stderr


def test_bad_query_is_reported_and_does_not_disturb_others(
        cluster: Cluster, namespace: str, operator: OperatorProcess,
        load: MetricsSource) -> None:
    deploy(cluster, namespace, "broken", replicas_=2)
    deploy(cluster, namespace, "fine")
    load.set("e2e_load", 31.0)
    apply(cluster, namespace, service_yaml("broken", "sum(rate(x[5m]"))
    apply(cluster, namespace, service_yaml("fine", query_for(namespace)))

    cond = wait_until(lambda: condition(cluster, namespace, "broken", "MetricsAvailable"),
                      60, "MetricsAvailable on the broken service")
    assert (cond["status"], cond["reason"]) == ("False", "QueryFailed")
    assert "parse error" in cond["message"]
    wait_until(lambda: replicas(cluster, namespace, "fine") == 4, 60, "the other to scale")
    assert replicas(cluster, namespace, "broken") == 2


def test_conflicting_hpa_makes_it_stand_aside(cluster: Cluster, namespace: str,
                                              operator: OperatorProcess,
                                              load: MetricsSource) -> None:
    deploy(cluster, namespace, "owned", replicas_=2)
    cluster.kubectl("autoscale", "deployment", "owned", "-n", namespace, "--min=2",
                    "--max=3", "--cpu=80")
    load.set("e2e_load", 90.0)
    apply(cluster, namespace, service_yaml("owned", query_for(namespace)))
    cond = wait_until(lambda: condition(cluster, namespace, "owned", "ScalingActive"), 60,
                      "ScalingActive")
    assert (cond["status"], cond["reason"]) == ("False", "ConflictingAutoscaler")


def start_private_prometheus(tmp: Path, exporter_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = int(PRIVATE_PROMETHEUS.rsplit(":", 1)[1])
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs: [{job_name: app, static_configs: "
        f"[{{targets: ['127.0.0.1:{exporter_port}']}}]}}]\n")
    proc = subprocess.Popen([str(tool("prometheus")), f"--config.file={config}",
                             f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def test_prometheus_down_holds_replicas(cluster: Cluster, namespace: str,
                                        operator: OperatorProcess, tmp_path: Path) -> None:
    # All on this host: a Prometheus of the test's own, scraping an exporter on loopback.
    if not tool("prometheus").exists():
        pytest.skip("needs the Prometheus binary that `e2e/cluster build` builds")
    with Exporter(namespace, None) as exporter:
        exporter.set("e2e_load", 29.0)
        prom, url = start_private_prometheus(tmp_path, exporter.port)
        try:
            deploy(cluster, namespace, "held")
            apply(cluster, namespace, service_yaml("held", "sum(e2e_load)", prometheus=url))
            wait_until(lambda: replicas(cluster, namespace, "held") == 3, 90, "scale to 3")
            prom.terminate()
            prom.wait(timeout=30)
            # Were missing data read as no load, the operator would now scale down to 1.
            exporter.set("e2e_load", 0.0)
            cond = wait_until(
                lambda: condition(cluster, namespace, "held", "MetricsAvailable").get(
                    "status") == "False" and condition(cluster, namespace, "held",
                                                      "MetricsAvailable"), 60,
                "MetricsAvailable=False")
            assert cond["reason"] == "PrometheusUnreachable"
            errors = operator.counter("adaptive_reconcile_errors_total", namespace=namespace)
            wait_until(lambda: operator.counter("adaptive_reconcile_errors_total",
                                                namespace=namespace) >= errors + 2,
                       60, "two more failed syncs")
            assert replicas(cluster, namespace, "held") == 3
        finally:
            prom.kill()
            prom.wait()
