"""The operator killed in the middle of an action, and a leader frozen past its lease.

The operator is SIGKILLed between recording and carrying out a scale, a healing action and a
shard migration (at failpoints, ADAPTIVE_FAILPOINTS, so the kill lands exactly there); the
leader is frozen (SIGSTOP) past its lease under load. Each test runs operators of its own, in a
namespace no other operator watches. Double actions are counted as in test_faults.py: a
Deployment's metadata.generation grows by one per replica change, and each change has exactly
one Scaled Event.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from adaptive_operator.domain.sharding import manifests
from metrics_source import Exporters, MetricsSource
from operator_process import OperatorProcess
from test_faults import (
    FAILPOINTS,
    apply,
    assert_each_change_once,
    condition,
    deploy,
    generation,
    more_syncs,
    replicas,
    scaled,
    service_yaml,
    status,
)
from test_self_healing import crash_loop, ledger, pods
from test_shard_set import Observer, settle, shard_set_manifest

from conftest import Cluster, namespace_lifetime
from support import wait_until


@pytest.fixture
def own_namespace(cluster: Cluster, crds: Cluster,
                  request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace the module's operator does not watch, for operators of the test's own."""
    ns = f"e2e-faultsx-{request.node.name[5:25].replace('_', '-')}-{uuid.uuid4().hex[:5]}"
    yield from namespace_lifetime(cluster, request, ns)


def private_operator(ns: str, name: str, **env: str) -> OperatorProcess:
    return OperatorProcess(f"faults-{name}-{ns[-5:]}", env=env, args=(
        "--namespace", ns, "--leader-election", "false"))


@pytest.fixture
def restarted(cluster: Cluster, own_namespace: str) -> Iterator[OperatorProcess]:
    """The operator that comes back after the kill (the test starts it); it is stopped after
    the test's resources are deleted, so that it removes their finalizers."""
    process = private_operator(own_namespace, "back")
    yield process
    if process.proc is not None:
        cluster.kubectl("delete", "adaptiveservices,shardsets", "--all", "-n",
                        own_namespace, "--timeout=30s", check=False)
    process.stop()


def wait_killed(armed: OperatorProcess, point: str) -> None:
    assert armed.proc is not None
    armed.proc.wait(timeout=180)
    assert armed.proc.returncode == -signal.SIGKILL
    assert f"failpoint {point} hit" in armed.log_path.read_text(errors="replace")


def scaled_and_killed(cluster: Cluster, ns: str, name: str, point: str,
                      load: MetricsSource) -> None:
    """`name` deployed at 1 replica with a load for 3; an operator armed at `point` scales it to
    3 and dies there, before the write's record in status is completed."""
    deploy(cluster, ns, name)
    armed = private_operator(ns, "armed", **{FAILPOINTS: point}).start()
    load.set("e2e_load", 25.0, {"app": name})
    try:
        apply(cluster, ns, service_yaml(name, ns))
        wait_killed(armed, point)
    finally:
        armed.stop()
    assert replicas(cluster, ns, name) == 3
    assert status(cluster, ns, name)["scaleWrites"]["pending"]["replicas"] == 3


def test_killed_between_scaling_and_recording_completes_once(
        cluster: Cluster, own_namespace: str, restarted: OperatorProcess,
        exporters: Exporters) -> None:
    ns = own_namespace
    with exporters(ns) as load:
        scaled_and_killed(cluster, ns, "cut", "scaling.after_write", load)  # the write made ...
        assert scaled(cluster, ns, "cut") == []  # ... and not yet said

        restarted.start()
        said = wait_until(lambda: scaled(cluster, ns, "cut"), 60,
                          "the write found applied and recorded")
        assert "1 -> 3" in said[0] and "found applied" in said[0]
        more_syncs(restarted, ns)
        # Read while the load is still exported: once it stops, scaling is rightly inactive.
        assert condition(cluster, ns, "cut", "ScalingActive")["status"] == "True"
    assert generation(cluster, ns, "cut") == 2  # written once, never again
    assert_each_change_once(cluster, ns, "cut")
    record = status(cluster, ns, "cut")["scaleWrites"]
    assert record["appliedReplicas"] == 3 and "pending" not in record


