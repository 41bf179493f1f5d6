"""Scale-out on saturation, wired: the healing daemon's load signal (the scaling metrics it
reads beside the health metrics), the healing decision, and the scaler carrying it out as a
floor (so the scaler's max and behavior apply and it does not scale the workload back)."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.healing.anomaly import AnomalyVerdict, Contribution
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector
from adaptive_operator.domain.healing.inputs import (
    LOAD_BASELINE_ROWS,
    HealthHistory,
    ledger_to_json,
    load_signals,
    relative_change,
)
from adaptive_operator.domain.healing.ladder import (
    Action,
    HealingPolicy,
    LedgerEntry,
    Observation,
    Outcome,
    decide_healing,
    detector_settings_from_spec,
    policy_from_spec,
    scale_out_floor,
)
from adaptive_operator.domain.healing.plan import LEDGER
from adaptive_operator.domain.healing.scaler import healing_floor
from adaptive_operator.domain.healing.watch import Watcher, saturation
from adaptive_operator.domain.scaling import algorithm as scaling
from adaptive_operator.domain.scaling import sync
from adaptive_operator.domain.scaling.config import spec_from_model
from adaptive_operator.handlers import healing_apply

from fakes import Cluster

NOW = 1_800_000_000.0
FLAT = [10.0] * LOAD_BASELINE_ROWS
POLICY = HealingPolicy(enabled=True, verify_seconds=16, cooldown_seconds=60)
LATENCY_UP = AnomalyVerdict(0.9, True, (Contribution("latencyP99", 0.9, 0.2, 9.0),))


def service(mode: str = "Active", healing_on: bool = True) -> AdaptiveServiceSpec:
    return AdaptiveServiceSpec.model_validate(
        {
            "scaleTargetRef": {"name": "web"},
            "minReplicas": 2,
            "maxReplicas": 4,
            "mode": mode,
            "metrics": [{"name": "rps", "query": "sum(rps)", "targetPerReplica": 100}],
            "healing": {"enabled": healing_on, "verifySeconds": 16, "cooldownSeconds": 60},
        }
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([*FLAT, 15, 15, 15], 0.5, id="load-up-half"),
        pytest.param([*FLAT, 10, 10, 10], 0.0, id="flat-load-no-change"),
        pytest.param([*FLAT, 5, 5, 5], -0.5, id="load-down-half"),
        pytest.param([0.0] * LOAD_BASELINE_ROWS + [4, 4, 4], 1.0, id="from-zero-any-rise-counts"),
        pytest.param([0.0] * (LOAD_BASELINE_ROWS + 3), 0.0, id="zero-stays-zero"),
        pytest.param([*FLAT, math.nan, math.inf, 15, 15, 15], 0.5, id="non-finite-rows-skipped"),
        pytest.param([10.0, 10.0, 15, 15, 15], None, id="too-little-history"),
    ],
)
def test_relative_change_of_the_recent_rows(values: list[float], expected: float | None) -> None:
    found = relative_change(values, recent_rows=3)
    assert found == (None if expected is None else pytest.approx(expected))


ROLES = {"latency": "latency", "cpu": "cpu"}


def test_latency_and_cpu_are_found_by_role_and_the_largest_load_change_wins() -> None:
    health = {
        "p99": [*FLAT, 18, 18, 18],
        "busy": [*FLAT, 13, 13, 13],
        "errorRatio": [*FLAT, 50, 50, 50],
        # Named like latency, but its role says otherwise: never read as latency.
        "latency_budget_left": [*FLAT, 40, 40, 40],
    }
    load = {"rps": [*FLAT, 12, 12, 12], "queue": [*FLAT, 16, 16, 16]}
    roles = {"p99": "latency", "busy": "cpu", "errorRatio": "errors",
             "latency_budget_left": "other"}
    signals = load_signals(load, health, 3, roles)
    assert signals is not None
    assert (signals.load_change, signals.latency_change, signals.cpu_change) == pytest.approx(
        (0.6, 0.8, 0.3))
    assert signals.saturated


@pytest.mark.parametrize(
    ("load", "health", "saturated"),
    [
        pytest.param([*FLAT, 10, 10, 10], [*FLAT, 20, 20, 20], False, id="latency-up-load-flat"),
        pytest.param([*FLAT, 20, 20, 20], [*FLAT, 10, 10, 10], False, id="load-up-latency-flat"),
        pytest.param([*FLAT, 20, 20, 20], [*FLAT, 20, 20, 20], True, id="both-up-is-saturation"),
    ],
)
def test_saturation_needs_load_and_latency_up_together(
    load: list[float], health: list[float], saturated: bool
) -> None:
    signals = load_signals({"rps": load}, {"latency": health}, 3, ROLES)
    assert signals is not None and signals.saturated is saturated


def test_no_load_history_gives_no_signal() -> None:
    assert load_signals({}, {"latency": [*FLAT, 20, 20, 20]}, 3, ROLES) is None
    assert load_signals({"rps": [1.0, 2.0]}, {"latency": [*FLAT]}, 3, ROLES) is None


@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=80),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=80),
    st.integers(min_value=1, max_value=10),
)
def test_load_signals_are_finite_whatever_the_rows(
    load: list[float], latency: list[float], recent: int
) -> None:
    signals = load_signals({"rps": load}, {"latency": latency, "cpu": latency}, recent, ROLES)
    if signals is not None:
        assert all(
            math.isfinite(v)
            for v in (signals.load_change, signals.latency_change, signals.cpu_change)
        )


def scale_out(ago: float, replicas: int, outcome: Outcome = Outcome.PENDING) -> LedgerEntry:
    return LedgerEntry(
        f"scaleout-{int(NOW - ago)}", Action.SCALE_OUT, NOW - ago, outcome, replicas=replicas
    )


@pytest.mark.parametrize(
    ("ledger", "floor"),
    [
        pytest.param([], None, id="no-scale-out-no-floor"),
        pytest.param([scale_out(5, 3)], 3, id="pending-scale-out-holds"),
        pytest.param([scale_out(40, 3, Outcome.HELPED)], 3, id="held-through-the-cooldown"),
        pytest.param(
            [scale_out(77, 3, Outcome.HELPED)], None, id="released-after-verify-and-cooldown"
        ),
        pytest.param([scale_out(5, 3, Outcome.DRY_RUN)], None, id="a-dry-run-holds-nothing"),
        pytest.param([scale_out(50, 3, Outcome.HELPED), scale_out(5, 4)], 4, id="highest-wins"),
    ],
)
def test_a_healing_scale_out_holds_a_floor(ledger: list[LedgerEntry], floor: int | None) -> None:
    assert scale_out_floor(POLICY, ledger, NOW) == floor


def body_with(ledger: str | None) -> dict[str, dict[str, str]]:
    return {"annotations": {LEDGER: ledger} if ledger is not None else {}}


def floor_for(spec: AdaptiveServiceSpec, metadata: dict[str, dict[str, str]],
              now: float) -> tuple[int | None, str]:
    """The scaler's floor without a forecast: what the healing ledger holds up."""
    return sync.floor_for(None, healing_floor(spec, metadata["annotations"], now))


