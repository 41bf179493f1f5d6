"""Fakes of the runtime's ports for handler tests (instead of patching module functions)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import kopf
import urllib3
from kubernetes import client
from kubernetes.client import rest
from kubernetes.client.exceptions import ApiException

from adaptive_operator.adapters import kube, workload
from adaptive_operator.adapters.prometheus import MetricError, RangeSeries, Sample
from adaptive_operator.domain.common.events import Event
from adaptive_operator.handlers.runtime import Runtime
from adaptive_operator.handlers.warmup import WarmUps


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


def kopf_body(raw: Mapping[str, Any]) -> kopf.Body:
    """kopf's Body of an object as the API server sends it: kopf types a raw body as a TypedDict
    that lacks fields real ones have (`metadata.generation`)."""
    return kopf.Body(cast(kopf.RawBody, raw))


@dataclass
class Metrics:
    """Each query's value now, as the runtime's `totals` answers it; a query not listed has
    `default`, or fails as Prometheus would (an empty result) without one."""

    values: dict[str, float] = field(default_factory=dict)
    default: float | None = None
    asked: list[str] = field(default_factory=list)

    async def total(self, url: Any, query: str, max_age: float) -> Sample:
        self.asked.append(query)
        value = self.values.get(query, self.default)
        if value is None:
            raise MetricError("EmptyResult", f"{query} returned no series")
        return Sample(value)


@dataclass
class Cluster:
    """An API server as the AdaptiveService handlers see it: the target and its pods, the
    service's annotations, and what the handlers wrote (status patches, Events, replica
    writes, evictions). One object serves as the runtime's workloads, status and events."""

    replicas: int = 2
    selector: str = "app=web"
    pods: list[dict[str, Any]] = field(default_factory=list)
    sets: list[dict[str, Any]] = field(default_factory=list)  # ReplicaSets, or revisions
    hpa: str | None = None  # a HorizontalPodAutoscaler scaling the target
    missing: bool = False  # the target does not exist
    broken: Exception | None = None  # what reading the target raises (an outage, a bug)
    annotations: dict[str, str] = field(default_factory=dict)
    name: str = "web"  # the AdaptiveService synced
    gone: bool = False  # it was deleted (its fresh read finds nothing)
    upstreams: dict[str, dict[str, Any]] = field(default_factory=dict)  # other services, by name
    # Pod -> the Eviction API's refusal (by a budget, or as not the target's).
    refusals: dict[str, workload.Refusal] = field(default_factory=dict)
    reads: int = 0  # fresh reads of the service itself
    ledgers: list[str] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    scaled: list[int] = field(default_factory=list)
    evicted: list[tuple[str, str]] = field(default_factory=list)  # (pod, uid)
    writes: list[str] = field(default_factory=list)  # every write's kind, in order

    def runtime(self, **ports: Any) -> Runtime:
        return Runtime(shards=NoShards(), workloads=self, status=self, events=self, **ports)

    async def conflicting_hpa(self, namespace: str, target: kube.TargetRef, lists: Any,
                              max_age: float = 0.0) -> str | None:
        return self.hpa

    async def read_scale(self, namespace: str, target: kube.TargetRef) -> kube.Scale:
        if self.broken is not None:
            raise self.broken
        if self.missing:
            raise kube.TargetError("TargetNotFound", f"{target.kind} {target.name} not found")
        return kube.Scale(self.replicas, self.replicas, self.selector)

    async def count_pods(self, namespace: str, scale: kube.Scale) -> kube.PodCounts:
        ready = sum(1 for pod in self.pods if _ready(pod))
        return kube.PodCounts(ready, len(self.pods) - ready)

    async def deployment_pods(self, namespace: str,
                              name: str) -> tuple[list[Any], list[Any]]:
        return self.pods, self.sets

    pods_and_replica_sets = statefulset_pods_and_revisions = deployment_pods

    async def pods_of(self, namespace: str, selector: str) -> list[Any]:
        assert selector == self.selector
        return self.pods

    async def read_service(self, plural: str, namespace: str,
                           name: str) -> dict[str, Any] | None:
        if name != self.name:
            return self.upstreams.get(name)
        self.reads += 1
        return None if self.gone else {"metadata": {"annotations": dict(self.annotations)}}

    async def write_scale(self, namespace: str, target: kube.TargetRef, replicas: int) -> None:
        self.scaled.append(replicas)
        self.writes.append("scale")
        self.replicas = replicas

    async def annotate(self, plural: str, namespace: str, name: str, key: str,
                       value: str) -> None:
        self.annotations[key] = value
        self.ledgers.append(value)
        self.writes.append("annotate")

    async def evict(self, namespace: str, pods: tuple[str, ...], owner: Any = None,
                    uids: Any = None) -> list[workload.Refusal]:
        self.writes.append("evict")
        refused = [self.refusals[pod] for pod in pods if pod in self.refusals]
        self.evicted.extend((pod, (uids or {}).get(pod, "")) for pod in pods
                            if pod not in self.refusals)
        return refused

    async def evict_owned(self, namespace: str, pods: tuple[str, ...], target: Any,
                          uids: Any = None) -> list[workload.Refusal]:
        return await self.evict(namespace, pods, None, uids)

    async def patch_status(self, plural: str, namespace: str, name: str,
                           status: dict[str, Any]) -> None:
        self.statuses.append(status)
        self.writes.append("status")

    async def post(self, body: Mapping[str, Any], event: Event) -> None:
        self.events.append(event)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected cluster call: {name}")


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class OwnWrites:
    """The runtime's status, annotations and Events of a ShardSet, recorded."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, dict[str, Any]]] = []  # ("status" | "annotations", body)
        self.events: list[Event] = []

    async def patch_status(self, plural: str, namespace: str, name: str,
                           status: dict[str, Any]) -> None:
        self.writes.append(("status", dict(status)))

    async def patch_annotations(self, plural: str, namespace: str, name: str,
                                annotations: Mapping[str, str]) -> None:
        self.writes.append(("annotations", dict(annotations)))

    async def post(self, body: Mapping[str, Any], event: Event) -> None:
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
        self.timeouts: list[Any] = []  # each request's client-side timeout, as sent
        self.reply: Reply = reply or (lambda *_: (200, {}))

    def request(self, method: str, url: str, headers: Any = None, body: Any = None,
                post_params: Any = None, _request_timeout: Any = None) -> rest.RESTResponse:
        path = urlsplit(url).path
        self.sent.append((method, path, body))
        self.timeouts.append(_request_timeout)
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


T = TypeVar("T")


class HeldFits(WarmUps):
    """The runtime's fit gate, each fit held until `release` is set; counts the fits asked."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.asked = 0

    async def fit_made(self, make: Callable[[], Callable[[], T]]) -> T:
        self.asked += 1
        await self.release.wait()
        return await super().fit_made(make)


