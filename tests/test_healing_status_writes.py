"""The healing status is written when something a reader acts on changed, not every sync."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.domain.common.times import timestamp
from adaptive_operator.domain.healing.plan import VERDICT_REFRESH_SECONDS, differs

from fakes import Cluster, FixedClock

NOW = 1_800_000_000.0


def status(score: float = 0.5, anomaly: bool = False, reason: str = "Healthy",
           written: float = NOW - 15, **extra: Any) -> dict[str, Any]:
    return {"state": {"reason": reason, "message": f"score {score}", "time": timestamp(written)},
            "lastVerdict": {"score": score, "isAnomaly": anomaly, "time": timestamp(written)},
            "ledger": {"total": 0}, **extra}


@pytest.mark.parametrize(("new", "written"), [
    pytest.param(status(score=0.7, anomaly=True), True, id="the-verdict-turns-anomalous"),
    pytest.param(status(reason="Persisting"), True, id="the-state-changes"),
    pytest.param(status(ledger={"total": 1}), True, id="the-ledger-grows"),
    pytest.param(status(score=0.53), False, id="only-the-score-moves"),
])
def test_what_changed_decides_the_write(new: dict[str, Any], written: bool) -> None:
    assert differs(status(), new, NOW) is written


def test_the_verdicts_numbers_are_refreshed_once_a_minute() -> None:
    old = status(written=NOW - VERDICT_REFRESH_SECONDS)
    assert differs(old, status(score=0.51), NOW)
    assert differs({}, status(), NOW)  # never written
    damaged = status()
    damaged["lastVerdict"]["time"] = "yesterday"
    assert differs(damaged, status(), NOW)


def test_without_a_verdict_the_state_is_not_rewritten_each_sync() -> None:
    def waiting(at: float) -> dict[str, Any]:
        return {"state": {"reason": "Healthy", "message": "no verdict yet",
                          "time": timestamp(at)}, "ledger": {"total": 0}}
    assert not differs(waiting(NOW - 15), waiting(NOW), NOW)
    assert not differs(waiting(NOW - 3600), waiting(NOW), NOW)
    assert differs(waiting(NOW - 15), status(), NOW)  # the first verdict is written at once


def test_a_verdict_from_before_a_restart_is_not_rewritten_until_a_new_one_comes() -> None:
    """A restarted process has no verdict until its detector is fitted again (minutes, with
    thousands of services fitted one at a time); the last process's verdict, however old, is
    only shown again, not refreshed: a write per sync for it is noise."""
    shown = status(written=NOW - 3600)
    carried = {**shown, "state": {"reason": "Healthy", "message": "no verdict yet",
                                  "time": timestamp(NOW)}}
    assert not differs(shown, carried, NOW)
    assert differs(shown, status(score=0.52, written=NOW), NOW)  # a new verdict: refreshed


async def test_an_api_error_fails_one_healing_sync_not_the_daemon() -> None:
    import urllib3
    from prometheus_client import REGISTRY

    from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
    from adaptive_operator.handlers import healing
    from adaptive_operator.handlers.healing_observe import start_watcher

    service = AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 5,
        "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 10}],
        "healing": {"enabled": True}})
    assert service.healing is not None
    watcher = start_watcher(service.healing)

    async def sync(api: Cluster) -> None:
        await healing.guarded_heal("ns", "web", {"metadata": {}}, service,  # type: ignore[arg-type]
                                   watcher, api.runtime(clock=FixedClock(NOW)))

    labels = {"namespace": "ns", "name": "web", "reason": "ApiUnavailable"}
    before = REGISTRY.get_sample_value("adaptive_reconcile_errors_total", labels) or 0.0
    await sync(Cluster(broken=urllib3.exceptions.ProtocolError("connection refused")))
    assert REGISTRY.get_sample_value("adaptive_reconcile_errors_total", labels) == before + 1

    with pytest.raises(KeyError):  # a bug is not an outage: kopf reports it
        await sync(Cluster(broken=KeyError("a bug")))
