"""`adaptive-operator run` builds one client, fenced by its leadership, and every write goes
through it: the ShardSets' objects (handed to ShardCluster) and the module calls (shared, what
`kube.api_client()` answers). Before run shares one, the modules' client refuses every write."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from kubernetes import client

from adaptive_operator import logs
from adaptive_operator.adapters import health, kube, leader
from adaptive_operator.cli import build_parser
from adaptive_operator.commands import run as run_command
from adaptive_operator.handlers import runtime

from fakes import KubeHttp

SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kv-0"}}


def started(monkeypatch: pytest.MonkeyPatch, leading: list[bool]) -> tuple[KubeHttp, Any]:
    """Run's runtime and its client's HTTP boundary, with the leadership `leading` says."""
    seen: dict[str, runtime.Runtime] = {}
    monkeypatch.setattr(kube, "_shared_client", None)  # put back after the test
    monkeypatch.setattr(kopf, "run", lambda memo, **_: seen.update(runtime=runtime.of(memo)))
    for module, name in [(logs, "configure"), (health, "serve"), (kube, "load_config")]:
        monkeypatch.setattr(module, name, lambda *_, **__: None)
    monkeypatch.setattr(leader, "may_act", lambda elector: lambda: leading[0])
    assert run_command.run(build_parser().parse_args(
        ["run", "--metrics-port", "0", "--leader-election", "false"])) == 0
    server = KubeHttp()
    kube.api_client().rest_client = server  # the client run shared
    return server, seen["runtime"]


def test_run_fences_the_shard_sets_and_the_modules_writes_by_its_leadership(
        monkeypatch: pytest.MonkeyPatch) -> None:
    leading = [False]
    server, built = started(monkeypatch, leading)
    with pytest.raises(kube.NotLeading):
        built.shards.create("prod", SERVICE)
    with pytest.raises(kube.NotLeading):
        kube.OwnObjects().annotate("shardsets", "prod", "kv", {"a": "b"})
    assert server.sent == []
    leading[0] = True
    built.shards.create("prod", SERVICE)
    kube.OwnObjects().annotate("shardsets", "prod", "kv", {"a": "b"})
    assert [(method, path) for method, path, _ in server.writes()] == [
        ("POST", "/api/v1/namespaces/prod/services"),
        ("PATCH", "/apis/adaptive.dev/v1alpha1/namespaces/prod/shardsets/kv")]


def test_before_run_shares_its_client_no_write_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube, "_shared_client", None)
    server = KubeHttp()
    kube.api_client().rest_client = server
    with pytest.raises(kube.NotLeading):
        client.CoreV1Api(kube.api_client()).delete_namespaced_service("kv-0", "prod")
    client.CoreV1Api(kube.api_client()).read_namespaced_service("kv-0", "prod")
    assert [(method, path) for method, path, _ in server.sent] == [
        ("GET", "/api/v1/namespaces/prod/services/kv-0")]
