"""Healing on the real cluster: rollback of a bad rollout, eviction, no false alarms, DryRun,
crash safety (the operator SIGKILLed right after recording an action does not repeat it), and
scale-out on saturation (latency up while load is up), carried out by the scaler.

The pods are stand-ins (`Cluster.stand_in`: KWOK's, or idle containers on kind), which serve
nothing, so ill health is simulated honestly where the operator looks for it:
- metrics: a feeder thread serves, per test slot, an error ratio that rises with the share of
  the Deployment's pods running the bad image (read from the API server), plus a noisy latency;
- pods: a crash loop (`Cluster.crash_loop`: written into a KWOK pod's status, real elsewhere).
One feeder, an exporter of the `exporters` fixture, serves every test from the module's start.
The history the detector needs (120 rows at a 2 s step) is seeded into Prometheus first, from
the same noise model (e2e/history_seed.py): the services are applied to workloads that have been
running for five minutes, and the operator's backfill reads those rows, instead of the first
test waiting for them.
"""

from __future__ import annotations

import json
import signal
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from kubernetes import client, config

from history_seed import Series, scraped_labels, seed
from metrics_source import Exporters, MetricsSource
from operator_process import ROOT, OperatorProcess

from conftest import Cluster, module_tag
from support import deployment_yaml, wait_until

SYNC = 2  # seconds: the scrape interval, so every row of history is a fresh sample
LEDGER = "adaptive.dev/healing-ledger"
# The versions of the Deployments' stand-ins (`Cluster.stand_in`). Where stand-ins are real
# containers, GOOD runs the workload image and BAD is an image never pulled: its pods never get
# ready, so a bad rollout stalls at its first new pod.
GOOD, BAD = "registry.example/app:1", "registry.example/app:2"
WARM_UP = 360  # seconds, at most, to the first verdict (the seeded history backfilled, a fit)
SEEDED_ROWS = 150  # past rows per metric: the detector's 120 (rows_to_fit) and some to spare
SLOTS = ("normal", "rollback", "dryrun", "killed", "evict", "saturate")
ROLLBACK_DEADLINE = 120  # the bound: a bad rollout is rolled back within 2 minutes

def service_yaml(name: str, slot: str, *, mode: str = "Active", replicas: int = 2) -> str:
    where = f'exporter="{FEED_NAME}",slot="{slot}"'
    return f"""
apiVersion: adaptive.dev/v1alpha1
kind: AdaptiveService
metadata: {{name: {name}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}
  minReplicas: 1
  maxReplicas: {replicas + 2}
  mode: Paused
  syncPeriodSeconds: {SYNC}
  metrics: [{{name: load, query: 'sum(e2e_heal_latency{{{where}}})', targetPerReplica: 1}}]
  healing:
    enabled: true
    mode: {mode}
    metrics:
      errorRatio: 'sum(e2e_heal_error_ratio{{{where}}})'
      latency: 'sum(e2e_heal_latency{{{where}}})'
    roles: {{latency: latency}}
    rollbackWindowSeconds: 300
    cooldownSeconds: 60
    verifySeconds: 16
"""
# persistence is left at its default (k=2 of n=3): on a shared cluster a CRD written by an
# older build (its `n` key read by Go's YAML as `false`) prunes `n` and defaults `false`.


# A fresh exporter name per run: Prometheus keeps the series of earlier runs (a bad rollout
# among them), and the operator's backfill would train on them.
FEED_NAME = f"e2e-{module_tag(__name__)}-feed-{uuid.uuid4().hex[:6]}"


