"""The detector's history backfill runs in the background: the syncs' rows are not lost to it."""

from __future__ import annotations

from typing import Any

import pytest
from urllib3 import HTTPConnectionPool
from urllib3.exceptions import ReadTimeoutError

from adaptive_operator.adapters.prometheus import PrometheusError, RangeSeries
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.healing.watch import add_row, backfilled, watches
from adaptive_operator.handlers import healing_observe
from adaptive_operator.handlers import runtime as handler_runtime
from adaptive_operator.handlers.runtime import Runtime
from adaptive_operator.handlers.warmup import WarmUps

from fakes import Cluster, Ranges


def spec() -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 5,
        "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 10}],
        "healing": {"enabled": True, "mode": "DryRun"}})


def runtime(answer: Any) -> Runtime:
    """A Deployment's pods (for {{pods}}) and the range queries answered by `answer`."""
    cluster = Cluster(pods=[{"metadata": {"name": "web-0"}}])
    return cluster.runtime(warmups=WarmUps(ranges=Ranges(answer)))


async def test_rows_appended_while_the_history_backfills_follow_it() -> None:
    service = spec()
    healing = service.healing or HealingSpec()
    watcher = healing_observe.start_watcher(healing)
    assert len(watcher.history) == 0  # made at once: the first sync does not wait
    names = list(healing.metrics)

    async def history(url: Any, query: str, start: float, end: float,
                      step: float) -> RangeSeries:
        if len(watcher.history) == 0:  # a sync appends its row while the range queries are out
            watcher.history.append({name: 99.0 for name in names})
        return RangeSeries(start, step, [float(k) for k in range(5)], {})

    await healing_observe.backfill_watcher("ns", service, healing, watcher, 1000.0,
                                           runtime(history))
    assert {name: values[-6:] for name, values in watcher.history.rows.items()} == {
        name: [0.0, 1.0, 2.0, 3.0, 4.0, 99.0] for name in names}


@pytest.mark.parametrize("error", [
    pytest.param(PrometheusError("range query failed"), id="prometheus-failed"),
    pytest.param(ReadTimeoutError(HTTPConnectionPool("127.0.0.1"), "/", "Read timed out."),
                 id="api-server-timed-out"),
])
async def test_a_failed_backfill_keeps_the_rows_the_syncs_appended(error: Exception) -> None:
    """Nor does the background task end with an exception no one reads."""
    service = spec()
    healing = service.healing or HealingSpec()
    watcher = healing_observe.start_watcher(healing)
    watcher.history.append({name: 1.0 for name in healing.metrics})

    async def failing(*_: Any) -> RangeSeries:
        raise error

    await healing_observe.backfill_watcher("ns", service, healing, watcher, 1000.0,
                                           runtime(failing))
    assert len(watcher.history) == 1


def test_backfilled_keeps_the_live_rows_after_the_backfill() -> None:
    healing = spec().healing or HealingSpec()
    watcher = healing_observe.start_watcher(healing)
    watcher.history.append({"errorRatio": 7.0})
    backfilled(watcher, {"errorRatio": [1.0, None, 2.0]})  # the step with no value made up
    assert watcher.history.rows == {"errorRatio": [1.0, 1.0, 2.0, 7.0]}


async def test_the_watcher_is_kept_until_the_metrics_change_and_its_backfill_goes_with_it() -> None:
    import asyncio
    import contextlib

    from adaptive_operator.handlers.healing import Watching

    async def never(*_: Any) -> RangeSeries:
        await asyncio.Event().wait()  # the backfill is still out
        raise AssertionError("unreachable")

    rt = runtime(never)
    service = spec()
    watching = Watching()
    first = watching.watch("ns", service, service.healing or HealingSpec(), rt)
    assert watching.watch("ns", service, service.healing or HealingSpec(), rt) is first
    backfill = watching.warming
    assert backfill is not None
    other = HealingSpec.model_validate({"enabled": True, "metrics": {"errors": "sum(e)"}})
    second = watching.watch("ns", service, other, rt)
    assert second is not first and second.metrics == {"errors": "sum(e)"}
    with contextlib.suppress(asyncio.CancelledError):
        await backfill
    assert backfill.cancelled()
    watching.stop()


def test_a_watcher_watches_its_metrics_in_their_roles_and_counts_rows_to_its_refit() -> None:
    healing = spec().healing or HealingSpec()
    watcher = healing_observe.start_watcher(healing)
    assert watches(watcher, healing) and not watches(None, healing)
    assert not watches(watcher, HealingSpec.model_validate(
        {"enabled": True, "metrics": {"errors": "sum(e)"}}))
    roles = {name: "latency" for name in healing.metrics}
    assert not watches(watcher, HealingSpec.model_validate(
        {"enabled": True, "metrics": dict(healing.metrics), "roles": roles}))
    add_row(watcher, {name: 1.0 for name in healing.metrics}, 0.0, 15.0)
    add_row(watcher, {name: 2.0 for name in healing.metrics}, 15.0, 15.0)
    assert len(watcher.history) == 2 and watcher.rows_since_fit == 2


class Stopped:
    """kopf's DaemonStopped, as far as a healing period uses it (never set), and the waits
    `runtime.pause` was asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.waits: list[float] = []
        monkeypatch.setattr(handler_runtime, "pause", self.pause)

    def __bool__(self) -> bool:
        return False

    async def pause(self, stopped: Any, seconds: float) -> None:
        assert stopped is self
        self.waits.append(seconds)


async def test_a_replica_that_may_not_act_reads_and_keeps_no_healing_history(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the services shared out over lease shards, a replica that does not hold a service's
    shard starts no backfill for it, and drops the history it had when the shard went away."""
    import asyncio
    import contextlib
    from dataclasses import replace

    from adaptive_operator.handlers.healing import Watching, heal_period

    async def never(*_: Any) -> RangeSeries:
        await asyncio.Event().wait()  # the backfill is still out
        raise AssertionError("unreachable")

    service = spec()
    body = {"metadata": {"name": "web", "namespace": "ns", "generation": 1},
            "spec": service.model_dump(by_alias=True, exclude_none=True)}
    watching = Watching()
    held = replace(runtime(never), may_act=lambda: True)
    watching.watch("ns", service, service.healing or HealingSpec(), held)
    backfill = watching.warming
    assert backfill is not None
    stopped = Stopped(monkeypatch)
    await heal_period("ns", "web", body, stopped, watching,  # type: ignore[arg-type]
                      replace(held, may_act=lambda: False))
    assert watching.watcher is None
    with contextlib.suppress(asyncio.CancelledError):
        await backfill
    assert backfill.cancelled()
    assert stopped.waits == [float(service.sync_period_seconds)]
    await heal_period("ns", "web", body, stopped, watching,  # type: ignore[arg-type]
                      replace(held, may_act=lambda: False))
    assert watching.watcher is None and watching.warming is backfill  # none started since
