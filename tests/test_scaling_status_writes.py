"""The scaling daemon writes status only when it differs from what this process last wrote: the
watched body lags behind its own patches, and compared with it every sync would write again."""

from __future__ import annotations

import kopf

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.scaling import sync
from adaptive_operator.domain.scaling.algorithm import MetricReading
from adaptive_operator.domain.scaling.plan import merged
from adaptive_operator.handlers import scaling_apply, scaling_observe

from fakes import Cluster, kopf_body

NOW = 1_000.0


def spec() -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 5, "mode": "DryRun",
        "metrics": [{"name": "rps", "query": "sum(x)", "targetPerReplica": 10}]})


async def one_sync(memory: scaling_observe.Memory, body: kopf.Body, replicas: int,
                   now: float, api: Cluster) -> None:
    """A sync that finds `replicas` and a load asking for as many: plan and apply."""
    readings = (MetricReading("rps", 10.0 * replicas, 10.0),)
    snapshot = sync.Snapshot(memory.shown(body), 1, True, current=replicas, ready=replicas,
                             readings=readings)
    planned = sync.plan(spec(), snapshot, memory.kept, now)
    await scaling_apply.apply("ns", "web", body, spec(), snapshot, planned, memory,
                              api.runtime())


async def test_a_status_already_written_is_not_written_again_from_a_stale_body() -> None:
    api = Cluster()
    patches = api.statuses
    stale = kopf_body({"metadata": {"name": "web", "generation": 1}, "status": {}})
    memory = scaling_observe.Memory()
    for count in range(3):  # the body never shows the first write
        await one_sync(memory, stale, 3, NOW + 15 * count, api)
    assert len(patches) == 1
    await one_sync(memory, stale, 4, NOW + 45, api)
    assert len(patches) == 2 and patches[1]["desiredReplicas"] == 4
    memory.forget()  # another replica may have written since: the body is read again
    await one_sync(memory, stale, 4, NOW + 60, api)
    assert len(patches) == 3


def test_a_merge_patch_deletes_none_and_merges_dicts() -> None:
    old = {"a": 1, "w": {"x": 1, "y": 2}, "f": {"k": 1}}
    assert merged(old, {"w": {"x": None, "z": 3}, "f": None, "b": [1]}) == {
        "a": 1, "w": {"y": 2, "z": 3}, "b": [1]}
    assert old == {"a": 1, "w": {"x": 1, "y": 2}, "f": {"k": 1}}
