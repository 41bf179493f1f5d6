"""One healing sync decides on the watched body, and on the ledger read fresh before writing.

Reading the service from the API server every sync (1,000 services: 67 reads/s) was only needed
for what is written: a sync that records or does nothing reads the watched body; one that would
record reads the service fresh and decides again on that ledger, so an entry the watch does not
show yet is never repeated, and a pause set a moment ago is honoured.
"""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.adapters import kube, telemetry, workload
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.base import MESSAGE_LENGTH
from adaptive_operator.api.healing import HealingMode
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict, Contribution
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector
from adaptive_operator.domain.healing.inputs import HealthHistory, ledger_from_json
from adaptive_operator.domain.healing.ladder import (
    Action,
    Observation,
    PodHealth,
    RolloutInfo,
    detector_settings_from_spec,
)
from adaptive_operator.domain.healing.plan import LEDGER, PAUSED, not_owned_condition
from adaptive_operator.domain.healing.watch import Watcher
from adaptive_operator.handlers import healing
from adaptive_operator.handlers.ports import OwnRecords
from adaptive_operator.handlers.runtime import Runtime

from fakes import Cluster, FixedClock, KubeHttp, NoShards, fenced_client

NOW = 1_800_000_000.0
ANOMALY = AnomalyVerdict(0.9, True, (Contribution("errorRatio", 0.3, 0.01, 24.0),))
CALM = AnomalyVerdict(0.4, False, (Contribution("errorRatio", 0.01, 0.01, 0.0),))
ROLLOUT = RolloutInfo(current_revision=7, previous_revision=6, current_started_at=NOW - 120)


def spec() -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 5,
        "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 10}],
        "healing": {"enabled": True, "mode": "DryRun"}})


@pytest.fixture
def api() -> Cluster:
    """The service as the API server has it; what the sync read and wrote."""
    return Cluster()


def watcher() -> Watcher:
    settings = detector_settings_from_spec(spec().healing)  # type: ignore[arg-type]
    return Watcher({"errorRatio": "q"}, {"errorRatio": "errors"}, settings,
                           HealthHistory(10), AnomalyDetector(settings))


async def sync(api: Cluster, seen: Observation,
               body: dict[str, Any], kept: Watcher | None = None,
               service: AdaptiveServiceSpec | None = None) -> None:
    """Plan on what was seen, and apply, as the sync after its observation does."""
    rt = api.runtime(clock=FixedClock(NOW))
    await healing.plan_and_apply("ns", "web", body, service or spec(),  # type: ignore[arg-type]
                                 kept or watcher(), seen, NOW, rt)


async def test_a_healthy_sync_reads_nothing_fresh_and_writes_no_ledger(
        api: Cluster) -> None:
    await sync(api, Observation(CALM), {"metadata": {}})
    assert api.reads == 0 and api.ledgers == []


async def test_an_intent_is_decided_again_on_the_fresh_ledger(
        api: Cluster) -> None:
    seen = Observation(ANOMALY, NOW - 30, ROLLOUT, replicas=3, max_replicas=5)
    await sync(api, seen, {"metadata": {}})
    assert api.reads == 1 and len(api.ledgers) == 1  # the DryRun rollback, recorded
    # The watch has not delivered that annotation yet: the body still shows no ledger.
    await sync(api, seen, {"metadata": {}})
    assert api.reads == 2 and len(api.ledgers) == 1  # the fresh ledger: cooling down, no repeat
    assert len(ledger_from_json(api.annotations[LEDGER])) == 1


async def test_a_pause_set_a_moment_ago_is_honoured(
        api: Cluster) -> None:
    api.annotations[PAUSED] = "true"
    seen = Observation(ANOMALY, NOW - 30, ROLLOUT, replicas=3, max_replicas=5)
    await sync(api, seen, {"metadata": {}})
    assert api.reads == 1 and api.ledgers == []


async def test_a_service_deleted_meanwhile_is_neither_recorded_nor_acted_on(
        api: Cluster) -> None:
    api.gone = True  # the fresh read finds nothing: the daemon is about to stop
    seen = Observation(ANOMALY, NOW - 30, ROLLOUT, replicas=3, max_replicas=5)
    await sync(api, seen, {"metadata": {}})
    assert api.reads == 1 and api.writes == [] and api.events == [] and api.statuses == []


async def test_status_is_compared_with_what_this_process_wrote_last(
        api: Cluster) -> None:
    kept = watcher()
    await sync(api, Observation(CALM), {"metadata": {}}, kept)
    assert len(api.statuses) == 1
    # The body does not show that write yet; the same state again is no change.
    await sync(api, Observation(CALM), {"metadata": {}}, kept)
    assert len(api.statuses) == 1


