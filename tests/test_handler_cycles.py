"""Whole syncs through the handlers, observe -> plan -> apply, on a Runtime built from fakes:
the cluster (target, pods, service, status, Events) and Prometheus's answers."""

from __future__ import annotations

from typing import Any

import kopf
from prometheus_client import REGISTRY

from adaptive_operator.adapters import telemetry
from adaptive_operator.adapters.prometheus import RangeSeries
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.healing.inputs import ledger_from_json
from adaptive_operator.domain.healing.ladder import Action, Outcome
from adaptive_operator.domain.healing.plan import LEDGER
from adaptive_operator.handlers import adaptive_service, healing, healing_observe
from adaptive_operator.handlers.scaling_observe import Memory
from adaptive_operator.handlers.warmup import WarmUps

from fakes import Cluster, FixedClock, Metrics, Ranges, kopf_body

NOW = 1_800_000_000.0
QUERY = "sum(rate(requests_total[1m]))"


def service(**fields: Any) -> dict[str, Any]:
    return {"scaleTargetRef": {"name": "web"}, "maxReplicas": 10, "mode": "Active",
            "metrics": [{"name": "rps", "query": QUERY, "targetPerReplica": 10}], **fields}


def body(spec: dict[str, Any]) -> kopf.Body:
    return kopf_body({"metadata": {"name": "web", "namespace": "ns", "generation": 1},
                      "spec": spec, "status": {}})


def pod(name: str, ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}",
                         "creationTimestamp": "2020-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["reason"] for c in status.get("conditions") or []}


async def test_a_scaling_sync_records_the_write_makes_it_and_reports_it() -> None:
    cluster = Cluster(replicas=2, pods=[pod("web-a"), pod("web-b")])
    metrics = Metrics({QUERY: 50.0})
    rt = cluster.runtime(clock=FixedClock(NOW), totals=metrics)
    period, ok = await adaptive_service.sync_once("ns", "web", body(service()), Memory(), rt)
    assert (period, ok) == (15.0, True)
    assert metrics.asked == [QUERY] and cluster.scaled == [5]
    assert cluster.writes == ["status", "scale", "status"]
    pending, final = cluster.statuses  # the write-ahead record first, then the status
    assert pending["scaleWrites"]["pending"]["replicas"] == 5
    assert final["desiredReplicas"] == 5 and final["scaleWrites"]["appliedReplicas"] == 5
    assert [(e.reason, e.message.split(":")[0]) for e in cluster.events] == [
        ("Scaled", "Deployment web 2 -> 5")]


async def test_a_scaling_sync_blocked_by_an_hpa_reads_no_metric_and_writes_nothing() -> None:
    cluster = Cluster(replicas=2, hpa="web-hpa")
    metrics = Metrics({QUERY: 50.0})
    rt = cluster.runtime(clock=FixedClock(NOW), totals=metrics)
    _, ok = await adaptive_service.sync_once("ns", "web", body(service()), Memory(), rt)
    assert not ok and metrics.asked == [] and cluster.scaled == []
    (status,) = cluster.statuses
    assert conditions(status)["ScalingActive"] == "ConflictingAutoscaler"


async def test_a_dry_run_scaling_sync_recommends_and_writes_no_replicas() -> None:
    cluster = Cluster(replicas=2, pods=[pod("web-a"), pod("web-b")])
    rt = cluster.runtime(clock=FixedClock(NOW), totals=Metrics({QUERY: 50.0}))
    await adaptive_service.sync_once("ns", "web", body(service(mode="DryRun")), Memory(), rt)
    assert cluster.scaled == [] and [e.reason for e in cluster.events] == [
        "DryRunRecommendation"]
    assert cluster.statuses[-1]["desiredReplicas"] == 5


async def test_a_healing_sync_records_the_eviction_before_making_it() -> None:
    spec = AdaptiveServiceSpec.model_validate(service(healing={"enabled": True,
                                                               "mode": "Active"}))
    cluster = Cluster(replicas=2, pods=[pod("web-a"), pod("web-b", ready=False)])
    rt = cluster.runtime(clock=FixedClock(NOW), totals=Metrics(default=0.01))
    watcher = healing_observe.start_watcher(spec.healing)  # type: ignore[arg-type]
    await healing.heal_once("ns", "web", body(spec.model_dump(by_alias=True)), spec,
                            watcher, rt)
    (ledger,) = cluster.ledgers  # read fresh, then written once, before the eviction
    assert cluster.reads == 1
    (entry,) = ledger_from_json(ledger)
    assert (entry.action, entry.outcome, entry.pods) == (Action.EVICT_PODS, Outcome.PENDING,
                                                         ("web-b",))
    assert cluster.evicted == [("web-b", "uid-web-b")]  # only while it is still that pod
    assert cluster.annotations[LEDGER] == ledger
    assert [e.reason for e in cluster.events] == ["UnhealthyPods"]  # what was done, and why
    assert cluster.statuses[-1]["healing"]["ledger"]["total"] == 1
    assert cluster.writes == ["annotate", "evict", "status"]


