"""The Grafana dashboard's PromQL on the real cluster: while a service (predictive, healing in
DryRun) and a ShardSet run, with the operator's /metrics in the test Prometheus, every panel's
main query returns data and every other query is accepted by Prometheus.

The operator runs as a process beside the tests, which Prometheus cannot reach on kind: its
/metrics are read here and written into Prometheus through the remote-write receiver every
scrape interval, labelled as a scrape would label them, the same way on every cluster."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from history_seed import Series, scraped_labels, seed
from metrics_source import Exporters, MetricsSource
from operator_process import ROOT, OperatorProcess
from remote_write import push, scraped

from conftest import Cluster, module_tag
from support import deployment_yaml, prom_query, wait_until

SYNC = 2
CYCLE = 20.0  # seconds per accelerated "day": the forecast needs three of them
SEEDED_ROWS = 150
DASHBOARD = ROOT / "charts" / "adaptive-operator" / "files" / "dashboard.json"


def service_yaml(name: str, where: str) -> str:
    return f"""
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  maxReplicas: 12
  syncPeriodSeconds: {SYNC}
  metrics: [{{name: load, query: 'sum(e2e_dash_load{{{where}}})', targetPerReplica: 10}}]
  predictive: {{enabled: true, lookAheadSeconds: 4, historySeconds: 120}}
  healing:
    enabled: true
    mode: DryRun
    metrics:
      errorRatio: 'sum(e2e_dash_errors{{{where}}})'
      latency: 'sum(e2e_dash_latency{{{where}}})'
"""


def shard_set(cluster: Cluster) -> dict[str, Any]:
    """A ShardSet of stand-ins (`Cluster.stand_in`)."""
    pod = cluster.stand_in("kv", "registry.example/kv:1")
    job = cluster.stand_in("migrate", "registry.example/migrate:1", exits=True)
    return {
        "apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet", "metadata": {"name": "kv"},
        "spec": {"shards": 2, "slots": 8, "template": {"replicas": 1, "template": {"spec": pod}},
                 "migration": {"jobTemplate": {"template": {"spec": job}}}},
    }


class Relay:
    """The operator's /metrics, written into Prometheus every SYNC seconds until stopped."""

    def __init__(self, process: OperatorProcess, prometheus_url: str) -> None:
        self.process, self.url = process, prometheus_url
        self.target = {"job": "adaptive-operator",
                       "instance": f"127.0.0.1:{process.metrics_port}"}
        self.stop = threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            while not self.stop.wait(SYNC):
                push(self.url, scraped(self.process.metrics(), self.target, time.time()))
        except (OSError, AssertionError) as error:  # told at the end: a test sees only no data
            self.error = error


@pytest.fixture(scope="module")
def operator(cluster: Cluster, crds: Cluster) -> Iterator[OperatorProcess]:
    process = OperatorProcess("dashboard",
                              args=("--namespace", f"e2e-{module_tag(__name__)}-*")).start()
    assert cluster.prometheus_url
    relay = Relay(process, cluster.prometheus_url)
    relay.thread.start()
    yield process
    relay.stop.set()
    relay.thread.join()
    process.stop()
    assert relay.error is None, f"the operator's metrics stopped reaching Prometheus: {relay.error}"


class Feed:
    """A daily-like load and steady health metrics, played until stopped."""

    def __init__(self, exporter: MetricsSource) -> None:
        self.exporter = exporter
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @staticmethod
    def values(t: float) -> dict[str, float]:
        return {"e2e_dash_load": 50 + 30 * math.sin(2 * math.pi * t / CYCLE),
                "e2e_dash_errors": 0.01 + 0.002 * math.sin(t),
                "e2e_dash_latency": 0.2 + 0.01 * math.cos(t)}

    def past(self, labels: dict[str, str]) -> list[Series]:
        """The rows before the start: the detector's 120 (at SYNC) and some to spare."""
        rows = [self.values(-SYNC * k) for k in range(SEEDED_ROWS, 0, -1)]
        return [Series(metric, labels, [row[metric] for row in rows]) for metric in rows[0]]

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.wait(1.0):
            for metric, value in self.values(time.monotonic() - start).items():
                self.exporter.set(metric, value)


@pytest.fixture
def feed(cluster: Cluster, namespace: str, exporters: Exporters) -> Iterator[Feed]:
    with exporters(namespace) as exporter:
        running = Feed(exporter)
        # As if the service had run a while: the anomaly score panel needs a fitted detector.
        url = cluster.prometheus_url
        assert url
        seed(url, running.past(scraped_labels(url, namespace)), SYNC)
        running.thread.start()
        yield running
        running.stop.set()


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return found


def concrete(expr: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return expr


def test_every_panel_returns_data(cluster: Cluster, namespace: str,
                                  operator: OperatorProcess, feed: Feed) -> None:
    url = cluster.prometheus_url or ""
    where = f'exporter="{namespace}"'
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=deployment_yaml(cluster, "web"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=service_yaml("web", where))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(shard_set(cluster)))
    lookahead = wait_until(lambda: prom_query(url, 'adaptive_forecast_lookahead_seconds'
                                              f'{{namespace="{namespace}",name="web"}}'), 90,
                           "the look-ahead gauge scraped")
    values = {"namespace": namespace, "service": "web", "shardset": "kv",
              "lookahead": str(round(float(lookahead[0]["value"][1]))),  # type: ignore[index]
              "__rate_interval": "1m"}
    for panel in panels():
        main, *others = [concrete(t["expr"], values) for t in panel["targets"]]
        wait_until(lambda q=main: prom_query(url, q), 300, f"data for {panel['title']!r}")
        for query in others:
            prom_query(url, query)  # accepted (asserts status success); may be empty
    # The live samples went on in the seeded series: one series, longer than the seeded rows.
    (load,) = prom_query(url, f"count_over_time(e2e_dash_load{{{where}}}[15m])")
    assert float(load["value"][1]) > SEEDED_ROWS  # type: ignore[index]
