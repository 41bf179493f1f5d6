"""Fakes of the runtime's ports for handler tests (instead of patching module functions)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import kopf
import urllib3
from kubernetes import client
from kubernetes.client import rest

from adaptive_operator.adapters import kube
from adaptive_operator.adapters.prometheus import RangeSeries
from adaptive_operator.domain.common.events import Event
from adaptive_operator.handlers.runtime import Runtime


@dataclass
class FixedClock:
    """A clock that moves only when told."""

    at: float
    ticks: float = 0.0

    def now(self) -> float:
        return self.at

    def monotonic(self) -> float:
        return self.ticks


class NoShards:
    """For tests of handlers that own no ShardSet: any call is a bug."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected ShardSet call: {name}")


class Ranges:
    """Range queries (history backfills) answered by `answer`, as a RangeBatcher's `series`."""

    def __init__(self, answer: Callable[..., Awaitable[RangeSeries]]) -> None:
        self.answer = answer

    async def series(self, url: Any, query: str, start: float, end: float,
                     step: float) -> RangeSeries:
        return await self.answer(url, query, start, end, step)


def memo_of(runtime: Runtime) -> kopf.Memo:
    return kopf.Memo(runtime=runtime)


class OwnWrites:
    """The runtime's writes to our own objects (status, annotations, Events), recorded."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[str, Any]]] = []  # ("status" | "annotations", body)
        self.events: list[Event] = []

    def patch_status(self, plural: str, namespace: str, name: str,
                     status: Mapping[str, Any]) -> None:
        self.writes.append(("status", dict(status)))

    def annotate(self, plural: str, namespace: str, name: str,
                 annotations: Mapping[str, str]) -> None:
        self.writes.append(("annotations", dict(annotations)))

    def post_event(self, body: Mapping[str, Any], event: Event, now: float) -> None:
        self.events.append(event)

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        """The writes since the last take."""
        taken, self.writes = self.writes, []
        return taken


Reply = Callable[[str, str, Any], tuple[int, Any]]  # (method, path, body) -> (status, JSON)


class KubeHttp:
    """The HTTP boundary of a kubernetes ApiClient (its `rest_client`): what was sent, answered
    by `reply` (by default 200 and an empty object)."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.sent: list[tuple[str, str, Any]] = []  # (method, path, body)
        self.reply: Reply = reply or (lambda *_: (200, {}))

    def request(self, method: str, url: str, headers: Any = None, body: Any = None,
                post_params: Any = None, _request_timeout: Any = None) -> rest.RESTResponse:
        path = urlsplit(url).path
        self.sent.append((method, path, body))
        status, answer = self.reply(method, path, body)
        return rest.RESTResponse(urllib3.HTTPResponse(
            body=json.dumps(answer).encode(), status=status, reason="test",
            headers={"Content-Type": "application/json"}))

    def writes(self) -> list[tuple[str, str, Any]]:
        return [sent for sent in self.sent if sent[0] not in kube.READS]


def fenced_client(server: KubeHttp, may_write: Callable[[], bool]) -> kube.FencedApiClient:
    """The operator's fenced client, its HTTP answered by `server`."""
    configuration = client.Configuration()
    configuration.host = "https://api.invalid"
    api = kube.FencedApiClient(configuration, may_write)
    api.rest_client = server  # type: ignore[assignment]
    return api
