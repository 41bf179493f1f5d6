"""With the services shared out over shard Leases, a service's sync runs on its shard's runtime:
it acts while that shard's Lease is held, and does nothing once it is lost, whatever other
shards the replica holds."""

from __future__ import annotations

from dataclasses import replace

import kopf

from adaptive_operator.domain.common.lease_shards import shard_of
from adaptive_operator.handlers import adaptive_service, runtime
from adaptive_operator.handlers.scaling_observe import Memory

from fakes import Cluster, FixedClock, Metrics, kopf_body

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


def test_without_shards_every_object_has_the_one_runtime() -> None:
    built = Cluster().runtime()
    assert built.for_object("ns", "anything") is built