def test_the_scaler_takes_the_higher_floor_and_names_it() -> None:
    body = body_with(ledger_to_json([scale_out(5, 3)]))
    assert floor_for(service(), body, NOW) == (3, sync.HEALING_FLOOR)
    no_healing = floor_for(service(healing_on=False), body, NOW)
    assert no_healing == (None, "the forecast")
    damaged = floor_for(service(), body_with("{not json"), NOW)
    assert damaged == (None, "the forecast")


def healing_watcher(spec: AdaptiveServiceSpec, load: list[float], latency: list[float]) -> Watcher:
    assert spec.healing is not None
    settings = detector_settings_from_spec(spec.healing)
    watcher = Watcher(
        {"latencyP99": "q"}, {"latencyP99": "latency"}, settings, HealthHistory(500),
        AnomalyDetector(settings, 0),
    )
    for lat in latency:
        watcher.history.append({"latencyP99": lat})
    for value in load:
        watcher.load.append({"rps": value})
    return watcher


def test_saturation_flows_from_the_watcher_through_healing_to_the_scaler() -> None:
    spec = service()
    assert spec.healing is not None
    watcher = healing_watcher(spec, [*FLAT, 150, 160, 170], [*FLAT, 30, 30, 30])
    signals = saturation(watcher)
    assert signals is not None and signals.saturated
    observation = Observation(LATENCY_UP, NOW - 4, load=signals, replicas=2, max_replicas=4)
    plan = decide_healing(policy_from_spec(spec.healing), observation, [], NOW)
    assert (plan.action, plan.reason) == (Action.SCALE_OUT, "Saturation")
    assert plan.intent is not None and plan.intent.replicas == 3
    assert "load +" in plan.message and "2 -> 3 (max 4)" in plan.message

    body = body_with(ledger_to_json([plan.intent]))
    floor, source = floor_for(spec, body, NOW + 2)
    # 160 rps at 100 per replica asks for 2: the scaler alone would not scale out.
    snapshot = scaling.ScalingSnapshot(2, 2, 0, (scaling.MetricReading("rps", 160.0, 100.0),))
    history = scaling.ScalingHistory((), ())
    decision = scaling.decide(
        spec_from_model(spec), snapshot, history, NOW + 2, floor, floor_source=source
    )
    assert decision.desired_replicas == 3
    assert decision.message.startswith(
        "scaled to 3 from 2 because a healing scale-out (saturation) asks for at least 3"
    )


def test_flat_load_gives_no_scale_out_even_with_latency_up() -> None:
    spec = service()
    watcher = healing_watcher(spec, [*FLAT, 10, 10, 10], [*FLAT, 30, 30, 30])
    observation = Observation(
        LATENCY_UP, NOW - 4, load=saturation(watcher), replicas=2, max_replicas=4
    )
    assert decide_healing(POLICY, observation, [], NOW).action is Action.NONE


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        pytest.param("Active", None, id="active-scaler-carries-it"),
        pytest.param("Paused", "the scaler is in Paused mode", id="paused-scaler-cannot"),
    ],
)
def test_the_scale_out_is_left_to_the_scaler(mode: str, problem: str | None) -> None:
    intent = scale_out(0, 3)
    found = asyncio.run(healing_apply._perform("default", service(mode), intent, Cluster()))
    assert found == problem or (
        problem is not None and found is not None and found.startswith(problem)
    )


def test_the_ledger_round_trip_keeps_the_scale_out_replicas() -> None:
    text = ledger_to_json([scale_out(5, 3)])
    assert json.loads(text)[0]["replicas"] == 3
