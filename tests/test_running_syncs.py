"""A coupled downstream reads its upstreams once their running syncs have ended (bounded, and
never waiting in a circle); and the scaling sync marks itself running and waits so."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from adaptive_operator.handlers import adaptive_service, running_syncs
from adaptive_operator.handlers.running_syncs import RunningSyncs
from adaptive_operator.handlers.scaling_observe import Memory

from fakes import Cluster, FixedClock, Metrics, kopf_body

QUERY = "sum(rate(requests_total[1m]))"


async def test_a_downstream_waits_for_its_upstreams_running_sync_to_end() -> None:
    syncs = RunningSyncs()
    order: list[str] = []

    async def upstream() -> None:
        with syncs.running("ns", "frontend"):
            await asyncio.sleep(0)  # the downstream reaches its read meanwhile
            await asyncio.sleep(0)
            order.append("frontend wrote")

    async def downstream() -> None:
        await asyncio.sleep(0)
        await syncs.after("ns", "api", ["frontend"], bound=10.0)
        order.append("api read")

    waited = REGISTRY.get_sample_value("adaptive_coupling_wait_seconds_count") or 0.0
    await asyncio.gather(upstream(), downstream())
    assert order == ["frontend wrote", "api read"]
    assert not syncs.is_running("ns", "frontend")
    assert REGISTRY.get_sample_value("adaptive_coupling_wait_seconds_count") == waited + 1


async def test_a_sync_that_did_not_wait_is_not_counted() -> None:
    before = REGISTRY.get_sample_value("adaptive_coupling_wait_seconds_count") or 0.0
    await RunningSyncs().after("ns", "api", ["frontend"], bound=1.0)
    assert (REGISTRY.get_sample_value("adaptive_coupling_wait_seconds_count") or 0.0) == before


async def test_no_wait_without_a_running_upstream_nor_for_another_namespaces() -> None:
    syncs = RunningSyncs()
    loop = asyncio.get_running_loop()
    with syncs.running("other", "frontend"):
        started = loop.time()
        await syncs.after("ns", "api", ["frontend", "missing"], bound=30.0)
        assert loop.time() - started < 1.0  # far below the bound: it did not wait


async def test_the_wait_ends_at_its_bound() -> None:
    syncs = RunningSyncs()
    with syncs.running("ns", "frontend"):
        await syncs.after("ns", "api", ["frontend"], bound=0.01)
        assert syncs.is_running("ns", "frontend")  # still running: the bound ended the wait


async def test_two_services_coupled_to_each_other_do_not_wait_on_each_other() -> None:
    syncs = RunningSyncs()
    order: list[str] = []

    async def service(name: str, other: str) -> None:
        with syncs.running("ns", name):
            await asyncio.sleep(0)
            await syncs.after("ns", name, [other], bound=30.0)
            order.append(name)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(service("a", "b"), service("b", "a"))
    assert loop.time() - started < 1.0 and sorted(order) == ["a", "b"]


async def test_a_chain_waits_link_by_link() -> None:
    """c waits for b, which waits for a: c reads after b, b after a."""
    syncs = RunningSyncs()
    order: list[str] = []

    async def service(name: str, upstream: str | None, delay: int) -> None:
        with syncs.running("ns", name):
            for _ in range(delay):
                await asyncio.sleep(0)
            if upstream:
                await syncs.after("ns", name, [upstream], bound=30.0)
            order.append(name)

    await asyncio.gather(service("c", "b", 1), service("b", "a", 2), service("a", None, 5))
    assert order == ["a", "b", "c"]


async def test_a_service_coupled_to_itself_does_not_wait_for_itself() -> None:
    syncs = RunningSyncs()
    with syncs.running("ns", "api"):
        await asyncio.wait_for(syncs.after("ns", "api", ["api"], bound=30.0), 1.0)


def service(name: str, coupling: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 10, "mode": "Active",
        "metrics": [{"name": "rps", "query": QUERY, "targetPerReplica": 10}],
        "predictive": {"enabled": True}}
    if coupling:
        spec["coupling"] = [{"service": c, "metric": "rps"} for c in coupling]
    return {"metadata": {"name": name, "namespace": "ns", "generation": 1}, "spec": spec,
            "status": {}}


class Reading(Cluster):
    """The fake cluster, recording whether the upstream's sync was running at each read of
    it, and whether the service's own was at each status write."""

    def __init__(self, syncs: RunningSyncs, **fields: Any) -> None:
        super().__init__(**fields)
        self.syncs = syncs
        self.upstream_running: list[bool] = []
        self.own_running: list[bool] = []

    async def read_service(self, plural: str, namespace: str,
                           name: str) -> dict[str, Any] | None:
        if name == "frontend":
            self.upstream_running.append(self.syncs.is_running(namespace, name))
        return await super().read_service(plural, namespace, name)

    async def patch_status(self, plural: str, namespace: str, name: str,
                           status: dict[str, Any]) -> None:
        self.own_running.append(self.syncs.is_running(namespace, name))
        await super().patch_status(plural, namespace, name, status)


async def test_a_coupled_sync_reads_its_upstream_after_the_upstreams_sync() -> None:
    syncs = RunningSyncs()
    cluster = Reading(syncs, replicas=2, upstreams={"frontend": service("frontend", [])})
    rt = cluster.runtime(clock=FixedClock(1_800_000_000.0), totals=Metrics({QUERY: 50.0}),
                         syncs=syncs)
    memory = Memory()
    released = asyncio.Event()

    async def upstream_sync() -> None:
        with syncs.running("ns", "frontend"):
            await released.wait()

    upstream = asyncio.ensure_future(upstream_sync())
    await asyncio.sleep(0)
    downstream = asyncio.ensure_future(adaptive_service.guarded_sync(
        "ns", "api", kopf_body(service("api", ["frontend"])), memory, rt))
    try:
        for _ in range(50):  # the downstream runs up to its wait, and stays there
            await asyncio.sleep(0)
        assert cluster.upstream_running == [] and not downstream.done()
        released.set()
        await asyncio.gather(upstream, downstream)
    finally:
        memory.drop_forecast()
    assert cluster.upstream_running and not any(cluster.upstream_running)
    assert cluster.own_running and all(cluster.own_running)  # its own sync was marked
    assert not syncs.is_running("ns", "api")


async def test_no_wait_is_longer_than_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """An hour's period allows half an hour: the cap holds it (here made 10 ms)."""
    monkeypatch.setattr(running_syncs, "MAX_WAIT_SECONDS", 0.01)
    syncs = RunningSyncs()
    with syncs.running("ns", "frontend"):
        await asyncio.wait_for(syncs.after("ns", "api", ["frontend"], bound=1800.0), 5.0)
