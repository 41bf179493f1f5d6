"""Which Prometheus a service may query, with which credentials, and what its queries become.

Operator-side, built once by `adaptive-operator run` (a `PrometheusAccess`): the operator-wide
URL and its credentials (files of a mounted Secret), the allowlist of endpoints a service's
`spec.prometheus.url` may name (by default only the operator-wide one), and the query scope
(`namespace`: every selector of a tenant's query gets `namespace="<its namespace>"`). A
service's credentials are keys of a Secret in its own namespace. Credentials go into request
headers only: never into a message.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator.adapters.kube import reading_client
from adaptive_operator.adapters.prometheus import MetricError
from adaptive_operator.adapters.prometheus_http import Endpoint, basic_header, redact
from adaptive_operator.adapters.promql_scope import ScopeError, scoped
from adaptive_operator.adapters.telemetry import API_REQUESTS
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.prometheus_ref import PrometheusRef
from adaptive_operator.domain.common.query_template import TargetValues, TemplateError, render

Scope = Literal["none", "namespace"]
SECRET_TTL_SECONDS = 30.0  # a rotated Secret is read again within this time
ANY = "*"


@dataclass(frozen=True)
class AccessSettings:
    url: str = "http://127.0.0.1:9090"
    allowed: tuple[str, ...] = ()  # spec URLs allowed besides `url`; "*" allows any
    credentials_dir: str | None = None  # token, username, password, ca.crt, header-<Name>
    insecure_skip_verify: bool = False
    scope: Scope = "none"


# --- the allowlist ----------------------------------------------------------------------------


def _parts(url: str) -> tuple[str, str, int | None, str] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    return parts.scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def allowed(url: str, settings: AccessSettings) -> bool:
    """The URL is the operator-wide one or under an allowlisted endpoint (same scheme, host
    and port, and the entry's path or below it)."""
    if ANY in settings.allowed:
        return True
    wanted = _parts(url)
    for entry in (settings.url, *settings.allowed):
        have = _parts(entry)
        if wanted is None or have is None or wanted[:3] != have[:3]:
            continue
        if wanted[3] == have[3] or wanted[3].startswith(have[3] + "/"):
            return True
    return False


# --- credentials -----------------------------------------------------------------------------


def _clean(value: str, where: str, multiline: bool = False) -> str:
    """A credential as sent: without the trailing newline files and Secrets often carry, and
    refused when it holds control characters (it would end the header)."""
    value = value.strip()
    if not multiline and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise MetricError("CredentialsInvalid", f"{where} holds control characters")
    return value


def _read_file(folder: Path, name: str) -> str | None:
    path = folder / name
    return path.read_text() if path.is_file() else None


def operator_endpoint(settings: AccessSettings) -> Endpoint:
    """The operator-wide Prometheus, with the credentials of its mounted folder, read at each
    call (a rotated Secret volume is picked up)."""
    if settings.credentials_dir is None:
        return Endpoint(settings.url, insecure_skip_verify=settings.insecure_skip_verify)
    folder = Path(settings.credentials_dir)
    try:
        values = {name: _read_file(folder, name) for name in ("token", "username", "password",
                                                            "ca.crt")}
        headers = [(path.name.removeprefix("header-"), path.read_text())
                   for path in sorted(folder.glob("header-*")) if path.is_file()]
    except OSError as err:
        raise MetricError("CredentialsUnavailable", f"cannot read the operator's Prometheus "
                                                    f"credentials: {type(err).__name__}") from err
    return Endpoint(settings.url, _headers(values, headers, "the operator's credentials file"),
                    values["ca.crt"], settings.insecure_skip_verify)


def _headers(values: dict[str, str | None], extra: Sequence[tuple[str, str]],
             where: str) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    token, user, password = values.get("token"), values.get("username"), values.get("password")
    if token is not None:
        found.append(("Authorization", f"Bearer {_clean(token, where)}"))
    if user is not None and password is not None:
        found.append(basic_header(_clean(user, where), _clean(password, where)))
    found.extend((name, _clean(value, where)) for name, value in extra)
    return tuple(found)


def secret_reader(api: client.ApiClient) -> SecretReader:
    """Secrets read through `api`."""
    return functools.partial(read_secret, api)


def read_secret(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    """A Secret's data, decoded, read from the API server."""
    try:
        API_REQUESTS.labels("get", "secrets").inc()
        found = client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ApiException as err:
        raise MetricError("CredentialsUnavailable", f"cannot read the Secret {name}: "
                                                    f"{err.status} {err.reason}") from err
    try:
        return {key: base64.b64decode(value).decode() for key, value in (found.data or {}).items()}
    except (ValueError, UnicodeDecodeError) as err:
        raise MetricError("CredentialsInvalid", f"the Secret {name} holds a value that is not "
                                                "UTF-8 text") from err


def _service_endpoint(ref: PrometheusRef, data: dict[str, str]) -> Endpoint:
    """A service's endpoint, with the credentials its Secret's `data` holds."""
    auth = ref.auth
    assert auth is not None
    name = auth.secret_ref.name

    def key(wanted: str | None) -> str | None:
        if wanted is None:
            return None
        if wanted not in data:
            raise MetricError("CredentialsUnavailable", f"the Secret {name} has no key {wanted}")
        return data[wanted]

    values = {"token": key(auth.bearer_token_key), "username": key(auth.username_key),
              "password": key(auth.password_key)}
    extra = [(header, key(wanted) or "") for header, wanted in sorted(auth.headers.items())]
    ca = key(auth.ca_key)
    return Endpoint(ref.url, _headers(values, extra, f"the Secret {name}"),
                    _clean(ca, name, multiline=True) if ca is not None else None,
                    ref.insecure_skip_verify)


# --- what a service's queries become ---------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where a service's queries go, and how its query texts are filled in and scoped."""

    endpoint: Endpoint
    values: TargetValues
    scope: Scope = "none"

    def query(self, text: str) -> str:
        try:
            filled = render(text, self.values)
        except TemplateError as err:
            raise MetricError("InvalidQueryTemplate", str(err)) from err
        if self.scope == "none":
            return filled
        try:
            return scoped(filled, self.values.namespace)
        except ScopeError as err:
            raise MetricError("QueryNotScoped", f"{err} (the operator scopes every query to "
                                                "the service's namespace)") from err

    def scaling_spec(self, spec: AdaptiveServiceSpec) -> AdaptiveServiceSpec:
        """The spec with its scaling queries as they are sent (the first that cannot be filled
        in or scoped raises, naming its metric)."""
        metrics = []
        for metric in spec.metrics:
            try:
                metrics.append(metric.model_copy(update={"query": self.query(metric.query)}))
            except MetricError as err:
                raise MetricError(err.reason, f"metric {metric.name}: {err.message}") from err
        return spec.model_copy(update={"metrics": metrics})


SecretReader = Callable[[str, str], dict[str, str]]


class PrometheusAccess:
    """The operator's Prometheus settings, and the Secrets' short cache (`run` builds one)."""

    def __init__(self, settings: AccessSettings | None = None,
                 read: SecretReader | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or AccessSettings()
        self._read, self._clock = read or secret_reader(reading_client()), clock
        self._secrets: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, decoded; cached for SECRET_TTL_SECONDS."""
        now = self._clock()
        kept = self._kept_secret(namespace, name, now)
        if kept is not None:
            return kept
        data = self._read(namespace, name)
        with self._lock:
            self._secrets[(namespace, name)] = (now, data)
        return data

    def _kept_secret(self, namespace: str, name: str, now: float) -> dict[str, str] | None:
        with self._lock:
            kept = self._secrets.get((namespace, name))
        return kept[1] if kept is not None and now - kept[0] < SECRET_TTL_SECONDS else None

    def _blocks(self, namespace: str, ref: PrometheusRef | None) -> bool:
        """Whether `endpoint_for` would read a Secret from the API server (not cached)."""
        if ref is None or ref.auth is None:
            return False
        return self._kept_secret(namespace, ref.auth.secret_ref.name, self._clock()) is None

    def operator_endpoint(self) -> Endpoint:
        return operator_endpoint(self.settings)

    def endpoint_for(self, namespace: str, ref: PrometheusRef | None) -> Endpoint:
        """The endpoint a service's queries go to (blocking: it may read a Secret)."""
        if ref is None:
            return self.operator_endpoint()
        if not allowed(ref.url, self.settings):
            raise MetricError("PrometheusNotAllowed", f"{redact(ref.url)} is not on the "
                                                      "operator's allowlist of Prometheus "
                                                      "endpoints (--prometheus-allowed-url)")
        if ref.auth is None:
            return Endpoint(ref.url, insecure_skip_verify=ref.insecure_skip_verify)
        return _service_endpoint(ref, self.secret(namespace, ref.auth.secret_ref.name))

    async def source_for(self, namespace: str, spec: AdaptiveServiceSpec,
                         pods: Sequence[str] | None = None) -> Source:
        # Only a Secret read blocks: every other endpoint is made in place, as a hop to a worker
        # thread costs the loop more than the call (several per service and sync).
        if self._blocks(namespace, spec.prometheus):
            endpoint = await asyncio.to_thread(self.endpoint_for, namespace, spec.prometheus)
        else:
            endpoint = self.endpoint_for(namespace, spec.prometheus)
        values = TargetValues(namespace, spec.scale_target_ref.name, pods)
        return Source(endpoint, values, self.settings.scope)

    async def health_queries(self, namespace: str, spec: AdaptiveServiceSpec,
                             metrics: dict[str, str],
                             pods: Sequence[str] | None) -> tuple[Endpoint, dict[str, str]]:
        """The endpoint and the health queries as sent: placeholders filled in with the
        target's namespace, name and pods, scoped when the operator scopes queries."""
        source = await self.source_for(namespace, spec, pods)
        return source.endpoint, {name: source.query(query) for name, query in metrics.items()}

    def operator_query(self, namespace: str, name: str, query: str) -> str:
        """A ShardSet's load query as sent to the operator-wide Prometheus (filled in,
        scoped)."""
        values = TargetValues(namespace, name)
        return Source(Endpoint(self.settings.url), values, self.settings.scope).query(query)
