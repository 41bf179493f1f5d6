"""Writes to our own objects (status, annotations, Events) go through the leadership-fenced
client, checked where the client meets HTTP: while this replica leads they are sent as kopf sent
them, and once it does not, nothing is sent at all."""

from __future__ import annotations

import ast
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import kopf
import pytest
import structlog
from kopf._cogs.clients import api as kopf_api
from kopf._cogs.clients import events as kopf_events
from kopf._cogs.structs import bodies, references

from adaptive_operator.adapters import kube
from adaptive_operator.domain.common.events import Event

from fakes import KubeHttp, fenced_client, kopf_body

BODY: dict[str, Any] = {
    "apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet",
    "metadata": {"name": "cache", "namespace": "prod", "uid": "u-1"},
}
SHARD_SET = "/apis/adaptive.dev/v1alpha1/namespaces/prod/shardsets/cache"
LONG = "x" * 600 + "y" * 600  # over kopf's cut of 1,024 characters


def own_objects(leading: list[bool]) -> tuple[KubeHttp, kube.OwnObjects]:
    server = KubeHttp()
    return server, kube.OwnObjects(fenced_client(server, lambda: leading[0]))


def test_status_annotations_and_events_are_sent_while_leading() -> None:
    server, own = own_objects([True])
    own.patch_status("shardsets", "prod", "cache", {"shards": 4})
    own.annotate("shardsets", "prod", "cache", {"adaptive.dev/rebalance": "{}"})
    own.post_event(BODY, Event("Normal", "Resharding", "moved"))
    status, annotations, (method, path, event) = server.writes()
    assert status == ("PATCH", f"{SHARD_SET}/status", {"status": {"shards": 4}})
    assert annotations == ("PATCH", SHARD_SET,
                           {"metadata": {"annotations": {"adaptive.dev/rebalance": "{}"}}})
    assert (method, path) == ("POST", "/api/v1/namespaces/prod/events")
    assert (event["type"], event["reason"], event["message"]) == ("Normal", "Resharding", "moved")
    assert event["involvedObject"] == {"apiVersion": "adaptive.dev/v1alpha1", "kind": "ShardSet",
                                       "name": "cache", "uid": "u-1", "namespace": "prod"}
    assert event["eventTime"] == event["firstTimestamp"] == event["lastTimestamp"]


def test_nothing_is_sent_once_not_leading() -> None:
    leading = [False]
    server, own = own_objects(leading)
    with pytest.raises(kube.NotLeading):
        own.patch_status("shardsets", "prod", "cache", {"shards": 4})
    with pytest.raises(kube.NotLeading):
        own.annotate("shardsets", "prod", "cache", {"adaptive.dev/rebalance": "{}"})
    own.post_event(BODY, Event("Warning", "LoadQueryFailed", "no series"))  # only logged
    assert server.sent == []
    leading[0] = True
    own.post_event(BODY, Event("Warning", "LoadQueryFailed", "no series"))
    assert len(server.writes()) == 1


def test_a_refused_event_is_logged_not_raised() -> None:
    server = KubeHttp(lambda *_: (403, {"kind": "Status", "reason": "Forbidden"}))
    kube.OwnObjects(fenced_client(server, lambda: True)).post_event(
        BODY, Event("Normal", "Resharding", "moved"))
    assert len(server.sent) == 1


def test_a_keyed_event_has_one_name_and_is_said_once() -> None:
    """A keyed Event (one fact: a replica write, a healing action) is named after its object and
    key; the API server refuses the second telling (409), which is no failure to report."""
    names: set[str] = set()

    def reply(method: str, path: str, body: Any) -> tuple[int, Any]:
        name = body["metadata"]["name"]
        if name in names:
            return 409, {"kind": "Status", "reason": "AlreadyExists"}
        names.add(name)
        return 201, body

    server = KubeHttp(reply)
    own = kube.OwnObjects(fenced_client(server, lambda: True))
    fact = Event("Normal", "Scaled", "Deployment web 1 -> 4: load", "scaled:1:4:t")
    with structlog.testing.capture_logs() as logged:
        own.post_event(BODY, fact)
        own.post_event(BODY, replace(fact, message="found applied and recorded now"))
        own.post_event(BODY, replace(fact, key="scaled:4:2:t"))
        own.post_event({**BODY, "metadata": {**BODY["metadata"], "uid": "u-2"}}, fact)
    assert logged == []
    sent = [body["metadata"] for _, _, body in server.sent]
    assert len(sent) == 4 and len(names) == 3
    assert sent[0] == sent[1] and "generateName" not in sent[0]
    assert sent[0]["name"].startswith("kopf-event-") and len(sent[0]["name"]) <= 63


