"""ShardSet on the real cluster: resizing through migration Jobs, a routing table clients can trust.

Every poll reads the routing table (with `adaptive_operator.routing`, as a client would), the
shards' StatefulSets and the migration Jobs, and checks what must hold at every instant: each slot
is owned by a shard that exists, migrating ranges name real shards and are still owned by their
source, and the epoch never goes back. At the end of every step it checks what must hold once
settled: the slots balanced over exactly the asked-for shards, all of them ready, no Job left.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator import routing
from adaptive_operator.domain.sharding import manifests
from adaptive_operator.domain.sharding.slots import Move
from operator_process import ROOT, OperatorProcess

from conftest import Cluster, module_tag
from support import wait_until

SLOTS = 12
NOWHERE = "adaptive.dev/e2e"  # no node has this label: a pod selecting it never schedules
STEP_TIMEOUT = 120


def shard_set_manifest(cluster: Cluster, name: str, shards: int,
                       job_spec: dict[str, Any] | None = None, backoff_limit: int = 3) -> str:
    """The ShardSet as JSON (which kubectl reads as YAML), its shards' and migrations' pods
    stand-ins (`Cluster.stand_in`): a migration succeeds at once."""
    pod = cluster.stand_in("cache", "registry.example/cache:1")
    job = job_spec or {"template": {"spec": migration_pod(cluster)}}
    return json.dumps({
        "apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet", "metadata": {"name": name},
        "spec": {
            "shards": shards, "slots": SLOTS,
            "template": {"replicas": 1, "template": {"spec": pod}},
            "migration": {"jobTemplate": job, "concurrency": 2, "backoffLimit": backoff_limit,
                          "backoffSeconds": 1},
        },
    })


def migration_pod(cluster: Cluster) -> dict[str, Any]:
    return cluster.stand_in("migrate", "registry.example/migrate:1", exits=True)


def unschedulable_job(cluster: Cluster, deadline: int | None) -> dict[str, Any]:
    """A migration Job whose pod no node accepts; with a deadline, the Job controller fails it."""
    pod = migration_pod(cluster)
    pod["nodeSelector"] = {**pod.get("nodeSelector", {}), NOWHERE: "no-such-node"}
    spec: dict[str, Any] = {"template": {"spec": pod}}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return spec


@dataclass(frozen=True)
class Sample:
    table: routing.RoutingTable
    existing: frozenset[int]
    ready: frozenset[int]
    jobs: tuple[dict[str, Any], ...]


@dataclass
class Observer:
    """Reads what a client and an administrator would see, and checks it at every read."""

    api: client.ApiClient
    namespace: str
    name: str
    epochs: list[int] = field(default_factory=list)
    jobs_seen: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _config_map(self) -> Any:
        core = client.CoreV1Api(self.api)
        try:
            return core.read_namespaced_config_map(
                manifests.routing_config_map_name(self.name), self.namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def _owned(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        selector = f"{manifests.SHARDSET_LABEL}={self.name}"
        sets = client.AppsV1Api(self.api).list_namespaced_stateful_set(
            self.namespace, label_selector=selector)
        jobs = client.BatchV1Api(self.api).list_namespaced_job(
            self.namespace, label_selector=f"{selector},{manifests.ROLE_LABEL}=migration")
        plain = self.api.sanitize_for_serialization
        return ([plain(s) for s in sets.items],  # type: ignore[no-untyped-call]
                [plain(j) for j in jobs.items])  # type: ignore[no-untyped-call]

    @staticmethod
    def _shards(sets: list[dict[str, Any]]) -> tuple[frozenset[int], frozenset[int]]:
        """The shards that have a StatefulSet, and those of them whose StatefulSet is ready."""
        existing = frozenset(s for s in map(manifests.shard_of, sets) if s is not None)
        ready = frozenset(s for s in existing
                          if any(manifests.shard_of(o) == s and manifests.is_ready(o)
                                 for o in sets))
        return existing, ready

    def sample(self) -> Sample | None:
        """One consistent reading, or None when the table changed while it was being read."""
        before = self._config_map()
        sets, jobs = self._owned()
        after = self._config_map()
        if before is None or after is None or (
                before.metadata.resource_version != after.metadata.resource_version):
            return None
        table = routing.load_config_map(before)  # refuses a table that does not cover the slots
        existing, ready = self._shards(sets)
        for job in jobs:
            self.jobs_seen[job["metadata"]["name"]] = job
        sample = Sample(table, existing, ready, tuple(jobs))
        self.check(sample)
        return sample

    def check(self, sample: Sample) -> None:
        table = sample.table
        owners = set(table.owners.tolist())
        assert owners <= sample.existing, f"slots owned by shards {owners - sample.existing} " \
                                          f"that have no StatefulSet ({sample.existing})"
        for move in table.migrating:
            assert {move.source, move.target} <= sample.existing, f"{move} names a missing shard"
        for shard, address in table.addresses().items():
            assert address == manifests.shard_address(self.name, self.namespace, shard)
        assert not self.epochs or table.epoch >= self.epochs[-1], "the epoch went back"
        if not self.epochs or table.epoch != self.epochs[-1]:
            self.epochs.append(table.epoch)

    def settled(self, shards: int) -> Sample | None:
        """The sample once the ShardSet has settled at `shards` shards, else None."""
        sample = self.sample()
        if sample is None or sample.table.migrating or sample.jobs:
            return None
        counts = [sample.table.owners.tolist().count(s) for s in range(shards)]
        wanted = frozenset(range(shards))
        if set(sample.table.owners.tolist()) != wanted or max(counts) - min(counts) > 1:
            return None
        return sample if sample.existing == sample.ready == wanted else None


def shard_set_status(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "adaptive.dev", "v1alpha1", namespace, "shardsets", name)
    return dict(found.get("status") or {})


def ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def settle(observer: Observer, shards: int) -> Sample:
    sample = wait_until(lambda: observer.settled(shards), STEP_TIMEOUT,
                        f"{observer.name} to settle at {shards} balanced, ready shards")
    status = wait_until(
        lambda: (s := shard_set_status(observer.api, observer.namespace, observer.name))
        and ready_condition(s).get("status") == "True" and s.get("readyShards") == shards and s,
        30, "status to report every shard ready")
    assert (status["shards"], status["migrationsInFlight"]) == (shards, 0)
    assert status["epoch"] == sample.table.epoch
    assert "kopf" not in status, "kopf's bookkeeping belongs in annotations, not in status"
    return sample


def attempt_of(job: dict[str, Any]) -> int:
    return int(job["metadata"]["labels"][manifests.ATTEMPT_LABEL])


def move_of(job: dict[str, Any]) -> Move:
    labels = job["metadata"]["labels"]
    start, end, source, target = (int(labels[key]) for key in manifests.MOVE_LABELS)
    return Move(start, end, source, target)


def job_condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = (job.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind and c["status"] == "True"), None)


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", [])}


@pytest.fixture(scope="module")
def operator(cluster: Cluster) -> Iterator[OperatorProcess]:
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    cluster.wait_established("shardsets.adaptive.dev")
    process = OperatorProcess("shard-set",
                              args=("--namespace", f"e2e-{module_tag(__name__)}-*")).start()
    yield process
    process.stop()


def apply(cluster: Cluster, namespace: str, text: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=text)


def patch_spec(cluster: Cluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    cluster.kubectl("patch", "shardset", name, "-n", namespace, "--type", "merge",
                    "-p", json.dumps({"spec": spec}))


def check_migration_jobs(jobs: list[dict[str, Any]], namespace: str) -> None:
    """Jobs ran for the moves to shard 3 and away from shards 2 and 3, each told its move."""
    assert jobs, "migration Jobs ran"
    assert {move_of(j).target for j in jobs} >= {3} and {move_of(j).source for j in jobs} >= {2, 3}
    for job in jobs:
        move, env = move_of(job), env_of(job)
        assert (env["SHARD_RANGE_START"], env["SHARD_RANGE_END"]) == (str(move.start),
                                                                       str(move.end))
        assert env["TARGET_ADDRESS"] == manifests.shard_address("cache", namespace, move.target)


def check_resharding_said(api: client.ApiClient, namespace: str) -> None:
    messages = [e.message for e in client.CoreV1Api(api).list_namespaced_event(namespace).items
                if e.reason == "Resharding"]
    assert any((m or "").startswith("migrated slots") for m in messages), messages


def check_slots_cannot_change(cluster: Cluster, namespace: str) -> None:
    refused = subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, "patch", "shardset", "cache", "-n",
         namespace, "--type", "merge", "-p", json.dumps({"spec": {"slots": 24}})],
        capture_output=True, text=True)
    assert refused.returncode != 0 and "slots cannot change" in refused.stderr


def test_three_to_four_to_two_shards(cluster: Cluster, namespace: str,
                                     operator: OperatorProcess, api: client.ApiClient) -> None:
    observer = Observer(api, namespace, "cache")
    apply(cluster, namespace, shard_set_manifest(cluster, "cache", 3))
    first = settle(observer, 3)
    assert first.table.owners.tolist() == [0] * 4 + [1] * 4 + [2] * 4

    step_epochs = [first.table.epoch]
    for shards in (4, 2):
        patch_spec(cluster, namespace, "cache", {"shards": shards})
        step_epochs.append(settle(observer, shards).table.epoch)
    assert step_epochs == sorted(set(step_epochs)), "each step publishes a newer table"

    check_migration_jobs(list(observer.jobs_seen.values()), namespace)
    check_resharding_said(api, namespace)
    check_slots_cannot_change(cluster, namespace)
    listed = cluster.kubectl("get", "shardsets", "-n", namespace)
    assert listed.split("\n")[0].split() == ["NAME", "SHARDS", "READY", "MIGRATING", "EPOCH",
                                             "AGE"]


def test_failed_migration_is_retried_and_never_misroutes(
        cluster: Cluster, namespace: str, operator: OperatorProcess,
        api: client.ApiClient) -> None:
    observer = Observer(api, namespace, "flaky")
    apply(cluster, namespace,
          shard_set_manifest(cluster, "flaky", 2, unschedulable_job(cluster, deadline=2),
                             backoff_limit=20))
    settle(observer, 2)
    patch_spec(cluster, namespace, "flaky", {"shards": 3})

    def failed_and_retried() -> bool:
        sample = observer.sample()
        if sample is None:
            return False
        owners = sample.table.owners.tolist()
        assert 2 not in owners, "no migration succeeded, yet the new shard owns slots"
        failed = [j for j in observer.jobs_seen.values() if job_condition(j, "Failed")]
        for job in failed:
            move = move_of(job)
            assert set(owners[move.start:move.end]) == {move.source}, \
                f"slots of a failed move {move} routed away from their source"
        return bool(failed) and any(attempt_of(j) >= 2 for j in observer.jobs_seen.values())

    wait_until(failed_and_retried, STEP_TIMEOUT, "a migration Job to fail and be run again")
    reasons = {job_condition(j, "Failed")["reason"]  # type: ignore[index]
               for j in observer.jobs_seen.values() if job_condition(j, "Failed")}
    assert reasons == {"DeadlineExceeded"}, "the Job controller itself failed the Job"

    # The user fixes the migration template: the next run of the same move succeeds.
    patch_spec(cluster, namespace, "flaky", {"migration": {"jobTemplate": {
        "activeDeadlineSeconds": None, "template": {"spec": {"nodeSelector": {NOWHERE: None}}}}}})
    settled = settle(observer, 3)
    assert settled.table.owners.tolist().count(2) == SLOTS // 3  # the later runs succeeded
    first_runs = [j for j in observer.jobs_seen.values() if attempt_of(j) == 1]
    assert first_runs and not any(job_condition(j, "Complete") for j in first_runs)


def test_deleting_the_shard_set_removes_what_it_owned(
        cluster: Cluster, namespace: str, operator: OperatorProcess,
        api: client.ApiClient) -> None:
    observer = Observer(api, namespace, "gone")
    apply(cluster, namespace,
          shard_set_manifest(cluster, "gone", 2, unschedulable_job(cluster, None)))
    settle(observer, 2)
    patch_spec(cluster, namespace, "gone", {"shards": 3})
    wait_until(lambda: (s := observer.sample()) and s.jobs and s.existing == {0, 1, 2}, 60,
               "a migration Job in flight (its pod never schedules) and the third shard")

    cluster.kubectl("delete", "shardset", "gone", "-n", namespace, "--wait=false")
    selector = f"{manifests.SHARDSET_LABEL}=gone"

    left: list[str] = []

    def nothing_left() -> bool:
        left[:] = cluster.kubectl("get", "statefulsets,services,configmaps,jobs", "-n",
                                  namespace, "-l", selector, "-o", "name").split()
        return not left

    wait_until(nothing_left, 90, "the garbage collector to remove the StatefulSets, Services, "
               "routing ConfigMap and Jobs")
    assert cluster.kubectl("get", "shardsets", "-n", namespace, "-o", "name").strip() == ""
