"""From the AdaptiveService spec and status to the scaling domain, and back."""

from __future__ import annotations

from typing import Any

import pytest

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec, AdaptiveServiceStatus
from adaptive_operator.domain.scaling.algorithm import (
    DEFAULT_SCALE_DOWN,
    DEFAULT_SCALE_UP,
    Recommendation,
    ScaleEvent,
    ScalingHistory,
    ScalingPolicy,
    ScalingRules,
)
from adaptive_operator.domain.scaling.config import (
    history_changed,
    history_from_status,
    history_to_status,
    restored_history,
    spec_from_model,
)

BASE: dict[str, Any] = {
    "scaleTargetRef": {"name": "web"},
    "maxReplicas": 10,
    "metrics": [{"name": "rps", "query": "sum(x)", "targetPerReplica": 5}],
}


@pytest.mark.parametrize(
    ("behavior", "up", "down"),
    [
        pytest.param(
            None, DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN, id="no-behavior-takes-hpa-defaults"
        ),
        pytest.param(
            {"scaleDown": {"stabilizationWindowSeconds": 0}},
            DEFAULT_SCALE_UP,
            ScalingRules(0, "Max", DEFAULT_SCALE_DOWN.policies),
            id="window-only-keeps-default-policies",
        ),
        pytest.param(
            {"scaleUp": {"selectPolicy": "Disabled"}},
            ScalingRules(0, "Disabled", DEFAULT_SCALE_UP.policies),
            DEFAULT_SCALE_DOWN,
            id="select-policy-only",
        ),
        pytest.param(
            {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]}},
            ScalingRules(0, "Max", (ScalingPolicy("Pods", 2, 60),)),
            DEFAULT_SCALE_DOWN,
            id="policies-replace-the-defaults",
        ),
    ],
)
def test_spec_from_model(
    behavior: dict[str, Any] | None, up: ScalingRules, down: ScalingRules
) -> None:
    spec = spec_from_model(
        AdaptiveServiceSpec.model_validate({**BASE, "behavior": behavior, "tolerance": 0.2})
    )
    assert (spec.min_replicas, spec.max_replicas, spec.tolerance) == (1, 10, 0.2)
    assert (spec.scale_up, spec.scale_down) == (up, down)


def test_history_survives_a_round_trip_through_status_yaml() -> None:
    history = ScalingHistory(
        (Recommendation(1_700_000_000.5, 4), Recommendation(1_700_000_015.0, 6)),
        (ScaleEvent(1_700_000_015.0, 2),),
    )
    stored = AdaptiveServiceStatus(history=history_to_status(history))
    dumped = stored.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["history"]["scaleEvents"] == [{"time": "2023-11-14T22:13:35Z", "change": 2}]
    restored = AdaptiveServiceStatus.model_validate(dumped)
    assert history_from_status(restored.history) == history


def test_missing_or_naive_history() -> None:
    assert history_from_status(None) == ScalingHistory()
    status = AdaptiveServiceStatus.model_validate(
        {"history": {"recommendations": [{"time": "2023-11-14T22:13:20", "replicas": 3}]}}
    )
    assert history_from_status(status.history).recommendations == (
        Recommendation(1_700_000_000.0, 3),
    )


def recs(*pairs: tuple[float, int]) -> ScalingHistory:
    return ScalingHistory(tuple(Recommendation(t, r) for t, r in pairs))


def test_a_repeated_recommendation_is_not_written_again() -> None:
    written = recs((100.0, 5), (130.0, 3))
    repeated = recs((100.0, 5), (145.0, 3))  # 3 again: only its time moved
    assert not history_changed(written, repeated)
    assert not history_changed(written, recs((100.0, 5), (130.0 + 3600.0, 3)))


@pytest.mark.parametrize("new", [
    recs((100.0, 5), (130.0, 3), (145.0, 4)),  # a new value
    recs((145.0, 3)),  # 5 left the window: the limit a restarted operator must see
    ScalingHistory(recs((100.0, 5), (145.0, 3)).recommendations, (ScaleEvent(145.0, -2),)),
])
def test_a_changed_limit_or_a_scale_event_is_written_at_once(new: ScalingHistory) -> None:
    assert history_changed(recs((100.0, 5), (130.0, 3)), new)


def test_nothing_written_yet_is_due() -> None:
    assert history_changed(None, recs((100.0, 5)))


def stored(*pairs: tuple[str, int]) -> AdaptiveServiceStatus:
    return AdaptiveServiceStatus.model_validate({"history": {"recommendations": [
        {"time": time, "replicas": replicas} for time, replicas in pairs]}})


def test_a_restored_history_holds_the_current_count_for_a_window_as_upstream_starts() -> None:
    status = stored(("2023-11-14T22:13:20Z", 6), ("2023-11-14T22:14:20Z", 4))
    restored = restored_history(status.history, 5, 1_700_000_200.0, 300.0)
    assert restored.recommendations == (
        Recommendation(1_700_000_000.0, 6), Recommendation(1_700_000_060.0, 4),
        Recommendation(1_700_000_200.0, 5))


def test_without_scale_down_stabilization_nothing_is_seeded() -> None:
    status = stored(("2023-11-14T22:13:20Z", 6))
    assert restored_history(status.history, 5, 1_700_000_200.0, 0.0) == history_from_status(
        status.history)
    assert restored_history(None, 5, 1_700_000_200.0, 0.0) == ScalingHistory()
