"""`adaptive-operator run` builds one client, fenced by its leadership, and hands it to every port
of the runtime: the ShardSets' objects, our objects' status, annotations and Events, and the
workloads' reads and writes. A port built without it reads, but refuses every write."""

from __future__ import annotations

import os
import threading
from typing import Any

import kopf
import pytest

from adaptive_operator import logs
from adaptive_operator.adapters import health, kube, leader
from adaptive_operator.cli import build_parser
from adaptive_operator.commands import run as run_command
from adaptive_operator.domain.common.events import Event
from adaptive_operator.domain.common.lease_shards import shard_of
from adaptive_operator.handlers import runtime
from adaptive_operator.handlers.ports import ClusterWorkloads, OwnRecords

from fakes import KubeHttp, fenced_client

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kv-0"}}
BODY = {"apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
        "metadata": {"name": "web", "namespace": "prod", "uid": "u"}}


def started(monkeypatch: pytest.MonkeyPatch, leading: list[bool]) -> tuple[KubeHttp, Any]:
    """Run's runtime, the HTTP boundary of the client run built, and the leadership `leading`."""
    seen: dict[str, runtime.Runtime] = {}
    server = KubeHttp()
    monkeypatch.setattr(kube, "fenced_client", lambda may_write: fenced_client(server, may_write))
    monkeypatch.setattr(kopf, "run", lambda memo, **_: seen.update(runtime=runtime.of(memo)))
    for module, name in [(logs, "configure"), (health, "serve"), (kube, "load_config")]:
        monkeypatch.setattr(module, name, lambda *_, **__: None)
    monkeypatch.setattr(leader, "may_act", lambda elector: lambda: leading[0])
    assert run_command.run(build_parser().parse_args(
        ["run", "--metrics-port", "0", "--leader-election", "false"])) == 0
    return server, seen["runtime"]


async def write_through_every_port(built: runtime.Runtime) -> None:
    built.shards.create("prod", SERVICE)
    await built.status.patch_annotations("shardsets", "prod", "kv", {"a": "b"})
    await built.workloads.annotate("adaptiveservices", "prod", "web", "k", "v")
    await built.workloads.evict("prod", ("web-0",))


async def test_run_fences_every_port_of_its_runtime_by_its_leadership(
        monkeypatch: pytest.MonkeyPatch) -> None:
    leading = [False]
    server, built = started(monkeypatch, leading)
    with pytest.raises(kube.NotLeading):
        built.shards.create("prod", SERVICE)
    with pytest.raises(kube.NotLeading):
        await built.status.patch_status("adaptiveservices", "prod", "web", {"a": 1})
    with pytest.raises(Exception, match="NotLeading"):
        await built.workloads.annotate("adaptiveservices", "prod", "web", "k", "v")
    await built.events.post(BODY, Event("Normal", "Test", "refused, logged"))
    assert server.sent == []
    leading[0] = True
    await write_through_every_port(built)
    await built.events.post(BODY, Event("Normal", "Test", "sent"))
    assert [(method, path) for method, path, _ in server.writes()] == [
        ("POST", "/api/v1/namespaces/prod/services"),
        ("PATCH", "/apis/adaptive.dev/v1alpha1/namespaces/prod/shardsets/kv"),
        ("PATCH", "/apis/adaptive.dev/v1alpha1/namespaces/prod/adaptiveservices/web"),
        ("POST", "/api/v1/namespaces/prod/pods/web-0/eviction"),
        ("POST", "/api/v1/namespaces/prod/events")]


async def test_a_port_not_handed_runs_client_reads_but_never_writes() -> None:
    with pytest.raises(Exception, match="NotLeading"):  # refused before anything is sent
        await ClusterWorkloads(resolve=lambda *_: None).roll_back(  # type: ignore[arg-type]
            "prod", "web", {})
    with pytest.raises(kube.NotLeading):
        await OwnRecords().patch_status("adaptiveservices", "prod", "web", {})
    server = KubeHttp(lambda *_: (200, {"items": []}))
    refusing = kube.reading_client()
    refusing.rest_client = server  # type: ignore[assignment]
    assert await ClusterWorkloads(api=refusing).pods_of("prod", "app=web") == []
    assert [(method, path) for method, path, _ in server.sent] == [
        ("GET", "/api/v1/namespaces/prod/pods")]