class Feed:
    """Noisy, normal health metrics per slot; the error ratio follows the bad pods' share."""

    def __init__(self, exporter: MetricsSource, kubeconfig: str) -> None:
        self.exporter = exporter
        self.rng = np.random.default_rng(7)
        self.targets: dict[str, tuple[str, str]] = {}  # slot -> (namespace, deployment)
        self.stop = threading.Event()
        self.saturated: set[str] = set()  # slots whose load doubled
        config.load_kube_config(kubeconfig)  # type: ignore[no-untyped-call]
        self.core = client.CoreV1Api()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def live_pods(self, slot: str) -> list[Any]:
        if slot not in self.targets:
            return []
        ns, app = self.targets[slot]
        found = self.core.list_namespaced_pod(ns, label_selector=f"app={app}",
                                              _request_timeout=5).items
        return [p for p in found if p.metadata is not None and not p.metadata.deletion_timestamp]

    def bad_share(self, slot: str) -> float:
        images = [p.spec.containers[0].image for p in self.live_pods(slot) if p.spec is not None]
        return len([i for i in images if i == BAD]) / len(images) if images else 0.0

    def ready(self, slot: str) -> int:
        return len([p for p in self.live_pods(slot) if p.status is not None
                    and any(c.type == "Ready" and c.status == "True"
                            for c in p.status.conditions or [])])

    def load_and_latency(self, slot: str) -> tuple[float, float]:
        """Load 10 (20 when saturated); latency 0.2, 0.6 while 20 falls on fewer than 3 pods:
        the pods saturate, and a third one relieves them."""
        load = (20.0 if slot in self.saturated else 10.0) + self.rng.normal(0, 0.3)
        latency = 0.2 + self.rng.normal(0, 0.01)
        if slot in self.saturated and self.ready(slot) < 3:
            latency += 0.4
        return load, latency

    def sample(self, slot: str) -> dict[str, float]:
        ratio = 0.01 + self.rng.normal(0, 0.002) + 0.5 * self.bad_share(slot)
        load, latency = self.load_and_latency(slot)
        return {"e2e_heal_error_ratio": max(ratio, 0.0), "e2e_heal_latency": max(latency, 0.0),
                "e2e_heal_load": load}

    def past(self, scraped: dict[str, str]) -> list[Series]:
        """SEEDED_ROWS normal samples per slot and metric (no pods yet: none is bad), with the
        labels that Prometheus' scrape of the exporter gives them."""
        rows = {slot: [self.sample(slot) for _ in range(SEEDED_ROWS)] for slot in SLOTS}
        return [Series(metric, {**scraped, "slot": slot}, [row[metric] for row in rows[slot]])
                for slot in SLOTS for metric in rows[slot][0]]

    def _run(self) -> None:
        while not self.stop.is_set():
            for slot in SLOTS:
                for metric, value in self.sample(slot).items():
                    self.exporter.set(metric, value, {"slot": slot})
            self.stop.wait(1.0)


@pytest.fixture(scope="module")
def feed(cluster: Cluster, exporters: Exporters) -> Iterator[Feed]:
    with exporters(FEED_NAME) as exporter:
        running = Feed(exporter, cluster.kubeconfig)
        url = cluster.prometheus_url
        assert url
        seed(url, running.past(scraped_labels(url, FEED_NAME)), SYNC)
        running.thread.start()
        yield running
        running.stop.set()


@pytest.fixture(scope="module")
def operator(cluster: Cluster, feed: Feed) -> Iterator[OperatorProcess]:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    cluster.wait_established("adaptiveservices.adaptive.dev")
    process = OperatorProcess("healing", measure_coverage=False,
                              args=("--namespace", f"e2e-{module_tag(__name__)}-*",
                                    "--leader-election", "false")).start()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def services_deleted(cluster: Cluster, namespace: str,
                     operator: OperatorProcess) -> Iterator[None]:
    """Delete the test's AdaptiveService while the operator still watches the namespace: it
    removes its finalizer then, which it does not do once the namespace is terminating."""
    yield
    cluster.kubectl("delete", "adaptiveservices", "--all", "-n", namespace,
                    "--timeout=30s", check=False)


def apply(cluster: Cluster, ns: str, text: str) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", stdin=text)


def deploy(cluster: Cluster, ns: str, name: str, replicas: int = 2) -> None:
    apply(cluster, ns, deployment_yaml(cluster, name, replicas, GOOD))
    wait_until(lambda: ready_pods(cluster, ns, name) == replicas, 60, f"{replicas} ready pods")


def ready_pods(cluster: Cluster, ns: str, name: str) -> int:
    return len([p for p in pods(cluster, ns, name)
                if any(c["type"] == "Ready" and c["status"] == "True"
                       for c in p["status"].get("conditions", []))])