def test_killed_between_saying_and_recording_says_it_once(
        cluster: Cluster, own_namespace: str, restarted: OperatorProcess,
        exporters: Exporters) -> None:
    """The write made and its Event posted, the record not: the next leader finds the write
    applied and records it, and its announcement (the same fact, the same Event key) is refused
    by the API server, so the change is said once."""
    ns = own_namespace
    with exporters(ns) as load:
        scaled_and_killed(cluster, ns, "said", "scaling.after_said", load)
        assert [m[:16] for m in scaled(cluster, ns, "said")] == ["Deployment said "]

        restarted.start()
        wait_until(lambda: "pending" not in status(cluster, ns, "said")["scaleWrites"], 60,
                   "the write found applied and recorded")
        more_syncs(restarted, ns)
    (said,) = scaled(cluster, ns, "said")
    assert "1 -> 3" in said and "found applied" not in said
    assert generation(cluster, ns, "said") == 2
    assert_each_change_once(cluster, ns, "said")


def test_killed_between_recording_and_healing_does_not_repeat(
        cluster: Cluster, own_namespace: str, restarted: OperatorProcess,
        exporters: Exporters) -> None:
    ns = own_namespace
    deploy(cluster, ns, "hurt", replicas=3)
    wait_until(lambda: len(pods(cluster, ns, "hurt")) == 3, 60, "3 pods")
    sick = sorted(p["metadata"]["name"] for p in pods(cluster, ns, "hurt"))[0]
    armed = private_operator(ns, "armed", **{FAILPOINTS: "healing.after_record"}).start()
    with exporters(ns) as load:
        load.set("e2e_load", 25.0, {"app": "hurt"})
        load.set("e2e_errors", 0.01)
        load.set("e2e_latency", 0.2)
        try:
            apply(cluster, ns, service_yaml("hurt", ns, healing=True))
            crash_loop(cluster, ns, sick)
            wait_killed(armed, "healing.after_record")
        finally:
            armed.stop()
        recorded = recorded_not_carried_out(cluster, ns, sick)

        restarted.start()
        wait_until(lambda: [e for e in ledger(cluster, ns, "hurt")
                            if e["id"] == recorded[0]["id"] and e["outcome"] != "Pending"], 90,
                   "the recorded eviction verified, not repeated")
        more_syncs(restarted, ns)
    check_evicted_once(cluster, ns, sick)


def recorded_not_carried_out(cluster: Cluster, ns: str, sick: str) -> list[dict[str, Any]]:
    """The ledger's one entry, an eviction still pending, of a pod still there."""
    recorded = ledger(cluster, ns, "hurt")
    assert [(e["action"], e["outcome"]) for e in recorded] == [("EvictPods", "Pending")]
    assert sick in [p["metadata"]["name"] for p in pods(cluster, ns, "hurt")], \
        "the eviction was carried out although the process died before it"
    return recorded


def check_evicted_once(cluster: Cluster, ns: str, sick: str) -> None:
    evictions = [e for e in ledger(cluster, ns, "hurt") if e["action"] == "EvictPods"
                 and e["pods"] == [sick]]
    assert len(evictions) == 1, evictions


