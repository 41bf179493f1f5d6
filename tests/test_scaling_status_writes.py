"""The scaling daemon writes status only when it differs from what this process last wrote: the
watched body lags behind its own patches, and compared with it every sync would write again."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.scaling.algorithm import (
    MetricReading,
    ScalingDecision,
    ScalingHistory,
)
from adaptive_operator.domain.scaling.plan import merged
from adaptive_operator.domain.scaling.status import SyncOutcome
from adaptive_operator.handlers import adaptive_service

from fakes import FixedClock

NOW = 1_000.0


def spec() -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate({
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 5, "mode": "DryRun",
        "metrics": [{"name": "rps", "query": "sum(x)", "targetPerReplica": 10}]})


def outcome(desired: int) -> SyncOutcome:
    made = ScalingDecision(desired, "ScaleUp", f"to {desired}", (("rps", desired),), False,
                           True, ScalingHistory((), ()))
    return SyncOutcome("DryRun", made, readings=(MetricReading("rps", 50.0, 10.0),))


async def test_a_status_already_written_is_not_written_again_from_a_stale_body(
        monkeypatch: pytest.MonkeyPatch) -> None:
    patches: list[dict[str, Any]] = []

    async def patch_status(plural: str, namespace: str, name: str,
                           status: dict[str, Any]) -> None:
        patches.append(status)

    monkeypatch.setattr(adaptive_service.kube, "patch_status", patch_status)
    stale = kopf.Body({"metadata": {"name": "web", "generation": 1}, "status": {}})
    memory, clock = adaptive_service.Memory(), FixedClock(NOW)
    for sync in range(3):  # the body never shows the first write
        clock.at = NOW + 15 * sync
        await adaptive_service.write_status("ns", "web", stale, spec(), outcome(3), None, None,
                                            None, memory, clock)
    assert len(patches) == 1
    await adaptive_service.write_status("ns", "web", stale, spec(), outcome(4), None, None,
                                        None, memory, clock)
    assert len(patches) == 2 and patches[1]["desiredReplicas"] == 4
    memory.forget()  # another replica may have written since: the body is read again
    await adaptive_service.write_status("ns", "web", stale, spec(), outcome(4), None, None,
                                        None, memory, clock)
    assert len(patches) == 3


def test_a_merge_patch_deletes_none_and_merges_dicts() -> None:
    old = {"a": 1, "w": {"x": 1, "y": 2}, "f": {"k": 1}}
    assert merged(old, {"w": {"x": None, "z": 3}, "f": None, "b": [1]}) == {
        "a": 1, "w": {"y": 2, "z": 3}, "b": [1]}
    assert old == {"a": 1, "w": {"x": 1, "y": 2}, "f": {"k": 1}}
