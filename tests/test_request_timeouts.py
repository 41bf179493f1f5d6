"""Every request to the API server has a client-side timeout: an API server that takes the
connection and never answers fails the call with an error its callers handle (a failed sync, a
failed Lease renewal), and never holds a worker thread or the renewal round for good."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest
from kubernetes import client
from prometheus_client import REGISTRY
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from adaptive_operator.adapters import cluster_cache, discovery, kube, leader
from adaptive_operator.adapters.cluster_cache import ClusterCache
from adaptive_operator.adapters.lease_shards import ShardedLeases
from adaptive_operator.handlers import adaptive_service
from adaptive_operator.handlers.ports import ClusterWorkloads
from adaptive_operator.handlers.scaling_observe import Memory

from fakes import Cluster, FixedClock, KubeHttp, fenced_client, kopf_body

SHORT: kube.Timeout = (1.0, 0.1)  # the tests' bound: a silent server fails the call at once
NOW = 1_800_000_000.0


class SilentApiServer:
    """A TCP server on 127.0.0.1 that takes every connection (the kernel completes the
    handshake) and never answers a byte."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.socket.setblocking(False)
        self.held: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def connections(self) -> int:
        """The connections made so far (each one request: a timed-out one is not reused)."""
        while True:
            try:
                self.held.append(self.socket.accept()[0])
            except BlockingIOError:
                return len(self.held)

    def close(self) -> None:
        for held in self.held:
            held.close()
        self.socket.close()


@pytest.fixture
def silent() -> Iterator[SilentApiServer]:
    server = SilentApiServer()
    yield server
    server.close()


def fenced(server: SilentApiServer, timeout: kube.Timeout = SHORT) -> kube.FencedApiClient:
    """The operator's client (its retries, its fence) to `server`, with `timeout`."""
    configuration = kube.configuration()
    configuration.host = server.url
    return kube.FencedApiClient(configuration, lambda: True, timeout)


def lease_api(server: SilentApiServer) -> client.CoordinationV1Api:
    api = leader.lease_api(SHORT)
    api.api_client.configuration.host = server.url
    return api


def timed_out(err: BaseException) -> bool:
    """A read timeout, or urllib3's MaxRetryError over one (a GET, a PUT)."""
    return isinstance(err.reason if isinstance(err, MaxRetryError) else err, ReadTimeoutError)


def test_a_status_patch_to_a_silent_api_server_times_out(silent: SilentApiServer) -> None:
    with pytest.raises(kube.API_ERRORS) as raised:
        kube.OwnObjects(fenced(silent)).patch_status("adaptiveservices", "ns", "web",
                                                     {"desiredReplicas": 3})
    assert timed_out(raised.value)
    assert silent.connections() == 1


def test_a_read_that_timed_out_is_not_sent_again(silent: SilentApiServer) -> None:
    """urllib3 would resend a GET three times: a call would take four read timeouts, and an
    API server already too slow would get the request four times."""
    with pytest.raises(kube.API_ERRORS) as raised:
        kube.request(fenced(silent), "/api/v1/namespaces/ns/pods/web-0", "GET")
    assert timed_out(raised.value)
    assert silent.connections() == 1


SCALE_SPEC = {"scaleTargetRef": {"name": "web"}, "maxReplicas": 10, "mode": "Active",
              "metrics": [{"name": "rps", "query": "sum(rate(requests_total[1m]))",
                           "targetPerReplica": 10}]}


def deployments(api_version: str, kind: str) -> discovery.Resource:
    return discovery.Resource("apps", "v1", kind, "deployments", True, True)


async def test_a_scale_read_that_times_out_fails_the_sync_not_the_daemon(
        silent: SilentApiServer) -> None:
    cluster = Cluster()
    workloads = ClusterWorkloads(ClusterCache(enabled=False), deployments, api=fenced(silent))
    runtime = replace(cluster.runtime(clock=FixedClock(NOW),
                                      hpas=kube.HpaLists(lambda namespace: ())),
                      workloads=workloads)
    body = kopf_body({"metadata": {"name": "web", "namespace": "ns", "generation": 1},
                      "spec": SCALE_SPEC, "status": {}})
    labels = {"namespace": "ns", "name": "web", "reason": "ApiUnavailable"}
    before = REGISTRY.get_sample_value("adaptive_reconcile_errors_total", labels) or 0.0
    period, ok = await adaptive_service.guarded_sync("ns", "web", body, Memory(), runtime)
    assert (period, ok) == (15.0, False)  # backs off and tries again
    assert REGISTRY.get_sample_value("adaptive_reconcile_errors_total", labels) == before + 1
    assert silent.connections() == 1  # the /scale read, not answered
    assert cluster.writes == [] and cluster.scaled == []