async def test_a_healing_sync_not_leading_reads_and_writes_nothing() -> None:
    spec = AdaptiveServiceSpec.model_validate(service(healing={"enabled": True}))
    cluster = Cluster(broken=AssertionError("read while not leading"))
    rt = cluster.runtime(clock=FixedClock(NOW), may_act=lambda: False)
    watcher = healing_observe.start_watcher(spec.healing)  # type: ignore[arg-type]
    watcher.status = {"state": {}}
    await healing.heal_once("ns", "web", body({}), spec, watcher, rt)
    assert watcher.status is None and cluster.statuses == [] and cluster.events == []


async def test_a_blocked_sync_shows_no_forecast_or_coupling_of_an_earlier_sync() -> None:
    """Blocked, nothing is read: the coupled forecast an earlier sync trusted (a downstream
    service reads it from this status) is taken away, not shown again as if current."""
    earlier = {"coupling": {"trusted": True, "floorReplicas": 7, "summary": "api: Trusted",
                            "forecast": [{"offsetSeconds": 15.0, "p50": 70.0, "pHigh": 70.0}]},
               "forecast": {"reliable": True, "metric": "rps"},
               "conditions": [
                   {"type": "CouplingTrusted", "status": "True",
                    "reason": "CoupledBetterThanOwnForecast", "message": "used"},
                   {"type": "ForecastReliable", "status": "True",
                    "reason": "ForecastBetterThanSeasonalNaive", "message": "used"}]}
    coupled = service(predictive={"enabled": True},
                      coupling=[{"service": "api", "metric": "rps"}])
    shown = kopf_body({**body(coupled), "status": earlier})
    labels = {"namespace": "ns", "name": "web"}
    telemetry.COUPLING_FLOOR.labels("ns", "web").set(7)  # as the earlier sync left it
    cluster = Cluster(hpa="web-hpa")
    rt = cluster.runtime(clock=FixedClock(NOW), totals=Metrics())
    await adaptive_service.sync_once("ns", "web", shown, Memory(), rt)
    (status,) = cluster.statuses
    assert status["coupling"] is None and status["forecast"] is None
    found = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert found["CouplingTrusted"] == found["ForecastReliable"] == ("Unknown", "NotEvaluated")
    assert cluster.events == []
    assert REGISTRY.get_sample_value("adaptive_coupling_floor_replicas", labels) is None


async def test_a_coupled_forecast_is_not_carried_into_a_blocked_sync() -> None:
    coupled = service(predictive={"enabled": True},
                      coupling=[{"service": "api", "metric": "rps"}])
    cluster = Cluster(replicas=2, pods=[pod("web-a"), pod("web-b")])  # no upstream api

    async def no_history(url: Any, query: str, start: float, end: float,
                         step: float) -> RangeSeries:
        return RangeSeries(start, step, [None] * (int((end - start) / step) + 1))

    rt = cluster.runtime(clock=FixedClock(NOW), totals=Metrics({QUERY: 50.0}),
                         warmups=WarmUps(ranges=Ranges(no_history)))
    memory = Memory()
    try:
        await adaptive_service.sync_once("ns", "web", body(coupled), memory, rt)
        assert conditions(cluster.statuses[-1])["CouplingTrusted"] == "UpstreamNotFound"
        cluster.hpa = "web-hpa"  # the next sync is blocked
        await adaptive_service.sync_once("ns", "web", body(coupled), memory, rt)
    finally:
        memory.drop_forecast()
    assert cluster.statuses[-1]["coupling"] is None
    assert conditions(cluster.statuses[-1])["CouplingTrusted"] == "NotEvaluated"


async def test_a_blocked_sync_of_a_service_without_forecast_or_coupling_adds_neither() -> None:
    cluster = Cluster(hpa="web-hpa")
    rt = cluster.runtime(clock=FixedClock(NOW), totals=Metrics())
    await adaptive_service.sync_once("ns", "web", body(service()), Memory(), rt)
    assert {"CouplingTrusted", "ForecastReliable"}.isdisjoint(
        conditions(cluster.statuses[-1]))