def pods(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    items = cluster.json("get", "pods", "-n", ns, "-l", f"app={name}")["items"]
    assert isinstance(items, list)
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def image(cluster: Cluster, ns: str, name: str) -> str:
    spec: Any = cluster.json("get", "deployment", name, "-n", ns)["spec"]
    return str(spec["template"]["spec"]["containers"][0]["image"])


def service(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict(cluster.json("get", "adaptiveservice", name, "-n", ns))


def ledger(cluster: Cluster, ns: str, name: str) -> list[dict[str, Any]]:
    text = service(cluster, ns, name)["metadata"].get("annotations", {}).get(LEDGER, "[]")
    found: list[dict[str, Any]] = json.loads(text)
    return found


def healing_status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict((service(cluster, ns, name).get("status") or {}).get("healing") or {})


def events(cluster: Cluster, ns: str, reason: str) -> list[str]:
    items = cluster.json("get", "events", "-n", ns)["items"]
    assert isinstance(items, list)
    return [e["message"] for e in items if e.get("reason") == reason]


def decisions(process: OperatorProcess, ns: str) -> int:
    """Healing syncs of this namespace so far, from the operator's structured log."""
    lines = process.log_path.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if "healing decision" in line and ns in line)


def start_service(cluster: Cluster, feed: Feed, ns: str, slot: str, mode: str = "Active",
                  replicas: int = 2) -> None:
    deploy(cluster, ns, slot, replicas)
    feed.targets[slot] = (ns, slot)
    apply(cluster, ns, service_yaml(slot, slot, mode=mode, replicas=replicas))


def wait_fitted(cluster: Cluster, ns: str, name: str) -> None:
    wait_until(lambda: healing_status(cluster, ns, name).get("lastVerdict"), WARM_UP,
               "the detector's first verdict (history backfilled and fitted)", interval=2)


def roll_out_bad_image(cluster: Cluster, ns: str, name: str) -> None:
    cluster.kubectl("set", "image", "-n", ns, f"deployment/{name}", f"app={BAD}")
    wait_until(lambda: image(cluster, ns, name) == BAD, 10, "the bad rollout to start")


def test_normal_noisy_metrics_trigger_no_action(cluster: Cluster, namespace: str,
                                                operator: OperatorProcess, feed: Feed) -> None:
    start_service(cluster, feed, namespace, "normal")
    wait_fitted(cluster, namespace, "normal")
    scored = decisions(operator, namespace)
    # The ledger below covers the whole stretch: the warm-up rows and these scored syncs.
    wait_until(lambda: decisions(operator, namespace) >= scored + 30, 150,
               "30 more scored syncs of noisy, normal metrics", interval=2)
    assert ledger(cluster, namespace, "normal") == []
    assert not healing_status(cluster, namespace, "normal")["lastVerdict"]["isAnomaly"]
    assert ready_pods(cluster, namespace, "normal") == 2


def test_bad_rollout_is_rolled_back_with_an_explanation(
        cluster: Cluster, namespace: str, operator: OperatorProcess, feed: Feed) -> None:
    start_service(cluster, feed, namespace, "rollback")
    wait_fitted(cluster, namespace, "rollback")
    roll_out_bad_image(cluster, namespace, "rollback")

    good = cluster.stand_in_image(GOOD)
    wait_until(lambda: image(cluster, namespace, "rollback") == good, ROLLBACK_DEADLINE,
               "the rollback to the good image")
    why = wait_until(lambda: events(cluster, namespace, "AnomalyAfterRollout"), 30,
                     "the rollback Event")
    assert "errorRatio up" in why[0] and "rolling back to revision 1" in why[0]
    wait_until(lambda: ready_pods(cluster, namespace, "rollback") == 2, 60, "2 pods")
    entry = wait_until(lambda: [e for e in ledger(cluster, namespace, "rollback")
                                if e["outcome"] != "Pending"], 60, "the rollback verified")
    assert [(e["action"], e["outcome"]) for e in entry] == [("RollBack", "Helped")]
    status = healing_status(cluster, namespace, "rollback")
    assert status["lastAction"]["action"] == "RollBack"


def test_dry_run_reports_and_changes_nothing(cluster: Cluster, namespace: str,
                                             operator: OperatorProcess, feed: Feed) -> None:
    start_service(cluster, feed, namespace, "dryrun", mode="DryRun")
    wait_fitted(cluster, namespace, "dryrun")
    roll_out_bad_image(cluster, namespace, "dryrun")

    said = wait_until(lambda: events(cluster, namespace, "HealingDryRun"), 120,
                      "the DryRun report")
    assert "rolling back to revision 1" in said[0]
    seen = decisions(operator, namespace)
    wait_until(lambda: decisions(operator, namespace) >= seen + 5, 60, "5 more syncs")
    assert image(cluster, namespace, "dryrun") == BAD
    assert [e["outcome"] for e in ledger(cluster, namespace, "dryrun")] == ["DryRun"]
    assert not events(cluster, namespace, "AnomalyAfterRollout")


def test_operator_killed_after_recording_does_not_repeat(
        cluster: Cluster, namespace: str, operator: OperatorProcess, feed: Feed) -> None:
    start_service(cluster, feed, namespace, "killed")
    wait_fitted(cluster, namespace, "killed")
    # The kill lands exactly between recording the rollback and carrying it out: the failpoint
    # makes the operator SIGKILL itself there (see adaptive_operator/failpoints.py).
    operator.stop()
    armed = OperatorProcess("healing-armed", measure_coverage=False, args=operator.args,
                            env={"ADAPTIVE_FAILPOINTS": "healing.after_record"}).start()
    try:
        roll_out_bad_image(cluster, namespace, "killed")
        assert armed.proc is not None
        armed.proc.wait(timeout=WARM_UP)  # a fresh process: backfill, fit, then the anomaly
        assert armed.proc.returncode == -signal.SIGKILL
    finally:
        armed.stop()
    check_recorded_not_rolled_back(cluster, namespace)
    operator.start()

    check_rolled_back_once(cluster, namespace, operator)


def check_recorded_not_rolled_back(cluster: Cluster, namespace: str) -> None:
    assert [(e["action"], e["outcome"]) for e in ledger(cluster, namespace, "killed")] == [
        ("RollBack", "Pending")]
    assert image(cluster, namespace, "killed") == BAD, "acted although killed before"


def check_rolled_back_once(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    """The recorded rollback verified after the restart, and not carried out again."""
    verified = wait_until(lambda: [e for e in ledger(cluster, namespace, "killed")
                                   if e["action"] == "RollBack" and e["outcome"] != "Pending"],
                          120, "the recorded rollback verified after the restart")
    seen = decisions(operator, namespace)
    wait_until(lambda: decisions(operator, namespace) >= seen + 5, 60, "5 more syncs")
    rollbacks = [e for e in ledger(cluster, namespace, "killed") if e["action"] == "RollBack"]
    assert len(rollbacks) == 1 == len(verified)
    assert len(events(cluster, namespace, "AnomalyAfterRollout")) <= 1


def crash_loop(cluster: Cluster, ns: str, pod: str) -> None:
    """The pod crash-loops (`Cluster.crash_loop`: in its status on KWOK, for real elsewhere)."""
    cluster.crash_loop(ns, pod, GOOD)


def test_failing_pods_are_evicted_and_recover(cluster: Cluster, namespace: str,
                                              operator: OperatorProcess, feed: Feed) -> None:
    start_service(cluster, feed, namespace, "evict", replicas=3)
    sick = sorted(p["metadata"]["name"] for p in pods(cluster, namespace, "evict"))[0]
    crash_loop(cluster, namespace, sick)

    why = wait_until(lambda: events(cluster, namespace, "UnhealthyPods"), 60,
                     "the eviction Event")
    assert sick in why[0] and "crash-looping" in why[0]
    wait_until(lambda: sick not in [p["metadata"]["name"]
                                    for p in pods(cluster, namespace, "evict")], 60,
               "the sick pod evicted")
    wait_until(lambda: ready_pods(cluster, namespace, "evict") == 3, 60,
               "3 ready pods again (a replacement came up)")
    entry = wait_until(lambda: [e for e in ledger(cluster, namespace, "evict")
                                if e["outcome"] != "Pending"], 60, "the eviction verified")
    assert [(e["action"], e["outcome"], e["pods"]) for e in entry] == [
        ("EvictPods", "Helped", [sick])]


def test_saturation_scales_out_through_the_scaler_with_an_explanation(
        cluster: Cluster, namespace: str, operator: OperatorProcess, feed: Feed) -> None:
    # The scaler is Active here, but its own metric (load 10 -> 20 at 100 per replica) never
    # asks for more than minReplicas 2: a third replica can only come from healing.
    deploy(cluster, namespace, "saturate", 2)
    feed.targets["saturate"] = (namespace, "saturate")
    text = service_yaml("saturate", "saturate").replace("mode: Paused", "mode: Active")
    text = text.replace("minReplicas: 1", "minReplicas: 2").replace(
        "query: 'sum(e2e_heal_latency{", "query: 'sum(e2e_heal_load{").replace(
        "targetPerReplica: 1}", "targetPerReplica: 100}")
    apply(cluster, namespace, text)
    wait_fitted(cluster, namespace, "saturate")
    seen = decisions(operator, namespace)
    # The load signal is read live (never backfilled): 15 syncs give it a baseline.
    wait_until(lambda: decisions(operator, namespace) >= seen + 15, 90,
               "15 syncs of load history", interval=2)
    feed.saturated.add("saturate")

    why = wait_until(lambda: events(cluster, namespace, "Saturation"), 120,
                     "the saturation Event")
    assert "ScaleOut: saturation: load +" in why[0] and "scaling out 2 -> 3 (max 4)" in why[0]
    wait_until(lambda: ready_pods(cluster, namespace, "saturate") == 3, 60,
               "the third pod, started by the scaler")
    scaled = wait_until(lambda: events(cluster, namespace, "Scaled"), 30,
                        "the scaler's Event")
    assert "2 -> 3" in scaled[0] and "a healing scale-out (saturation) asks for at least 3" in (
        scaled[0])
    entry = wait_until(lambda: [e for e in ledger(cluster, namespace, "saturate")
                                if e["outcome"] != "Pending"], 90, "the scale-out verified")
    assert [(e["action"], e["outcome"], e["replicas"]) for e in entry] == [
        ("ScaleOut", "Helped", 3)]
    assert not events(cluster, namespace, "HealingActionFailed")
