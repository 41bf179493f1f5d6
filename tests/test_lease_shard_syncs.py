"""With the services shared out over shard Leases, a service's sync runs on its shard's runtime:
it acts while that shard's Lease is held, and does nothing once it is lost, whatever other
shards the replica holds."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kopf

from adaptive_operator.adapters.prometheus import RangeSeries
from adaptive_operator.domain.common.lease_shards import shard_of
from adaptive_operator.handlers import adaptive_service, runtime
from adaptive_operator.handlers.scaling_observe import Memory
from adaptive_operator.handlers.warmup import WarmUps

from fakes import Cluster, FixedClock, Metrics, Ranges, kopf_body

NOW = 1_800_000_000.0
QUERY = "sum(rate(requests_total[1m]))"
SPEC = {"scaleTargetRef": {"name": "web"}, "maxReplicas": 10, "mode": "Active",
        "metrics": [{"name": "rps", "query": QUERY, "targetPerReplica": 10}]}


def named_in(shard: int, shards: int) -> str:
    return next(f"web-{i}" for i in range(100) if shard_of("ns", f"web-{i}", shards) == shard)


async def test_a_sync_acts_only_while_its_shards_lease_is_held() -> None:
    held = {0, 1}
    clusters = [Cluster(replicas=2) for _ in range(2)]
    shards = tuple(
        cluster.runtime(clock=FixedClock(NOW), totals=Metrics({QUERY: 50.0}),
                        may_act=lambda shard=shard: shard in held)
        for shard, cluster in enumerate(clusters))
    base = replace(shards[0], may_act=runtime.never, lease_shards=shards)
    memo = kopf.Memo(runtime=base)
    names = [named_in(0, 2), named_in(1, 2)]
    assert [runtime.of(memo).for_object("ns", name) for name in names] == list(shards)
    held.discard(1)
    for name in names:
        body = kopf_body({"metadata": {"name": name, "namespace": "ns", "generation": 1},
                          "spec": SPEC, "status": {}})
        await adaptive_service.guarded_sync("ns", name, body, Memory(),
                                            runtime.of(memo).for_object("ns", name))
    assert clusters[0].scaled == [5] and clusters[0].writes
    assert clusters[1].scaled == [] and clusters[1].writes == []


async def test_a_service_whose_shard_is_lost_keeps_no_forecast() -> None:
    """Its forecasts are another replica's now: kept here, every service this replica ever
    held (all of them, when it started first) would stay in its heap for good."""
    held = [True]

    async def flat(url: Any, query: str, start: float, end: float,
                   step: float) -> RangeSeries:
        return RangeSeries(start, step, [50.0] * (int((end - start) / step) + 1))

    rt = Cluster(replicas=2).runtime(
        clock=FixedClock(NOW), totals=Metrics({QUERY: 50.0}), may_act=lambda: held[0],
        warmups=WarmUps(ranges=Ranges(flat)))
    spec = {**SPEC, "predictive": {"enabled": True}}
    body = kopf_body({"metadata": {"name": "web", "namespace": "ns", "generation": 1},
                      "spec": spec, "status": {}})
    memory = Memory()
    await adaptive_service.guarded_sync("ns", "web", body, memory, rt)
    forecaster = memory.forecaster
    assert forecaster is not None and forecaster.metrics
    warming = [m.warming for m in forecaster.metrics.values() if m.warming is not None]
    held[0] = False
    await adaptive_service.guarded_sync("ns", "web", body, memory, rt)
    assert memory.forecaster is None and memory.status is None
    await forecaster.settled()
    assert warming and all(task.cancelled() for task in warming)  # its backfill was dropped


def test_without_shards_every_object_has_the_one_runtime() -> None:
    built = Cluster().runtime()
    assert built.for_object("ns", "anything") is built