async def test_the_live_score_is_a_gauge_every_sync_and_gone_with_the_service(
        api: Cluster) -> None:
    from prometheus_client import REGISTRY

    labels = {"namespace": "ns", "name": "web"}
    await sync(api, Observation(ANOMALY), {"metadata": {}})
    assert REGISTRY.get_sample_value("adaptive_anomaly_score", labels) == ANOMALY.score
    telemetry.forget(telemetry.ANOMALY_SCORE, "ns", "web")
    assert REGISTRY.get_sample_value("adaptive_anomaly_score", labels) is None
    telemetry.forget(telemetry.ANOMALY_SCORE, "ns", "web")  # twice: no error


@pytest.mark.parametrize(("by_budget", "outcome"), [
    pytest.param(True, "Blocked", id="a-budget-said-no-so-it-is-tried-again-later"),
    pytest.param(False, "Pending", id="another-refusal-is-verified-not-repeated"),
])
async def test_an_eviction_refused_by_a_budget_is_recorded_as_blocked(
        api: Cluster, by_budget: bool, outcome: str) -> None:
    api.refusals["web-a"] = workload.Refusal("web-a: refused", by_budget)
    active = AdaptiveServiceSpec.model_validate({
        **spec().model_dump(by_alias=True, exclude_none=True),
        "healing": {"enabled": True, "mode": HealingMode.ACTIVE}})
    seen = Observation(CALM, pods=(PodHealth("web-a", ready=False),), replicas=2, max_replicas=5)
    await sync(api, seen, {"metadata": {}}, service=active)
    (entry,) = ledger_from_json(api.annotations[LEDGER])
    assert (entry.action, entry.outcome, entry.pods) == (Action.EVICT_PODS, outcome, ("web-a",))


async def test_pods_left_alone_as_not_the_targets_are_reported_in_a_status_condition(
        api: Cluster) -> None:
    api.refusals["impostor-1"] = workload.Refusal(
        "impostor-1: not a pod of Deployment web; left alone", False, "impostor-1")
    active = AdaptiveServiceSpec.model_validate({
        **spec().model_dump(by_alias=True, exclude_none=True),
        "healing": {"enabled": True, "mode": HealingMode.ACTIVE}})
    seen = Observation(CALM, pods=(PodHealth("impostor-1", ready=False),), replicas=1,
                       max_replicas=5)
    await sync(api, seen, {"metadata": {}}, service=active)
    (condition,) = api.statuses[-1]["healing"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "PodsNotOwned", "True", "NotOwnedByTarget")
    assert condition["message"].endswith("not shown to be owned by Deployment web (their "
                                         "ownerReferences do not lead to it): impostor-1")


def test_the_pods_not_owned_are_named_a_few_and_the_message_is_bounded() -> None:
    many = tuple(f"{'x' * 240}-{i:02d}" for i in range(40))
    condition = not_owned_condition(many, "StatefulSet", "db")
    assert condition.message.count("x" * 240) == 3
    assert condition.message.endswith(" and 37 more")
    assert len(condition.message) <= MESSAGE_LENGTH
    cleared = not_owned_condition((), "StatefulSet", "db")
    assert (cleared.status, cleared.reason) == ("False", "AllPodsOwned")


@pytest.mark.parametrize("leading", [True, False], ids=["leading", "not-leading"])
async def test_a_healing_event_is_posted_only_while_leading(api: Cluster, leading: bool) -> None:
    """The DryRun rollback's Event goes through the fenced client (the HTTP boundary here):
    about the AdaptiveService while leading, nothing at all once the lease is gone."""
    server = KubeHttp()
    records = OwnRecords(kube.OwnObjects(fenced_client(server, lambda: leading)))
    rt = Runtime(shards=NoShards(), workloads=api, status=api, events=records,
                 clock=FixedClock(NOW), may_act=lambda: leading)
    body = {"apiVersion": "adaptive.dev/v1alpha1", "kind": "AdaptiveService",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-2"}}
    seen = Observation(ANOMALY, NOW - 30, ROLLOUT, replicas=3, max_replicas=5)
    await healing.plan_and_apply("ns", "web", body, spec(), watcher(),  # type: ignore[arg-type]
                                 seen, NOW, rt)
    if not leading:
        assert server.sent == []
        return
    ((method, path, event),) = server.writes()
    assert (method, path) == ("POST", "/api/v1/namespaces/ns/events")
    assert (event["type"], event["reason"]) == ("Normal", "HealingDryRun")
    assert event["involvedObject"] == {"apiVersion": "adaptive.dev/v1alpha1",
                                       "kind": "AdaptiveService", "name": "web", "uid": "u-2",
                                       "namespace": "ns"}
