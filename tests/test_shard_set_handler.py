"""The handler's translation between cluster objects and the pure decision (no cluster needed)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

import kopf

from adaptive_operator.adapters import kube
from adaptive_operator.adapters.shard_cluster import RoutingConflict, ShardSetObjects
from adaptive_operator.api.shard_set import ShardSetSpec
from adaptive_operator.domain.common.times import parse_time
from adaptive_operator.domain.sharding import manifests as m
from adaptive_operator.domain.sharding import records
from adaptive_operator.domain.sharding.migration import RoutingState
from adaptive_operator.domain.sharding.resharding import decide
from adaptive_operator.domain.sharding.slots import Move, initial_assignment
from adaptive_operator.handlers import shard_set as handler
from adaptive_operator.handlers.ports import OwnRecords
from adaptive_operator.handlers.runtime import LoadReader, Runtime
from adaptive_operator.handlers.shard_set_apply import routing_manifest
from adaptive_operator.routing import RoutingTable, build_table

from fakes import FixedClock, KubeHttp, OwnWrites, fenced_client

SPEC = ShardSetSpec.model_validate({
    "shards": 4, "slots": 12,
    "template": {"template": {"spec": {"containers": [{"name": "c"}]}}},
    "migration": {"jobTemplate": {"template": {"spec": {"containers": [{"name": "m"}]}}}},
})
NOW = parse_time("2026-01-01T00:00:05Z")
# kopf's decorator returns the handler itself, typed as its TimerFn protocol (kopf's own body
# views for every argument, any result): the tests call it with what it reads, as plain dicts.
reconcile_shard_set = cast(Callable[..., Awaitable[None]], handler.reconcile_shard_set)
BODY: dict[str, Any] = {
    "apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet",
    "metadata": {"name": "cache", "namespace": "prod", "uid": "u-1"},
}


def ready_sts(shard: int) -> dict[str, Any]:
    sts = m.stateful_set("cache", shard, {"replicas": 1, "template": {}})
    sts["metadata"]["generation"] = 1
    sts["status"] = {"readyReplicas": 1, "observedGeneration": 1}
    return sts


def objects(with_table: bool = True) -> ShardSetObjects:
    addresses = {s: m.shard_address("cache", "prod", s) for s in range(4)}
    move = Move(3, 4, 0, 3)
    table = build_table(initial_assignment(3, 12), addresses, 6, [move])
    failed = m.migration_job("cache", "prod", 12, {}, move, 1)
    failed["status"] = {"conditions": [
        {"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    return ShardSetObjects(
        stateful_sets=[ready_sts(s) for s in range(4)] + [{"metadata": {}}],
        jobs=[failed, {"metadata": {"labels": {}}}],
        routing_data=table.to_config_map_data() if with_table else None,
    )


def test_snapshot_reads_the_table_shards_and_jobs() -> None:
    snapshot = handler._snapshot(SPEC, objects(), {})
    assert snapshot.routing == RoutingState(6, initial_assignment(3, 12), (Move(3, 4, 0, 3),))
    assert snapshot.existing_shards == snapshot.ready_shards == frozenset(range(4))
    (job,) = snapshot.jobs
    assert job.state == "failed"
    assert job.finished_at == parse_time("2026-01-01T00:00:00Z")
    assert handler._snapshot(SPEC, objects(with_table=False), {}).routing is None


def given_up_meta(shards: int) -> dict[str, Any]:
    record = {"shards": shards, "moves": [{"start": 3, "end": 4, "from": 0, "to": 3}]}
    return {"annotations": {records.GIVEN_UP_ANNOTATION: json.dumps(record)}}


def _given_up(meta: dict[str, Any], shards: int) -> records.GivenUp:
    return records.given_up_from(meta.get("annotations", {}).get(records.GIVEN_UP_ANNOTATION),
                                 shards)


def test_given_up_moves_are_forgotten_when_the_shard_count_changes_but_stay_reported() -> None:
    assert _given_up(given_up_meta(4), 4).moves == {Move(3, 4, 0, 3)}
    assert _given_up(given_up_meta(3), 4).moves == frozenset()
    assert _given_up(given_up_meta(3), 4).stranded == {Move(3, 4, 0, 3)}
    assert _given_up({}, 4) == records.GivenUp(frozenset(), frozenset())
    damaged = {"annotations": {records.GIVEN_UP_ANNOTATION: '{"shards": 4}'}}
    assert _given_up(damaged, 4).moves == frozenset()


def test_record_writes_status_and_given_up_annotation_only_on_change() -> None:
    snapshot = handler._snapshot(SPEC, objects(), {"generation": 2})
    decision = decide(snapshot, now=parse_time("2026-01-01T00:00:05Z"))
    patch = kopf.Patch()
    handler._record(patch, snapshot, decision, {}, {"generation": 2}, 4, NOW)
    assert patch["status"]["epoch"] == decision.routing.epoch
    written = dict(patch["metadata"]["annotations"])
    assert records.GIVEN_UP_ANNOTATION not in written  # nothing given up
    assert records.attempts_from(written[records.ATTEMPTS_ANNOTATION]) == decision.attempts
    unchanged = kopf.Patch()
    handler._record(unchanged, snapshot, decision, dict(patch["status"]),
                    {"generation": 2, "annotations": written}, 4, NOW)
    assert "status" not in unchanged and "metadata" not in unchanged


def test_routing_manifest_is_owned_and_loadable() -> None:
    snapshot = handler._snapshot(SPEC, objects(), {})
    decision = decide(snapshot, now=0.0)
    manifest = routing_manifest("cache", "prod", decision, BODY)
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert manifest["data"]["epoch"] == str(decision.routing.epoch)


def test_refusal_sets_ready_false_once() -> None:
    patch = kopf.Patch()
    handler._report_refusal(patch, {}, {"generation": 3}, "InvalidSpec", "bad", NOW)
    (ready,) = patch["status"]["conditions"]
    assert (ready["reason"], ready["observedGeneration"]) == ("InvalidSpec", 3)
    again = kopf.Patch()
    handler._report_refusal(again, dict(patch["status"]), {"generation": 3}, "InvalidSpec", "bad",
                            NOW)
    assert "status" not in again


class InMemoryShardCluster:
    """Stands in for the adapter (not for Kubernetes): objects as dicts, Jobs end when told."""

    def __init__(self, read_load: LoadReader | None = None) -> None:
        self.read_load = read_load
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.routing: dict[str, str] | None = None
        self.fail_next_jobs = 0
        self.patches: list[str] = []
        self.version = 0  # the routing ConfigMap's resourceVersion
        self.own = OwnWrites()  # the ShardSet's own status, annotations and Events

    def observe(self, namespace: str, name: str, config_map: str) -> ShardSetObjects:
        return ShardSetObjects(
            stateful_sets=[o for (kind, _), o in self.objects.items() if kind == "StatefulSet"],
            jobs=[o for (kind, _), o in self.objects.items() if kind == "Job"],
            routing_data=self.routing,
            routing_version=str(self.version) if self.routing is not None else None,
        )

    def write_routing(self, namespace: str, manifest: Any, version: str | None) -> str:
        current = str(self.version) if self.routing is not None else None
        if version != current:
            raise RoutingConflict(f"{version} != {current}")
        self.routing = dict(manifest["data"])
        self.version += 1
        return str(self.version)

    def create(self, namespace: str, manifest: Any) -> None:
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = manifest

    def delete(self, namespace: str, kind: str, name: str) -> None:
        self.objects.pop((kind, name), None)

    def delete_owned(self, namespace: str, kind: str, name: str, owner_uid: str) -> bool:
        found = self.objects.get((kind, name), {})
        refs = found.get("metadata", {}).get("ownerReferences") or []
        if all(ref["uid"] != owner_uid for ref in refs):
            return False
        self.delete(namespace, kind, name)
        return True

    def patch_stateful_set(self, namespace: str, name: str, json_patch: list[Any]) -> None:
        self.patches.append(name)
        sts = self.objects[("StatefulSet", name)]
        for op in json_patch:
            *parents, key = op["path"].strip("/").replace("~1", "/").split("/", 2)[:3]
            target = sts
            for part in parents:
                target = target[part]
            target[key] = op["value"]

    def settle(self) -> None:
        """Shards become ready and running Jobs finish (the first `fail_next_jobs` fail)."""
        for (kind, _), obj in self.objects.items():
            if kind == "StatefulSet":
                obj["status"] = {"readyReplicas": obj["spec"]["replicas"]}
            elif kind == "Job" and "status" not in obj:
                outcome = "Failed" if self.fail_next_jobs > 0 else "Complete"
                self.fail_next_jobs -= outcome == "Failed"
                obj["status"] = {"conditions": [{"type": outcome, "status": "True",
                                                 "lastTransitionTime": "2020-01-01T00:00:00Z"}]}


async def reconcile(
    fake: InMemoryShardCluster, spec: dict[str, Any], state: dict[str, Any]
) -> None:
    rt = Runtime(shards=fake, status=fake.own, events=fake.own)
    if fake.read_load is not None:
        rt = Runtime(shards=fake, read_load=fake.read_load, status=fake.own,
                     events=fake.own)
    await reconcile_shard_set(
        spec=spec, meta=state["meta"], status=state["status"], name="cache", namespace="prod",
        body=BODY, memo=kopf.Memo(runtime=rt),
    )
    for kind, written in fake.own.take():
        if kind == "status":
            state["status"] = {**state["status"], **written}
        else:
            state["meta"].setdefault("annotations", {}).update(written)


def live_shards(fake: InMemoryShardCluster) -> set[int | None]:
    return {m.shard_of(o) for (kind, _), o in fake.objects.items() if kind == "StatefulSet"}


def was_retried(fake: InMemoryShardCluster) -> bool:
    return any(o["metadata"]["name"].endswith("-a2") for o in fake.objects.values())


async def drive(
    fake: InMemoryShardCluster, spec: dict[str, Any], state: dict[str, Any]
) -> tuple[RoutingTable, bool]:
    """Reconcile until Ready, checking the published table after every step."""
    retried = False
    for _ in range(30):
        await reconcile(fake, spec, state)
        table = RoutingTable.from_config_map_data(fake.routing or {})
        assert set(table.owners.tolist()) <= live_shards(fake)  # never a missing shard
        retried |= was_retried(fake)
        fake.settle()
        if state["status"]["conditions"][0]["reason"] == "AllShardsReady":
            break
    return table, retried


async def test_three_to_four_to_two_shards_in_memory() -> None:
    fake = InMemoryShardCluster()
    spec = SPEC.model_dump(by_alias=True)
    state: dict[str, Any] = {"meta": {"generation": 1}, "status": {}}
    fake.fail_next_jobs = 1
    retried = []
    for shards in (3, 4, 2):
        table, step_retried = await drive(fake, spec | {"shards": shards}, state)
        retried.append(step_retried)
        check_settled_at(shards, state, table, fake)
    assert retried == [False, True, False]  # the first migration failed once and ran again
    check_resharding_said(fake)


def check_settled_at(shards: int, state: dict[str, Any], table: RoutingTable,
                     fake: InMemoryShardCluster) -> None:
    """Status at `shards`, nothing in flight, slots spread evenly, no Job left behind."""
    assert state["status"]["shards"] == shards
    assert state["status"]["migrationsInFlight"] == 0
    counts = [table.owners.tolist().count(s) for s in range(shards)]
    assert max(counts) - min(counts) <= 1
    assert not any(kind == "Job" for kind, _ in fake.objects)


def check_resharding_said(fake: InMemoryShardCluster) -> None:
    """Normal Resharding Events, for the retry and for the migrations done."""
    posted = [(event.type, event.reason, event.message) for event in fake.own.events]
    assert {(kind, reason) for kind, reason, _ in posted} == {("Normal", "Resharding")}
    messages = [message for _, _, message in posted]
    assert any(m.startswith("retrying slots") for m in messages)
    assert any(m.startswith("migrated slots") for m in messages)


async def test_invalid_spec_is_reported_not_acted_on() -> None:
    fake = InMemoryShardCluster()
    state: dict[str, Any] = {"meta": {"generation": 1}, "status": {}}
    await reconcile(fake, {"shards": 0}, state)
    assert state["status"]["conditions"][0]["reason"] == "InvalidSpec"
    assert fake.objects == {}


async def test_slot_count_change_is_refused() -> None:
    fake = InMemoryShardCluster()
    state: dict[str, Any] = {"meta": {"generation": 1}, "status": {}}
    spec = SPEC.model_dump(by_alias=True)
    await reconcile(fake, spec, state)
    await reconcile(fake, spec | {"slots": 24}, state)
    ready = state["status"]["conditions"][0]
    assert (ready["type"], ready["reason"]) == ("Ready", "RoutingTableMismatch")


async def settle_at(
    fake: InMemoryShardCluster, spec: dict[str, Any], state: dict[str, Any]
) -> None:
    for _ in range(10):
        await reconcile(fake, spec, state)
        fake.settle()


async def test_hot_shard_load_starts_a_rebalance() -> None:
    fake = InMemoryShardCluster()
    queries: list[str] = []

    async def read_load(query: str) -> list[dict[str, Any]]:
        queries.append(query)
        return [{"metric": {"shard": "0"}, "value": [0, "3"]},
                {"metric": {"shard": "1"}, "value": [0, "1"]}]

    fake.read_load = read_load
    spec = SPEC.model_dump(by_alias=True) | {"shards": 2, "rebalance": {"loadQuery": "load"}}
    state: dict[str, Any] = {"meta": {"generation": 1}, "status": {}}
    await settle_at(fake, spec, state)
    assert queries and queries[0] == "load"
    table = RoutingTable.from_config_map_data(fake.routing or {})
    counts = [table.owners.tolist().count(s) for s in range(2)]
    assert counts[0] < counts[1]  # the hot shard gave slots away, through migration Jobs
    record = json.loads(state["meta"]["annotations"][handler.REBALANCE_ANNOTATION])
    assert set(record) == {"at", "active"}


async def test_unreadable_load_moves_nothing() -> None:
    fake = InMemoryShardCluster()

    async def no_series(query: str) -> list[dict[str, Any]]:
        return []

    fake.read_load = no_series
    spec = SPEC.model_dump(by_alias=True) | {"shards": 2, "rebalance": {"loadQuery": "load"}}
    state: dict[str, Any] = {"meta": {"generation": 1}, "status": {}}
    await settle_at(fake, spec, state)
    warnings = [event.reason for event in fake.own.events if event.type == "Warning"]
    assert warnings == ["LoadQueryFailed"]  # once: the next try waits for the period
    table = RoutingTable.from_config_map_data(fake.routing or {})
    assert table.owners.tolist() == list(initial_assignment(2, 12))


async def test_template_change_updates_existing_shards() -> None:
    fake = InMemoryShardCluster()
    spec = SPEC.model_dump(by_alias=True) | {"shards": 2}
    state: dict[str, Any] = {"meta": {"generation": 1}, "status": {}}
    await reconcile(fake, spec, state)
    await reconcile(fake, spec, state)
    assert fake.patches == []
    spec["template"] = spec["template"] | {"replicas": 3}
    await reconcile(fake, spec, state)
    assert sorted(fake.patches) == ["cache-0", "cache-1"]
    assert fake.objects[("StatefulSet", "cache-0")]["spec"]["replicas"] == 3
    await reconcile(fake, spec, state)
    assert len(fake.patches) == 2  # up to date now: not patched again


async def test_a_replica_that_is_not_leading_writes_nothing() -> None:
    """kopf writes a handler's patch (status, the attempts and given-up annotations) through its
    own client, which the leadership fence does not cover: the handler must leave it empty, and
    writes nothing of its own (status, annotations, Events) while not leading."""
    fake = InMemoryShardCluster()
    spec = SPEC.model_dump(by_alias=True)
    for leading, given in [(False, spec), (False, {"shards": 0}), (True, spec)]:
        patch = kopf.Patch()

        def may_act(now: bool = leading) -> bool:
            return now

        await reconcile_shard_set(
            spec=given, meta={"generation": 1}, status={}, name="cache", namespace="prod",
            body=BODY, patch=patch, memo=kopf.Memo(runtime=Runtime(
                shards=fake, may_act=may_act, status=fake.own,
                events=fake.own)))
        assert patch == {}
        wrote = fake.objects != {} or fake.routing is not None or fake.own.take() != []
        assert wrote is leading


async def no_series(query: str) -> list[dict[str, Any]]:
    return []


async def reconcile_over_http(may_act: Callable[[], bool]) -> tuple[kopf.Patch, KubeHttp]:
    """A first reconcile whose status, rebalance annotation and LoadQueryFailed Event go through
    the fenced client to a fake API server; `may_act` is the leadership (the handler's check and
    the client's fence alike)."""
    server = KubeHttp()
    records = OwnRecords(kube.OwnObjects(fenced_client(server, may_act)))
    rt = Runtime(shards=InMemoryShardCluster(), may_act=may_act, read_load=no_series,
                 clock=FixedClock(NOW), status=records, events=records)
    patch = kopf.Patch()
    spec = SPEC.model_dump(by_alias=True) | {"shards": 2, "rebalance": {"loadQuery": "load"}}
    await reconcile_shard_set(
        spec=spec, meta={"generation": 1}, status={}, name="cache", namespace="prod",
        body=BODY, patch=patch, memo=kopf.Memo(runtime=rt))
    return patch, server


async def test_a_leader_deposed_mid_reconcile_sends_no_status_annotation_or_event() -> None:
    """Leading when the reconcile starts, not when it writes (paused while the lease was taken):
    neither kopf's patch nor the fenced client carries anything about the ShardSet."""
    checks: list[bool] = []

    def leading_once() -> bool:
        checks.append(True)
        return len(checks) == 1

    patch, server = await reconcile_over_http(leading_once)
    assert len(checks) > 2  # the handler's check, then one per write refused
    assert patch == {} and server.sent == []


async def test_a_leader_sends_status_annotation_and_event_as_before() -> None:
    patch, server = await reconcile_over_http(lambda: True)
    assert patch == {}
    event, status, annotations = server.writes()
    shard_set = "/apis/adaptive.dev/v1alpha1/namespaces/prod/shardsets/cache"
    assert event[:2] == ("POST", "/api/v1/namespaces/prod/events")
    assert (event[2]["type"], event[2]["reason"], event[2]["involvedObject"]["uid"]) == (
        "Warning", "LoadQueryFailed", "u-1")
    assert status[:2] == ("PATCH", f"{shard_set}/status")
    assert status[2]["status"]["shards"] == 2
    assert status[2]["status"]["conditions"][0]["type"] == "Ready"
    assert annotations == ("PATCH", shard_set, {"metadata": {"annotations": {
        handler.REBALANCE_ANNOTATION: json.dumps({"at": NOW, "active": False})}}})
