"""The Kubernetes API, through the official client, always off kopf's event loop.

Every call here is blocking inside and awaited outside (`asyncio.to_thread`), so one slow API
call never stalls the other services' reconciliations; and bounded (`TimedApiClient`), so one
that is never answered does not hold a worker thread for good.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from adaptive_operator import logs
from adaptive_operator.adapters import discovery
from adaptive_operator.adapters.telemetry import API_REQUESTS
from adaptive_operator.domain.common.events import Event, event_manifest

GROUP = "adaptive.dev"
VERSION = "v1alpha1"
log = logs.get(__name__)

# What a call raises when the API server answers with an error or not at all (restarting,
# a connection refused or cut): callers fail the sync and retry, never crash on it.
API_ERRORS: tuple[type[Exception], ...] = (ApiException, urllib3.exceptions.HTTPError, OSError)


class TargetError(Exception):
    """The scale target cannot be read or written; `reason` is CamelCase, for a condition."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class TargetRef:
    api_version: str
    kind: str
    name: str

    @property
    def group_version(self) -> tuple[str, str]:
        group, _, version = self.api_version.rpartition("/")
        return group, version



@dataclass(frozen=True)
class Scale:
    replicas: int  # desired, from spec
    status_replicas: int
    selector: str  # label selector of the target's pods
    # The same selector as the API's JSON (known for a Deployment read from the cache), so
    # the pods can be found in the cache too.
    label_selector: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PodCounts:
    ready: int
    unready: int
    # Per Ready pod, seconds from creation to its Ready transition (learns the look-ahead).
    startup_seconds: tuple[float, ...] = ()


