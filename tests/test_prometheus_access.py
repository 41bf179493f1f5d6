"""Which Prometheus a service may reach and with which credentials: the operator's allowlist,
credentials from a Secret of the service's namespace or the operator's mounted files, and none
of them in a message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from adaptive_operator.adapters import prometheus_access
from adaptive_operator.adapters.prometheus import MetricError
from adaptive_operator.adapters.prometheus_access import AccessSettings, PrometheusAccess, allowed
from adaptive_operator.adapters.prometheus_http import Endpoint
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.prometheus_ref import PrometheusRef

T = TypeVar("T")

OPERATOR = AccessSettings(url="http://prometheus.monitoring:9090")


@pytest.mark.parametrize(("url", "settings", "ok"), [
    pytest.param("http://prometheus.monitoring:9090", OPERATOR, True, id="the-operator-url"),
    pytest.param("http://PROMETHEUS.monitoring:9090/", OPERATOR, True, id="case-and-slash"),
    pytest.param("http://evil.example:9090", OPERATOR, False, id="another-host"),
    pytest.param("http://prometheus.monitoring:9091", OPERATOR, False, id="another-port"),
    pytest.param("https://prometheus.monitoring:9090", OPERATOR, False, id="another-scheme"),
    pytest.param("http://169.254.169.254/latest", OPERATOR, False, id="metadata-service"),
    pytest.param("https://thanos:443/tenant-a", AccessSettings(allowed=("https://thanos/tenant-a",)),
                 True, id="default-port-filled-in"),
    pytest.param("https://thanos/tenant-a/api", AccessSettings(allowed=("https://thanos/tenant-a",)),
                 True, id="below-the-path"),
    pytest.param("https://thanos/tenant-ab", AccessSettings(allowed=("https://thanos/tenant-a",)),
                 False, id="path-prefix-is-not-below"),
    pytest.param("http://anything:1", AccessSettings(allowed=("*",)), True, id="star-allows-any"),
])
def test_the_allowlist(url: str, settings: AccessSettings, ok: bool) -> None:
    assert allowed(url, settings) is ok


def test_a_url_off_the_allowlist_is_refused_with_its_reason() -> None:
    with pytest.raises(MetricError) as caught:
        PrometheusAccess(OPERATOR).endpoint_for("team-a",
                                                PrometheusRef(url="http://evil.example:9090"))
    assert caught.value.reason == "PrometheusNotAllowed"
    assert "http://evil.example:9090" in caught.value.message


@pytest.mark.parametrize("url", ["http://u:p@prom:9090", "ftp://prom", "http://prom?x=1"])
def test_a_spec_url_carries_no_credentials_or_query(url: str) -> None:
    with pytest.raises(ValidationError):
        PrometheusRef(url=url)


@pytest.mark.parametrize("auth", [
    {"secretRef": {"name": "c"}, "usernameKey": "u"},
    {"secretRef": {"name": "c"}, "bearerTokenKey": "t", "usernameKey": "u", "passwordKey": "p"},
    {"secretRef": {"name": "c"}, "headers": {"Host": "h"}},
    {"secretRef": {"name": "c"}, "headers": {"X-A\r\nB": "h"}},
    {"secretRef": {"name": "Not_A_Name"}},
])
def test_inconsistent_credentials_are_refused(auth: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PrometheusRef.model_validate({"url": "http://p", "auth": auth})


def test_credentials_come_from_the_services_own_secret() -> None:
    asked: list[tuple[str, str]] = []

    def secret(namespace: str, name: str) -> dict[str, str]:
        asked.append((namespace, name))
        return {"token": "t0ken\n", "org": "team-a"}

    access = PrometheusAccess(AccessSettings(url="http://p", allowed=("https://thanos",)), secret)
    ref = PrometheusRef.model_validate({"url": "https://thanos", "auth": {
        "secretRef": {"name": "creds"}, "bearerTokenKey": "token",
        "headers": {"X-Scope-OrgID": "org"}}})
    endpoint = access.endpoint_for("team-a", ref)
    assert asked == [("team-a", "creds")]
    assert dict(endpoint.headers) == {"Authorization": "Bearer t0ken", "X-Scope-OrgID": "team-a"}
    assert "t0ken" not in repr(endpoint) and "t0ken" not in str(endpoint)
    missing = PrometheusRef.model_validate({"url": "https://thanos", "auth": {
        "secretRef": {"name": "creds"}, "bearerTokenKey": "nope"}})
    with pytest.raises(MetricError, match="has no key nope") as caught:
        access.endpoint_for("team-a", missing)
    assert caught.value.reason == "CredentialsUnavailable"
    assert asked == [("team-a", "creds")]  # the Secret read once, then from the cache


def test_a_credential_that_would_end_its_header_is_refused() -> None:
    access = PrometheusAccess(AccessSettings(url="http://p"),
                              lambda namespace, name: {"token": "a\r\nX-Evil: 1"})
    ref = PrometheusRef.model_validate({"url": "http://p", "auth": {
        "secretRef": {"name": "creds"}, "bearerTokenKey": "token"}})
    with pytest.raises(MetricError) as caught:
        access.endpoint_for("team-a", ref)
    assert caught.value.reason == "CredentialsInvalid"
    assert "X-Evil" not in caught.value.message


def test_the_operator_wide_credentials_are_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "username").write_text("op\n")
    (tmp_path / "password").write_text("pw")
    (tmp_path / "header-X-Scope-OrgID").write_text("platform\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    settings = AccessSettings(url="https://p", credentials_dir=str(tmp_path))
    endpoint = prometheus_access.operator_endpoint(settings)
    headers = dict(endpoint.headers)
    assert headers["Authorization"] == "Basic b3A6cHc="  # op:pw
    assert headers["X-Scope-OrgID"] == "platform"
    assert endpoint.ca_pem is not None and endpoint.ca_pem.startswith("-----BEGIN")
    assert prometheus_access.operator_endpoint(AccessSettings(url="https://p")).headers == ()


def test_a_secret_is_read_again_once_its_cache_is_old() -> None:
    reads, now = [], [100.0]

    def secret(namespace: str, name: str) -> dict[str, str]:
        reads.append((namespace, name))
        return {"token": f"t{len(reads)}"}

    access = PrometheusAccess(read=secret, clock=lambda: now[0])
    assert access.secret("team-a", "creds") == {"token": "t1"}
    now[0] += prometheus_access.SECRET_TTL_SECONDS - 1
    assert access.secret("team-a", "creds") == {"token": "t1"}
    now[0] += 2  # a rotated Secret is picked up
    assert access.secret("team-a", "creds") == {"token": "t2"}
    assert reads == [("team-a", "creds")] * 2


class CountingPool(ThreadPoolExecutor):
    """The loop's default executor, counting the calls handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.calls = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


