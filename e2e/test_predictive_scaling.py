"""Predictive scaling on the real cluster: the operator raises replicas before the load arrives.

An exporter plays a daily-like cycle in accelerated time (one "day" per minute, with noise)
through Prometheus. Two Deployments see the same load: one scaled by a predictive
AdaptiveService, one by a reactive-only one. On a rising edge after the forecast is trusted, the
test measures the lead of each: the time the noise-free load crosses the capacity of 7 replicas
minus the time the Deployment first had 8 replicas. Reactive scaling can only follow the
crossing (its lead is negative); the predictive one must come first.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from kubernetes import client, config, watch

from metrics_source import Exporters, MetricsSource
from operator_process import ROOT, OperatorProcess

from conftest import Cluster, module_tag
from support import deployment_yaml, prom_query, wait_until

SYNC = 2
CYCLE = 60.0  # seconds per accelerated "day"
MEAN, AMPLITUDE, NOISE = 50.0, 35.0, 1.5
TARGET = 10  # load per replica
LEVEL = 70.0  # the capacity of 7 replicas: the crossing measured
LOOK_AHEAD = 16  # as if pods took 14 s to start (KWOK's are ready at once)
HISTORY = 300  # five cycles: the model needs three of the season it detects

def service_yaml(name: str, query: str, predictive: bool) -> str:
    block = (f"\n  predictive: {{enabled: true, lookAheadSeconds: {LOOK_AHEAD}, "
             f"historySeconds: {HISTORY}}}") if predictive else ""
    return f"""
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: 12
  syncPeriodSeconds: {SYNC}
  metrics:
    - name: load
      query: '{query}'
      targetPerReplica: {TARGET}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}{block}
"""


def load_at(t: float) -> float:
    """The noise-free load, t seconds into the pattern (a trough at every multiple of CYCLE)."""
    return MEAN - AMPLITUDE * math.cos(2 * math.pi * t / CYCLE)


def crossing_after(trough: float) -> float:
    """Seconds after a trough at which the noise-free load reaches LEVEL."""
    return math.acos((MEAN - LEVEL) / AMPLITUDE) * CYCLE / (2 * math.pi)


class Player(threading.Thread):
    """Sets the exporter's gauge from the pattern, with seeded noise, four times a second."""

    def __init__(self, exporter: MetricsSource) -> None:
        super().__init__(daemon=True)
        self.exporter = exporter
        self.start_time = time.time()
        self.done = threading.Event()
        self.rng = np.random.default_rng(7)

    def run(self) -> None:
        while not self.done.is_set():
            t = time.time() - self.start_time
            value = max(0.0, load_at(t) + float(self.rng.normal(0, NOISE)))
            self.exporter.set("e2e_load", value)
            self.done.wait(0.25)


@dataclass
class ReplicaLog:
    """(arrival time, replicas) per Deployment, from a watch: no polling gaps."""

    namespace: str
    kubeconfig: str
    changes: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=self.kubeconfig)
        api = client.AppsV1Api(api_client)
        while not self.done.is_set():
            stream: Any = watch.Watch().stream  # type: ignore[no-untyped-call]
            for event in stream(api.list_namespaced_deployment, self.namespace,
                                timeout_seconds=5):
                item: Any = event["object"]
                seen = self.changes.setdefault(item.metadata.name, [])
                if not seen or seen[-1][1] != item.spec.replicas:
                    seen.append((time.time(), int(item.spec.replicas)))

    def at(self, name: str, moment: float) -> int:
        before = [r for t, r in self.changes.get(name, []) if t <= moment]
        return before[-1] if before else 0

    def first_at_least(self, name: str, replicas: int, after: float) -> float | None:
        return next((t for t, r in self.changes.get(name, []) if t > after and r >= replicas),
                    None)


@pytest.fixture(scope="module")
def operator(cluster: Cluster) -> Iterator[OperatorProcess]:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    cluster.wait_established("adaptiveservices.adaptive.dev")
    process = OperatorProcess("predictive", measure_coverage=False,
                              args=("--namespace", f"e2e-{module_tag(__name__)}-*")).start()
    yield process
    process.stop()


def status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    found = cluster.json("get", "adaptiveservice", name, "-n", ns).get("status") or {}
    assert isinstance(found, dict)
    return found