def test_killed_between_routing_and_migration_completes_once(
        cluster: Cluster, own_namespace: str, restarted: OperatorProcess,
        api: client.ApiClient) -> None:
    ns = own_namespace
    observer = Observer(api, ns, "cut")
    armed = private_operator(ns, "armed", **{FAILPOINTS: "sharding.after_routing"}).start()
    try:
        apply(cluster, ns, shard_set_manifest(cluster, "cut", 2))
        settle(observer, 2)  # creating shards starts no migration: the failpoint is not hit
        cluster.kubectl("patch", "shardset", "cut", "-n", ns, "--type", "merge",
                        "-p", json.dumps({"spec": {"shards": 3}}))
        wait_killed(armed, "sharding.after_routing")
    finally:
        armed.stop()
    sample = wait_until(observer.sample, 10, "a consistent reading")
    assert sample.table.migrating, "the routing table records the migrations started"
    assert not sample.jobs, "no Job was created before the kill"

    restarted.start()
    settle(observer, 3)  # every reading on the way checked: no slot routed to a missing shard
    attempts = [(j["metadata"]["name"], j["metadata"]["labels"][manifests.ATTEMPT_LABEL])
                for j in observer.jobs_seen.values()]
    assert len(attempts) == len(sample.table.migrating), attempts  # one Job per move, once
    assert all(a == "1" for _, a in attempts), attempts


# --- a leader frozen past its lease -------------------------------------------------------------


AFTER = (4, 1, 2)  # from 2, 3, 4: each reachable in one step of the default policies


def test_frozen_leader_replaced_under_load_acts_never_again(
        cluster: Cluster, own_namespace: str, exporters: Exporters) -> None:
    ns = own_namespace
    env = {"POD_NAMESPACE": ns}
    first = OperatorProcess(f"frozen-a-{ns[-5:]}", env=env, args=("--namespace", ns),
                            lease_name="ha").start()
    second = OperatorProcess(f"frozen-b-{ns[-5:]}", env=env, args=("--namespace", ns),
                             lease_name="ha")
    second.start(wait_for="standby")
    names = [f"svc{i}" for i in range(len(AFTER))]
    try:
        with exporters(ns) as load:
            deploy_and_scale(cluster, ns, load, names)
            freeze_while_the_standby_rescales(cluster, ns, load, names, first, second)
            more_syncs(second, ns, 2 * len(names))
            check_each_changed_once(cluster, ns, names)
    finally:
        first.stop()
        cluster.kubectl("delete", "adaptiveservices", "--all", "-n", ns, "--timeout=30s",
                        check=False)
        second.stop()


def deploy_and_scale(cluster: Cluster, ns: str, load: MetricsSource, names: list[str]) -> None:
    for i, name in enumerate(names):
        deploy(cluster, ns, name)
        load.set("e2e_load", 15.0 + 10 * i, {"app": name})  # 2, 3, 4 replicas
        apply(cluster, ns, service_yaml(name, ns))
    for i, name in enumerate(names):
        wait_until(lambda n=name, r=2 + i: replicas(cluster, ns, n) == r, 90,
                   f"{name} to scale")


def freeze_while_the_standby_rescales(cluster: Cluster, ns: str, load: MetricsSource,
                                      names: list[str], first: OperatorProcess,
                                      second: OperatorProcess) -> None:
    """The leader frozen until the standby has taken over and scaled each service to AFTER,
    then thawed and left to step down."""
    assert first.proc is not None
    os.kill(first.proc.pid, signal.SIGSTOP)  # frozen: its lease runs out
    try:
        wait_until(lambda: second.role() == "leader", 60, "the standby to take over")
        for name, wanted in zip(names, AFTER, strict=True):
            load.set("e2e_load", wanted * 10.0 - 5, {"app": name})
        for name, wanted in zip(names, AFTER, strict=True):
            wait_until(lambda n=name, r=wanted: replicas(cluster, ns, n) == r, 90,
                       f"the new leader to scale {name}")
    finally:
        os.kill(first.proc.pid, signal.SIGCONT)  # thawed, with stale state in memory
    first.proc.wait(timeout=60)  # it finds the lease lost and steps down


def check_each_changed_once(cluster: Cluster, ns: str, names: list[str]) -> None:
    for name, wanted in zip(names, AFTER, strict=True):
        assert replicas(cluster, ns, name) == wanted
        assert_each_change_once(cluster, ns, name)
        assert generation(cluster, ns, name) == 3  # 1 -> a -> b
    assert "ConflictingWriter" not in cluster.kubectl(
        "get", "adaptiveservices", "-n", ns, "-o", "yaml")