def test_a_lease_renewal_that_times_out_is_a_failed_renewal(
        silent: SilentApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The leader stops acting once the renewal deadline passes without a renewal, and says it
    lost the lease: the round is not held by a Lease request nobody answers."""
    clock = [NOW]
    elector = leader.LeaderElector("ns", "lease", "pod-a", retry_seconds=0.0,
                                   clock=lambda: clock[0], api=lease_api(silent))
    elector.renewed = NOW  # leading
    rounds = leader.LeaderRounds(elector)
    rounds.step()  # its read timed out: a failed renewal, within the deadline still
    assert elector.renewed_recently() and rounds.lapsed == 0
    clock[0] = NOW + 11.0  # past the deadline (10 s)
    rounds.step()
    assert rounds.lapsed == 1
    # A warning from the lease process: the operator logs the error as it stops acting.
    out = capsys.readouterr().out
    assert "leader lease lapsed" in out and "lost the leadership" not in out
    assert not leader.may_act(elector.renewed_recently)()
    assert silent.connections() == 2  # one a round: each read timed out, and was not resent


def test_a_lease_release_that_times_out_leaves_the_lease_to_expire(
        silent: SilentApiServer) -> None:
    elector = leader.LeaderElector("ns", "lease", "pod-a", clock=lambda: NOW,
                                   api=lease_api(silent))
    elector.release()  # logged, not raised: the process still stops at once
    leases = ShardedLeases("ns", "op", "pod-a", 2, clock=lambda: NOW, api=lease_api(silent))
    leases.step()  # the list timed out: nothing read, nothing held
    assert leases.held() == ()
    leases.shards[0].renewed = NOW
    leases.release()
    assert leases.held() == ()
    assert silent.connections() == 3  # the release's read, the list, the shard's read


def test_a_call_without_a_timeout_of_its_own_gets_the_clients() -> None:
    server = KubeHttp(lambda *_: (200, {"items": [], "metadata": {"resourceVersion": "1"}}))
    api = fenced_client(server, lambda: True)
    kube.OwnObjects(api).patch_status("adaptiveservices", "ns", "web", {"desiredReplicas": 3})
    kube.request(api, "/apis/apps/v1/namespaces/ns/deployments/web/scale", "GET")
    cluster_cache.lister(api, "pods", "ns")()  # names its own
    assert server.timeouts == [kube.REQUEST_TIMEOUT, kube.REQUEST_TIMEOUT, 30]


def test_the_default_timeouts_are_what_the_code_says() -> None:
    check_api_client_timeouts()
    check_lease_client_timeouts()


def check_api_client_timeouts() -> None:
    assert kube.REQUEST_TIMEOUT == (5.0, 30.0)
    assert kube.fenced_client(lambda: True).timeout == kube.REQUEST_TIMEOUT
    assert kube.reading_client().timeout == kube.REQUEST_TIMEOUT
    assert kube.configuration().retries is kube.RETRIES
    assert kube.RETRIES.read == 0  # a request sent is never sent again


def check_lease_client_timeouts() -> None:
    assert leader.LEASE_REQUEST_TIMEOUT == (1.5, 3.0)
    elector = leader.LeaderElector("ns", "lease", "pod-a")
    assert elector.api.api_client.timeout == leader.LEASE_REQUEST_TIMEOUT
    assert elector.api.api_client.configuration.retries.total == 0
    leases = ShardedLeases("ns", "op", "pod-a", 2)
    assert leases.api.api_client.timeout == leader.LEASE_REQUEST_TIMEOUT
    # A renewal, a read and then a write, is done or failed within the renewal deadline.
    assert 2 * sum(leader.LEASE_REQUEST_TIMEOUT) < elector.renew_deadline == 10.0