def test_only_a_secret_read_is_handed_to_a_worker_thread() -> None:
    """Several endpoints per service and sync: a thread hop each costs the loop more than making
    the endpoint, so only the blocking case (a Secret not cached) takes one."""
    access = PrometheusAccess(AccessSettings(url="http://p", allowed=("https://thanos",)),
                              lambda namespace, name: {"token": "t"})
    spec = AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 5, "metrics": [{"name": "load", "query": "sum(x)",
                                       "targetPerReplica": 10}]})
    secured = spec.model_copy(update={"prometheus": PrometheusRef.model_validate({
        "url": "https://thanos", "auth": {"secretRef": {"name": "creds"},
                                          "bearerTokenKey": "token"}})})
    pool = CountingPool()

    async def sources() -> list[tuple[int, Endpoint]]:
        asyncio.get_running_loop().set_default_executor(pool)
        seen = []
        for asked in (spec, secured, secured):
            source = await access.source_for("team-a", asked)
            seen.append((pool.calls, source.endpoint))
        return seen

    (plain_hops, plain), (first_hops, first), (again_hops, again) = asyncio.run(sources())
    assert plain.url == "http://p" and plain_hops == 0
    assert first_hops == 1  # the Secret's read
    assert again_hops == 1  # then from the cache, in place
    assert dict(first.headers) == dict(again.headers) == {"Authorization": "Bearer t"}