def load_config() -> None:
    """In-cluster credentials when running in a pod, else $KUBECONFIG or ~/.kube/config."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


POOL_SIZE = 64
READS = frozenset({"GET", "HEAD", "OPTIONS"})
Timeout = tuple[float, float]  # (connect, read) seconds, as the client's `_request_timeout`
# Every request's bound when its call names none: an API server that takes the connection and
# never answers would otherwise hold a worker thread for good (enough of them, and no service is
# reconciled any more). A request is answered in well under a second when all is well, and the
# API server gives up on its own at 60 s; 30 s is kopf's own (`networking.request_timeout`).
# Watches name their own (a server-side timeout and a read timeout past it).
REQUEST_TIMEOUT: Timeout = (5.0, 30.0)
# Only a connection that failed is tried again (refused or timed out: nothing reached the
# server); a request that was sent is not, so a call takes at most one read timeout, and a
# server too slow to answer is not sent the same request again at once: the caller fails its
# sync and tries next period. (urllib3's default resends a GET or a PUT three times.)
RETRIES = urllib3.Retry(total=2, read=0)


class TimedApiClient(client.ApiClient):
    """An ApiClient whose every request has a client-side timeout: `timeout`, unless the call
    names its own. A request that times out raises urllib3's ReadTimeoutError or
    ConnectTimeoutError (or MaxRetryError over one), all among API_ERRORS."""

    def __init__(self, configuration: client.Configuration | None,
                 timeout: Timeout = REQUEST_TIMEOUT) -> None:
        super().__init__(configuration)
        self.timeout = timeout

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Any = None) -> Any:
        return super().call_api(method, url, header_params, body, post_params,
                                _request_timeout or self.timeout)


def configuration(retries: urllib3.Retry = RETRIES) -> client.Configuration:
    """The loaded credentials, with as many pooled connections as threads calling (else each
    extra one is a new TLS connection, discarded after use) and `retries`."""
    settings = client.Configuration.get_default_copy()
    settings.connection_pool_maxsize = POOL_SIZE
    settings.retries = retries
    return settings


class NotLeading(ApiException):
    """A write refused before it was sent: this replica no longer holds the lease for sure."""

    def __init__(self) -> None:
        super().__init__(status=0, reason="NotLeading: this replica is not the leader")


class FencedApiClient(TimedApiClient):
    """An ApiClient that refuses to send a write while `may_write` says no: a paused and
    deposed leader must not undo what the new one did. Timed as every client here."""

    def __init__(self, configuration: client.Configuration | None,
                 may_write: Callable[[], bool], timeout: Timeout = REQUEST_TIMEOUT) -> None:
        super().__init__(configuration, timeout)
        self._may_write = may_write

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() not in READS and not self._may_write():
            raise NotLeading()
        return super().call_api(method, url, *args, **kwargs)


def fenced_client(may_write: Callable[[], bool]) -> FencedApiClient:
    """A client over the loaded credentials whose writes `may_write` (the leadership) allows.
    One for every call: a client per call meant a new TLS connection, certificate loading and
    handshake for each request (most of the operator's CPU with hundreds of services)."""
    return FencedApiClient(configuration(), may_write)


def _never() -> bool:
    return False


def reading_client() -> FencedApiClient:
    """A client that reads with the loaded credentials and refuses every write: what a port
    uses when it was not handed the client `run` builds, so a write never goes out unfenced."""
    return fenced_client(_never)


def _describe(err: ApiException) -> str:
    return f"{err.status} {err.reason}"


def _resource(target: TargetRef, resolve: discovery.Resolve) -> discovery.Resource:
    """The target's resource by API discovery; a kind without /scale cannot be scaled."""
    try:
        resource = resolve(target.api_version, target.kind)
    except discovery.DiscoveryError as err:
        raise TargetError(err.reason, err.message) from err
    if not resource.scalable:
        raise TargetError("NotScalable", f"{target.kind} ({target.api_version}) has no /scale "
                                         "subresource: it cannot be scaled")
    return resource


def request(api: client.ApiClient, path: str, method: str, body: Any = None) -> Any:
    """A call by path (any group, the core one included) through `api`; the answer's JSON.
    Raises ApiException on an error status, as the typed calls do."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/merge-patch+json"
    params = api.param_serialize(method=method, resource_path=path, header_params=headers,
                                    body=body, auth_settings=["BearerToken"])
    response = api.call_api(*params)
    response.read()  # type: ignore[no-untyped-call]
    text = (response.data or b"").decode("utf-8")
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(http_resp=response, body=text, data=None)
    return json.loads(text) if text else None


def _read_scale(api: client.ApiClient, namespace: str, target: TargetRef,
                resolve: discovery.Resolve) -> Scale:
    resource = _resource(target, resolve)
    try:
        API_REQUESTS.labels("get", "scale").inc()
        body: Any = request(api, resource.path(namespace, target.name, "scale"), "GET")
    except ApiException as err:
        if err.status == 404:
            raise TargetError("TargetNotFound", f"{target.kind} {namespace}/{target.name} "
                                                "does not exist") from err
        raise TargetError("FailedGetScale", f"cannot read the scale of {target.kind} "
                                            f"{target.name}: {_describe(err)}") from err
    spec, status = body.get("spec", {}), body.get("status", {})
    return Scale(int(spec.get("replicas", 0)), int(status.get("replicas", 0)),
                 str(status.get("selector", "")))


async def read_scale(api: client.ApiClient, namespace: str, target: TargetRef,
                     resolve: discovery.Resolve) -> Scale:
    return await asyncio.to_thread(_read_scale, api, namespace, target, resolve)


def _write_scale(api: client.ApiClient, namespace: str, target: TargetRef, replicas: int,
                 resolve: discovery.Resolve) -> None:
    resource = _resource(target, resolve)
    try:
        API_REQUESTS.labels("patch", "scale").inc()
        request(api, resource.path(namespace, target.name, "scale"), "PATCH",
                {"spec": {"replicas": replicas}})
    except ApiException as err:
        raise TargetError("FailedUpdateScale", f"cannot scale {target.kind} {target.name}: "
                                               f"{_describe(err)}") from err


async def write_scale(api: client.ApiClient, namespace: str, target: TargetRef, replicas: int,
                      resolve: discovery.Resolve) -> None:
    await asyncio.to_thread(_write_scale, api, namespace, target, replicas, resolve)


HpaTargets = tuple[tuple[str, str, str], ...]  # (kind, name) scaled, and the HPA's name


def hpa_lister(api: client.ApiClient) -> Callable[[str], HpaTargets]:
    """A namespace's HorizontalPodAutoscalers, listed through `api`."""
    def list_hpas(namespace: str) -> HpaTargets:
        API_REQUESTS.labels("list", "horizontalpodautoscalers").inc()
        autoscaling = client.AutoscalingV2Api(api)
        hpas = autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items
        return tuple((hpa.spec.scale_target_ref.kind, hpa.spec.scale_target_ref.name,
                      str(hpa.metadata.name if hpa.metadata else "")) for hpa in hpas)
    return list_hpas


class HpaLists:
    """The HorizontalPodAutoscalers of each namespace, as last listed (the runtime's: one per
    process). One list per namespace serves every service there for `max_age` seconds (a
    namespace of 1,000 services would otherwise list its HPAs 1,000 times a period)."""

    def __init__(self, lister: Callable[[str], HpaTargets] | None = None) -> None:
        self._lister = lister or hpa_lister(reading_client())
        self._kept: dict[str, tuple[float, HpaTargets]] = {}

    async def conflicting(self, namespace: str, target: TargetRef,
                          max_age: float = 0.0) -> str | None:
        """The name of a HorizontalPodAutoscaler that already scales the target, if any."""
        now = time.monotonic()
        kept = self._kept.get(namespace)
        if kept is None or now - kept[0] > max_age:
            kept = (now, await asyncio.to_thread(self._lister, namespace))
            self._kept[namespace] = kept
        for kind, name, hpa in kept[1]:
            if kind == target.kind and name == target.name:
                return hpa
        return None


class OwnObjects:
    """Status, annotations and Events of the operator's own objects (AdaptiveServices,
    ShardSets), through a fenced client: kopf's `patch` and `kopf.event` would send them
    through kopf's own client, which no leadership fences. Blocking calls."""

    def __init__(self, api: client.ApiClient | None = None) -> None:
        self._api = api or reading_client()  # run's, fenced by the leadership

    def _objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self._api)

    def patch_status(self, plural: str, namespace: str, name: str,
                     status: Mapping[str, Any]) -> None:
        API_REQUESTS.labels("patch", "status").inc()
        # The answer is the whole object, unused: read raw, not parsed (parsing it was a tenth
        # of the operator's CPU at 300 services).
        _discard(self._objects().patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": dict(status)},
            _preload_content=False))

    def annotate(self, plural: str, namespace: str, name: str,
                 annotations: Mapping[str, str]) -> None:
        API_REQUESTS.labels("patch", plural).inc()
        _discard(self._objects().patch_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name,
            {"metadata": {"annotations": dict(annotations)}}, _preload_content=False))

    def post_event(self, body: Mapping[str, Any], event: Event) -> None:
        """An Event about `body`. Events only tell: a failure to post one is logged, as kopf
        did, and never fails the sync (nor does a refusal while not leading). A keyed Event
        that exists already was said (by this replica or one before it): not said again."""
        # Stamped with this host's time, as kopf did; the client takes the JSON as it is.
        manifest: Any = event_manifest(body, event, time.time())
        try:
            API_REQUESTS.labels("create", "events").inc()
            _discard(client.CoreV1Api(self._api).create_namespaced_event(
                manifest["metadata"]["namespace"], manifest, _preload_content=False))
        except ApiException as err:
            if not (err.status == 409 and event.key):
                _event_not_posted(event, manifest, err)
        except API_ERRORS as err:
            _event_not_posted(event, manifest, err)


def _event_not_posted(event: Event, manifest: Mapping[str, Any], err: Exception) -> None:
    log.warning("event not posted", reason=event.reason,
                object=manifest["involvedObject"].get("name"),
                error=logs.error_text(err))


def _discard(response: Any) -> None:
    response.read()
    response.release_conn()


def _read_service(api: client.ApiClient, plural: str, namespace: str,
                  name: str) -> dict[str, Any] | None:
    API_REQUESTS.labels("get", plural).inc()
    try:
        found: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return dict(found)


async def read_service(api: client.ApiClient, plural: str, namespace: str,
                       name: str) -> dict[str, Any] | None:
    """One of our own objects fresh from the API server (never a cached body: healing's ledger
    must not be stale), or None when it is absent."""
    return await asyncio.to_thread(_read_service, api, plural, namespace, name)
