"""`adaptive-operator run` hands its Prometheus settings to what sends the queries: with
`--query-scope namespace` (or env QUERY_SCOPE) a service's queries, healing's and a ShardSet's
are scoped to its namespace; the operator-wide credentials folder and the allowlist reach the
endpoint a service's queries go to. Only what `run` starts besides is replaced by a fake; the
queries are asked for while kopf would be running."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kopf
import pytest

from adaptive_operator import logs
from adaptive_operator.adapters import health, kube, leader
from adaptive_operator.adapters.prometheus import MetricError
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.prometheus_ref import PrometheusRef
from adaptive_operator.cli import build_parser
from adaptive_operator.commands import run as run_command
from adaptive_operator.handlers import runtime

SPEC = AdaptiveServiceSpec.model_validate({
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    "maxReplicas": 5,
    "metrics": [{"name": "load", "query": "sum(rate(http_requests_total[1m]))",
                 "targetPerReplica": 10}]})


class Seen:
    """What the query senders of the runtime `run` hands to kopf give."""

    def __init__(self) -> None:
        self.scaling = ""
        self.health: dict[str, str] = {}
        self.shard_set = ""
        self.headers: dict[str, str] = {}
        self.off_list = ""
        self.load_access = False

    def __call__(self, memo: kopf.Memo, **_: Any) -> None:
        access = runtime.of(memo).prometheus
        source = asyncio.run(access.source_for("team-a", SPEC))
        self.scaling = source.scaling_spec(SPEC).metrics[0].query
        _endpoint, self.health = asyncio.run(access.health_queries(
            "team-a", SPEC, {"cpu": 'avg(x{pod=~"{{pods}}"})'}, ["web-1"]))
        self.shard_set = access.operator_query("team-a", "kv", "sum(load)")
        self.headers = dict(access.endpoint_for("team-a", None).headers)
        # The ShardSets' load reader asks the same operator-wide Prometheus.
        self.load_access = getattr(runtime.of(memo).read_load, "access", None) is access
        try:
            access.endpoint_for("team-a", PrometheusRef(url="http://elsewhere:9090"))
        except MetricError as err:
            self.off_list = err.reason


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Seen:
    found = Seen()
    monkeypatch.setattr(kopf, "run", found)
    for module, name in [(logs, "configure"), (health, "serve"), (kube, "load_config")]:
        monkeypatch.setattr(module, name, lambda *_, **__: None)
    monkeypatch.setattr(leader, "may_act", lambda elector: lambda: True)
    return found


def run(*more: str) -> int:
    return run_command.run(build_parser().parse_args(
        ["run", "--metrics-port", "0", "--leader-election", "false", *more]))


def test_query_scope_namespace_scopes_every_query_run_sends(seen: Seen) -> None:
    assert run("--query-scope", "namespace") == 0
    assert seen.scaling == 'sum(rate(http_requests_total{namespace="team-a"}[1m]))'
    assert seen.health == {"cpu": 'avg(x{pod=~"web-1",namespace="team-a"})'}
    assert seen.shard_set == 'sum(load{namespace="team-a"})'


def test_query_scope_is_read_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, seen: Seen) -> None:
    monkeypatch.setenv("QUERY_SCOPE", "namespace")
    assert run() == 0
    assert seen.shard_set == 'sum(load{namespace="team-a"})'


def test_without_a_scope_queries_go_as_written(seen: Seen) -> None:
    assert run() == 0
    assert seen.scaling == "sum(rate(http_requests_total[1m]))"
    assert seen.shard_set == "sum(load)"


def test_the_credentials_folder_and_the_allowlist_reach_the_endpoints(
        tmp_path: Path, seen: Seen) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    (tmp_path / "header-X-Scope-OrgID").write_text("platform")
    assert run("--prometheus-url", "https://prometheus:9090",
               "--prometheus-credentials-dir", str(tmp_path)) == 0
    assert seen.headers == {"Authorization": "Bearer s3cret", "X-Scope-OrgID": "platform"}
    assert seen.off_list == "PrometheusNotAllowed"
    assert seen.load_access
