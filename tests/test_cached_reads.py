"""A sync's reads of its workload: from the watch-fed caches when they can answer, else from the
API server, with the same answer either way."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.adapters import cached_reads, kube, workload
from adaptive_operator.adapters.cached_reads import CachedReads
from adaptive_operator.adapters.cluster_cache import ClusterCache
from adaptive_operator.adapters.informer import Store

WEB = kube.TargetRef("apps/v1", "Deployment", "web")
SELECTOR = {"matchLabels": {"app": "web"}}


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "labels": {"app": "web"}, "ownerReferences": [{"uid": "rs-web"}],
            **extra}


def ready_pod(name: str, created: str, ready_at: str, ready: str = "True",
              **extra: Any) -> dict[str, Any]:
    return {"metadata": meta(name, creationTimestamp=created, **extra),
            "status": {"phase": "Running", "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": ready, "lastTransitionTime": ready_at}]}}


DEPLOYMENT = {"metadata": {"name": "web", "uid": "u-web"},
              "spec": {"replicas": 3, "selector": SELECTOR}, "status": {"replicas": 2}}
PODS = [
    ready_pod("web-a", "2026-01-01T00:00:00Z", "2026-01-01T00:00:12Z"),
    ready_pod("web-b", "2026-01-01T00:00:00Z", "2026-01-01T00:00:03Z", ready="False"),
    ready_pod("web-c", "2026-01-01T00:00:00Z", "", deletionTimestamp="2026-01-01T00:01:00Z"),
    {"metadata": meta("web-d"), "status": {"phase": "Succeeded"}},
    {"metadata": meta("web-e", creationTimestamp="not a time"), "status": {"phase": "Pending"}},
]
# Selected by the labels, owned by another controller: never judged, evicted or restarted.
STRAY = {"metadata": {"name": "stray", "labels": {"app": "web"},
                      "ownerReferences": [{"uid": "rs-other"}]}, "status": {"phase": "Succeeded"}}
OWN = {"metadata": {"name": "web-1", "labels": {"app": "web"}, "uid": "rs-web",
                    "ownerReferences": [{"uid": "u-web"}]}}
FOREIGN = {"metadata": {"name": "other-1", "labels": {"app": "web"},
                        "ownerReferences": [{"uid": "u-other"}]}}
HPA = {"metadata": {"name": "web-hpa"},
       "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}}}


@pytest.fixture
def cache() -> ClusterCache:
    return ClusterCache(enabled=True, starter=lambda kind, namespace, store, stop: None)


@pytest.fixture
def reads(cache: ClusterCache) -> CachedReads:
    return CachedReads(cache)


@pytest.fixture
def stores(cache: ClusterCache) -> dict[str, Store]:
    """The caches of namespace `prod`, listed with the objects above."""
    found = cache.namespace("prod")
    assert found is not None
    made = found.stores
    made["deployments"].replace([DEPLOYMENT], "1")
    made["pods"].replace([*PODS, STRAY], "1")
    made["replicasets"].replace([OWN, FOREIGN], "1")
    made["horizontalpodautoscalers"].replace([HPA], "1")
    return made


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The API server, as the direct reads see it; records what was asked."""
    asked: list[str] = []

    async def read_scale(api_client: Any, namespace: str, target: kube.TargetRef,
                         resolve: Any) -> kube.Scale:
        asked.append(f"scale {target.name}")
        return kube.Scale(4, 4, "app=web")

    def list_pods(api_client: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
        asked.append(f"pods {selector}")
        return PODS[:1]

    async def pods_and_replica_sets(api_client: Any, namespace: str,
                                    name: str) -> tuple[list[Any], list[Any]]:
        asked.append(f"workload {name}")
        return [], []

    monkeypatch.setattr(kube, "read_scale", read_scale)
    monkeypatch.setattr(workload, "list_pods", list_pods)
    monkeypatch.setattr(workload, "pods_and_replica_sets", pods_and_replica_sets)
    return asked


@pytest.fixture
def hpas(api: list[str]) -> kube.HpaLists:
    """The HPA lists the direct reads go through; a list is recorded as asked."""

    def listing(namespace: str) -> kube.HpaTargets:
        api.append(f"hpas {namespace}")
        return ()

    return kube.HpaLists(listing)


async def test_a_deployments_scale_comes_from_the_cache(
        reads: CachedReads, stores: dict[str, Store], api: list[str]) -> None:
    scale = await reads.read_scale("prod", WEB)
    assert scale == kube.Scale(3, 2, "app=web", SELECTOR)
    assert api == []


async def test_pods_are_counted_from_the_cache(
        reads: CachedReads, stores: dict[str, Store], api: list[str]) -> None:
    counts = await reads.count_pods("prod", await reads.read_scale("prod", WEB))
    # web-c is terminating and web-d finished: neither counts; web-b and web-e are not ready.
    assert counts == kube.PodCounts(ready=1, unready=2, startup_seconds=(12.0,))
    assert api == []


async def test_the_conflict_check_reads_the_cached_autoscalers(
        reads: CachedReads, stores: dict[str, Store], api: list[str], hpas: kube.HpaLists) -> None:
    assert await reads.conflicting_hpa("prod", WEB, hpas) == "web-hpa"
    other = kube.TargetRef("apps/v1", "Deployment", "api")
    assert await reads.conflicting_hpa("prod", other, hpas) is None
    assert api == []


async def test_a_deployments_pods_and_own_replica_sets_come_from_the_cache(
        reads: CachedReads, stores: dict[str, Store], api: list[str]) -> None:
    pods, sets = await reads.deployment_pods("prod", "web")
    names = sorted(pod["metadata"]["name"] for pod in pods)
    assert names == sorted(pod["metadata"]["name"] for pod in PODS)  # not the stray pod
    assert sets == [OWN]
    assert api == []


async def test_a_broken_watch_sends_every_read_to_the_api_server(
        reads: CachedReads, stores: dict[str, Store], api: list[str], hpas: kube.HpaLists) -> None:
    for store in stores.values():
        store.broken()
    scale = await reads.read_scale("prod", WEB)
    counts = await reads.count_pods("prod", scale)
    await reads.conflicting_hpa("prod", WEB, hpas)
    await reads.deployment_pods("prod", "web")
    assert api == ["scale web", "pods app=web", "hpas prod", "workload web"]
    assert counts.ready == 1


async def test_what_the_cache_has_not_seen_is_read(
        reads: CachedReads, stores: dict[str, Store], api: list[str]) -> None:
    await reads.read_scale("prod", kube.TargetRef("apps/v1", "Deployment", "new"))
    await reads.read_scale("prod", kube.TargetRef("apps/v1", "StatefulSet", "db"))
    await reads.deployment_pods("prod", "new")
    stores["replicasets"].broken()
    await reads.deployment_pods("prod", "web")
    assert api == ["scale new", "scale db", "workload new", "workload web"]


async def test_with_the_caches_off_everything_is_read(api: list[str], hpas: kube.HpaLists) -> None:
    reads = CachedReads(ClusterCache(enabled=False))
    assert reads.cache.namespace("prod") is None
    await reads.read_scale("prod", WEB)
    await reads.count_pods("prod", kube.Scale(1, 1, "app=web", SELECTOR))
    assert await reads.conflicting_hpa("prod", WEB, hpas) is None
    assert api == ["scale web", "pods app=web", "hpas prod"]


async def test_our_own_write_is_read_from_the_api_server_until_the_cache_has_it(
        reads: CachedReads, stores: dict[str, Store], api: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[int] = []

    async def write_scale(api_client: Any, namespace: str, target: kube.TargetRef,
                          replicas: int, resolve: Any) -> None:
        written.append(replicas)

    monkeypatch.setattr(kube, "write_scale", write_scale)
    await reads.write_scale("prod", WEB, 5)
    assert (await reads.read_scale("prod", WEB)).replicas == 4  # the API server's
    stores["deployments"].apply({"type": "MODIFIED", "object": {
        **DEPLOYMENT, "spec": {"replicas": 5, "selector": SELECTOR}}})
    assert (await reads.read_scale("prod", WEB)).replicas == 5  # the cache caught up
    assert written == [5] and api == ["scale web"]
    assert reads._expected == {}


def test_an_expectation_not_met_in_time_is_someone_elses_change(reads: CachedReads) -> None:
    reads._expected[("prod", "web")] = (5, 100.0)
    assert not reads._as_expected("prod", DEPLOYMENT, 100.0 + 1)
    assert reads._as_expected("prod", DEPLOYMENT, 100.0 + cached_reads.EXPECT_SECONDS + 1)
    assert reads._expected == {}