def test_an_unkeyed_event_that_conflicts_is_reported() -> None:
    server = KubeHttp(lambda *_: (409, {"kind": "Status", "reason": "AlreadyExists"}))
    with structlog.testing.capture_logs() as logged:
        kube.OwnObjects(fenced_client(server, lambda: True)).post_event(
            BODY, Event("Normal", "Resharding", "moved"))
    assert [entry["event"] for entry in logged] == ["event not posted"]
    assert server.sent[0][2]["metadata"] == {"namespace": "prod", "generateName": "kopf-event-"}


async def test_an_event_is_posted_as_kopf_posted_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same path and body as `kopf.event` sent (bar the time), a long message cut the same way:
    `kubectl describe` and whatever reads the Events see no change."""
    posted: list[tuple[str, dict[str, Any]]] = []

    async def post(*, url: str, payload: dict[str, Any], **_: Any) -> None:
        posted.append((url, payload))

    monkeypatch.setattr(kopf_api, "post", post)  # the client module kopf_events posts with
    await kopf_events.post_event(
        ref=bodies.build_object_reference(kopf_body(BODY)), type="Warning",
        reason="LoadQueryFailed", message=LONG,
        resource=references.Resource("", "v1", "events", namespaced=True),
        settings=kopf.OperatorSettings(), logger=logging.getLogger(__name__))
    server, own = own_objects([True])
    own.post_event(BODY, Event("Warning", "LoadQueryFailed", LONG))
    ((url, theirs),) = posted
    ((method, path, ours),) = server.sent
    assert (method, path) == ("POST", url)
    stamps = {"firstTimestamp", "lastTimestamp", "eventTime"}
    assert {k: v for k, v in ours.items() if k not in stamps} == {
        k: v for k, v in theirs.items() if k not in stamps}
    assert len(ours["message"]) == 1024 and set(ours) == set(theirs)


def test_kopf_keeps_no_progress_nor_last_handled_state_for_our_handlers() -> None:
    """Our handlers are daemons and a timer, whose state kopf keeps in memory, and startup
    activities: no change handler, so kopf never writes its progress or last-handled annotations
    (docs/security.md says what it still writes, and why that cannot act on a workload)."""
    from adaptive_operator.handlers import (  # noqa: F401 (importing registers the handlers)
        adaptive_service,
        healing,
        settings,
        shard_set,
    )

    registry = kopf.get_default_registry()
    for kind in (registry._changing, registry._watching, registry._indexing,
                 registry._webhooks):
        assert list(kind.get_all_handlers()) == []
    spawning = {(type(h).__name__, h.id) for h in registry._spawning.get_all_handlers()}
    assert spawning == {("DaemonHandler", "scaling_daemon"), ("DaemonHandler", "healing"),
                        ("TimerHandler", "reconcile_shard_set")}


def _kopf_writers_in(tree: ast.AST) -> list[str]:
    """kopf's Event helpers called, and kopf's `patch` taken by a handler."""
    return _kopf_posters_in(tree) + _handlers_taking_patch_in(tree)


def _kopf_posters_in(tree: ast.AST) -> list[str]:
    return [f"kopf.{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "kopf" and node.attr in KOPF_POSTERS]


def _handlers_taking_patch_in(tree: ast.AST) -> list[str]:
    """Decorated functions (handlers) with a `patch` parameter."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.decorator_list:
            params = {arg.arg for arg in (*node.args.args, *node.args.kwonlyargs)}
            found += [f"{node.name}(patch)"] if "patch" in params else []
    return found


KOPF_POSTERS = {"event", "info", "warn", "exception"}


def test_no_handler_writes_through_kopfs_client() -> None:
    """kopf's Event helpers and a handler's `patch` are sent by kopf's own client, which the
    leadership does not fence: the code uses neither (it writes through the runtime's ports)."""
    source = Path(kube.__file__).parents[1]
    found = {str(path.relative_to(source)): writers for path in sorted(source.rglob("*.py"))
             if (writers := _kopf_writers_in(ast.parse(path.read_text())))}
    assert found == {}
    assert _kopf_writers_in(ast.parse(
        "@kopf.timer('g', 'v', 'p')\nasync def h(patch, **_):\n    kopf.warn(b, reason='r')\n"
    )) == ["kopf.warn", "h(patch)"]