class LeaseApi:
    """coordination.k8s.io Leases in memory: a write over a changed record is refused (409)."""

    def __init__(self) -> None:
        self.leases: dict[str, client.V1Lease] = {}
        self.version = 0
        self.down = False
        self.lists = 0

    def _stored(self, lease: client.V1Lease) -> client.V1Lease:
        self.version += 1
        kept = copy.deepcopy(lease)
        assert kept.metadata is not None and kept.metadata.name is not None
        kept.metadata.resource_version = str(self.version)
        self.leases[kept.metadata.name] = kept
        return copy.deepcopy(kept)

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        if self.down:
            raise OSError("connection refused")
        if name not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.leases[name])

    def list_namespaced_lease(self, namespace: str) -> client.V1LeaseList:
        self.lists += 1
        if self.down:
            raise OSError("connection refused")
        return client.V1LeaseList(items=[copy.deepcopy(lease) for lease in self.leases.values()])

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        assert body.metadata is not None
        if body.metadata.name in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._stored(body)

    def replace_namespaced_lease(self, name: str, namespace: str,
                                 body: client.V1Lease) -> client.V1Lease:
        kept = self.leases[name].metadata
        assert kept is not None and body.metadata is not None
        if kept.resource_version != body.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        return self._stored(body)

    def holders(self, shards: int = 4) -> list[str]:
        """Who holds each of the `shards` shard Leases named op-shard-i ("" when none)."""
        return [self.holder(f"op-shard-{i}") for i in range(shards)]

    def holder(self, name: str) -> str:
        spec = self.leases[name].spec if name in self.leases else None
        return (spec.holder_identity or "") if spec is not None else ""
