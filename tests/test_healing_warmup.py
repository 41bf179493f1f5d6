"""The detector's history backfill runs in the background: the syncs' rows are not lost to it."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.adapters.prometheus import PrometheusError, RangeSeries
from adaptive_operator.adapters.range_batch import RangeBatcher
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.healing.watch import backfilled
from adaptive_operator.handlers import healing_observe


def spec() -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 5,
        "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 10}],
        "healing": {"enabled": True, "mode": "DryRun"}})


async def test_rows_appended_while_the_history_backfills_follow_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = spec()
    healing = service.healing or HealingSpec()
    watcher = healing_observe.start_watcher(healing)
    assert len(watcher.history) == 0  # made at once: the first sync does not wait
    names = list(healing.metrics)

    async def history(namespace: str, spec: AdaptiveServiceSpec, metrics: dict[str, str],
                      start: float, end: float, step: float,
                      ranges: Any) -> dict[str, RangeSeries]:
        # A sync appends its row while the range queries are out.
        watcher.history.append({name: 99.0 for name in names})
        return {name: RangeSeries(start, step, [float(k) for k in range(5)], {})
                for name in names}

    monkeypatch.setattr(healing_observe, "read_history", history)
    await healing_observe.backfill_watcher("ns", service, healing, watcher, 1000.0,
                                           RangeBatcher())
    assert {name: values[-6:] for name, values in watcher.history.rows.items()} == {
        name: [0.0, 1.0, 2.0, 3.0, 4.0, 99.0] for name in names}


async def test_a_failed_backfill_keeps_the_rows_the_syncs_appended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = spec()
    healing = service.healing or HealingSpec()
    watcher = healing_observe.start_watcher(healing)
    watcher.history.append({name: 1.0 for name in healing.metrics})

    async def failing(*_: Any) -> dict[str, RangeSeries]:
        raise PrometheusError("range query failed")

    monkeypatch.setattr(healing_observe, "read_history", failing)
    await healing_observe.backfill_watcher("ns", service, healing, watcher, 1000.0,
                                           RangeBatcher())
    assert len(watcher.history) == 1


def test_backfilled_keeps_the_live_rows_after_the_backfill() -> None:
    healing = spec().healing or HealingSpec()
    watcher = healing_observe.start_watcher(healing)
    watcher.history.append({"errorRatio": 7.0})
    backfilled(watcher, {"errorRatio": [1.0, None, 2.0]})
    assert watcher.history.rows == {"errorRatio": [1.0, 2.0, 7.0]}