def condition(found: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((dict(c) for c in found.get("conditions", []) if c["type"] == kind), {})


def samples_in_prometheus(url: str, namespace: str) -> float:
    result = prom_query(url, f'count_over_time(e2e_load{{exporter="{namespace}"}}[5m])')
    value: Any = result[0]["value"] if result else [0, "0"]
    return float(value[1])


def test_scales_up_before_the_load_arrives(cluster: Cluster, namespace: str,
                                           operator: OperatorProcess,
                                           exporters: Exporters) -> None:
    assert cluster.prometheus_url is not None
    query = f'sum(e2e_load{{exporter="{namespace}"}})'
    with exporters(namespace) as exporter:
        player = Player(exporter)
        player.start()
        replicas = ReplicaLog(namespace, cluster.kubeconfig)
        threading.Thread(target=replicas.run, daemon=True).start()
        try:
            for name in ("ahead", "react"):
                cluster.kubectl("apply", "-n", namespace, "-f", "-",
                                stdin=deployment_yaml(cluster, name))
            # The services start after 1.5 cycles are in Prometheus: the operator backfills them.
            wait_until(lambda: samples_in_prometheus(cluster.prometheus_url or "",
                                                     namespace) >= 45, 150,
                       "1.5 cycles of load in Prometheus", interval=2)
            cluster.kubectl("apply", "-n", namespace, "-f", "-",
                            stdin=service_yaml("ahead", query, predictive=True))
            cluster.kubectl("apply", "-n", namespace, "-f", "-",
                            stdin=service_yaml("react", query, predictive=False))
            check_status_and_lead(cluster, namespace, operator, player, replicas)
        finally:
            player.done.set()
            replicas.done.set()


def check_status_and_lead(cluster: Cluster, ns: str, operator: OperatorProcess, player: Player,
                          replicas: ReplicaLog) -> None:
    check_reactive_while_warming_up(cluster, ns)
    check_forecast_in_status(cluster, ns)
    check_forecast_shown(cluster, ns, operator)
    leads = measure_leads(player, replicas)
    print(f"lead over the load crossing {LEVEL:g}: predictive {leads['ahead']:+.1f} s, "
          f"reactive {leads['react']:+.1f} s (look-ahead {LOOK_AHEAD} s, sync {SYNC} s)")
    assert leads["ahead"] >= SYNC, leads
    assert leads["ahead"] > leads["react"], leads
    check_scaled_for_the_forecast(cluster, ns)


def check_reactive_while_warming_up(cluster: Cluster, ns: str) -> None:
    # Its first syncs say the forecast is warming up (backfill and first fit in the background).
    def warmed() -> dict[str, Any] | None:
        found = condition(status(cluster, ns, "ahead"), "ForecastReliable")
        return found if found and found["reason"] != "WarmingUp" else None

    untrusted = wait_until(warmed, 60, "ForecastReliable on the predictive service, warmed up")
    # Created with 1.5 cycles in Prometheus (the rest of the window backfills as gaps): the
    # guard keeps it reactive and says why (the engine calls a mostly empty window seasonless).
    assert untrusted["status"] == "False", untrusted
    assert untrusted["reason"] in {"TooLittleHistory", "NoSeasonality"}, untrusted


def check_forecast_in_status(cluster: Cluster, ns: str) -> None:
    found = wait_until(lambda: (s := status(cluster, ns, "ahead")).get("forecast", {}).get(
        "reliable") and s, 200, "a trusted forecast", interval=2)
    forecast = found["forecast"]
    assert forecast["model"] in {"SeasonalNaive", "HoltWinters", "MSTL"}
    assert forecast["summary"] == forecast["model"]
    assert forecast["lookAheadSeconds"] == LOOK_AHEAD
    assert [p["offsetSeconds"] for p in forecast["forecast"]][-1] == LOOK_AHEAD
    assert condition(found, "ForecastReliable")["status"] == "True"


def check_forecast_shown(cluster: Cluster, ns: str, operator: OperatorProcess) -> None:
    """In `kubectl get`'s columns and in the operator's metrics."""
    header = cluster.kubectl("get", "adaptiveservices", "-n", ns).split("\n")[0].split()
    assert "FORECAST" in header
    assert 'quantile="0.8"' in "".join(
        line for line in operator.metrics().splitlines()
        if line.startswith("adaptive_forecast_value{") and f'namespace="{ns}"' in line)


def measure_leads(player: Player, replicas: ReplicaLog) -> dict[str, float]:
    """How long before the load's next rising edge each Deployment had the replicas it needs."""
    # The next trough at least a few seconds away, then its rising edge.
    elapsed = time.time() - player.start_time
    trough = player.start_time + CYCLE * math.ceil((elapsed + 4) / CYCLE)
    cross = trough + crossing_after(trough)
    needed = math.floor(LEVEL / TARGET) + 1
    wait_until(lambda: all(replicas.first_at_least(n, needed, trough) for n in ("ahead", "react")),
               cross - time.time() + 40, f"both Deployments to reach {needed} replicas")
    leads = {}
    for name in ("ahead", "react"):
        at_trough = replicas.at(name, trough)
        assert at_trough < needed, f"{name} had {at_trough} replicas at the trough: no rise"
        rose = replicas.first_at_least(name, needed, trough)
        assert rose is not None
        leads[name] = cross - rose
    return leads


def check_scaled_for_the_forecast(cluster: Cluster, ns: str) -> None:
    items: Any = cluster.json("get", "events", "-n", ns)["items"]
    scaled = [e["message"] for e in items
              if e.get("reason") == "Scaled" and e["involvedObject"]["name"] == "ahead"]
    assert any("the forecast asks for at least" in m for m in scaled), scaled