class FakeLeases:
    """The shard Leases run builds with --lease-shards: holds the shards in `held`."""

    def __init__(self, held: set[int], ends: bool = False) -> None:
        self.held, self.released, self.started, self.ends = held, False, False, ends

    def may_write(self, shard: int) -> Any:
        return lambda: shard in self.held

    def start(self) -> None:
        self.started = True

    def keep(self, stop: Any, on_lost: Any) -> None:
        if self.ends:  # the lease process ended on its own
            on_lost()

    def release(self) -> None:
        self.released = True


def named_in(shard: int) -> str:
    return next(name for name in (f"svc-{i}" for i in range(100))
                if shard_of("prod", name, 4) == shard)


async def test_each_shards_writes_are_fenced_on_that_shards_lease(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A write computed while shard 1 was held is refused once shard 1 is lost, while shard 2,
    still held, writes; the process carries on, and gives its leases back when it stops."""
    leases, server = FakeLeases({0, 1, 2, 3}), KubeHttp()
    seen: dict[str, runtime.Runtime] = {}
    monkeypatch.setattr(kube, "fenced_client", lambda may_write: fenced_client(server, may_write))
    monkeypatch.setattr(kube, "reading_client", lambda: fenced_client(server, lambda: False))
    monkeypatch.setattr(run_command, "sharded_leases", lambda args: leases)
    monkeypatch.setattr(kopf, "run", lambda memo, **_: seen.update(runtime=runtime.of(memo)))
    for module, name in [(logs, "configure"), (health, "serve"), (kube, "load_config")]:
        monkeypatch.setattr(module, name, lambda *_, **__: None)
    assert run_command.run(build_parser().parse_args(
        ["run", "--metrics-port", "0", "--lease-shards", "4"])) == 0
    built: runtime.Runtime = seen["runtime"]
    one, two = built.for_object("prod", named_in(1)), built.for_object("prod", named_in(2))
    assert one.may_act() and two.may_act() and not built.may_act()
    # One process's syncs, whichever shard: a coupled service waits on an upstream in another.
    assert one.syncs is two.syncs is built.syncs and one.lifecycle is built.lifecycle
    leases.held.discard(1)  # shard 1 lost after its write was computed
    assert not one.may_act() and two.may_act()
    with pytest.raises(kube.NotLeading):
        await one.status.patch_status("adaptiveservices", "prod", named_in(1), {"a": 1})
    with pytest.raises(Exception, match="NotLeading"):
        await one.workloads.annotate("adaptiveservices", "prod", named_in(1), "k", "v")
    with pytest.raises(kube.NotLeading):
        await built.status.patch_status("adaptiveservices", "prod", named_in(2), {"a": 1})
    await two.status.patch_status("adaptiveservices", "prod", named_in(2), {"a": 1})
    assert [path for _, path, _ in server.writes()] == [
        f"/apis/adaptive.dev/v1alpha1/namespaces/prod/adaptiveservices/{named_in(2)}/status"]
    assert leases.started and leases.released


def test_a_replica_whose_lease_renewals_ended_stops_and_exits_1(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing renews its leases any more: it stops as on SIGTERM, and says so in its code."""
    signalled = threading.Event()
    leases = FakeLeases({0, 1}, ends=True)
    monkeypatch.setattr(run_command, "sharded_leases", lambda args: leases)
    monkeypatch.setattr(os, "kill", lambda pid, sig: signalled.set())
    monkeypatch.setattr(kopf, "run", lambda memo, **_: signalled.wait(30))
    for module, name in [(logs, "configure"), (health, "serve"), (kube, "load_config")]:
        monkeypatch.setattr(module, name, lambda *_, **__: None)
    assert run_command.run(build_parser().parse_args(
        ["run", "--metrics-port", "0", "--lease-shards", "4"])) == 1
    assert signalled.is_set() and leases.released


def test_lease_shards_need_leader_election(monkeypatch: pytest.MonkeyPatch) -> None:
    for module, name in [(logs, "configure"), (health, "serve"), (kube, "load_config")]:
        monkeypatch.setattr(module, name, lambda *_, **__: None)
    with pytest.raises(SystemExit, match="needs --leader-election"):
        run_command.run(build_parser().parse_args(
            ["run", "--metrics-port", "0", "--lease-shards", "2", "--leader-election", "false"]))
