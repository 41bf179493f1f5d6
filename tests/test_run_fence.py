"""`adaptive-operator run` builds one client, fenced by its leadership, and hands it to every port
of the runtime: the ShardSets' objects, our objects' status, annotations and Events, and the
workloads' reads and writes. A port built without it reads, but refuses every write."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from adaptive_operator import logs
from adaptive_operator.adapters import health, kube, leader
from adaptive_operator.cli import build_parser
from adaptive_operator.commands import run as run_command
from adaptive_operator.domain.common.events import Event
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
        await ClusterWorkloads(resolve=lambda *_: None).roll_back(  # type: ignore[arg-type,return-value]
            "prod", "web", {})
    with pytest.raises(kube.NotLeading):
        await OwnRecords().patch_status("adaptiveservices", "prod", "web", {})
    server = KubeHttp(lambda *_: (200, {"items": []}))
    refusing = kube.reading_client()
    refusing.rest_client = server  # type: ignore[assignment]
    assert await ClusterWorkloads(api=refusing).pods_of("prod", "app=web") == []
    assert [(method, path) for method, path, _ in server.sent] == [
        ("GET", "/api/v1/namespaces/prod/pods")]
