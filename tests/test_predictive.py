"""The predictive advisor: floors, the guard, causality on a prefix, determinism, status."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pytest

from adaptive_operator.api.predictive import PredictiveSpec
from adaptive_operator.domain.forecasting import FORECASTERS, ModelKind
from adaptive_operator.domain.forecasting.models import RepeatedCycle
from adaptive_operator.domain.scaling.forecast_status import status_from_state
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor, PredictiveSettings
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay

INTERVAL = 1800.0  # 30-minute rows keep the tests fast; the code is resolution-agnostic
DAY = 48
# The trust tests look at the forecast alone: without the persistence band's floor, which
# stands in while no forecast is trusted (its own tests: test_persistence.py).
FAST = PredictiveSettings(
    refit_seconds=86400 / 2, error_window_seconds=86400, persistence_fallback=False
)


def seasonal(days: int, seed: int = 0) -> list[float | None]:
    t = np.arange(days * DAY)
    rng = np.random.default_rng(seed)
    y = 100 + 60 * np.sin(2 * np.pi * t / DAY) ** 2 + rng.normal(0, 2, len(t))
    return [float(v) for v in y]


def run(values: list[float | None], settings: PredictiveSettings = FAST) -> tuple[
    list[int | None], PredictiveAdvisor
]:
    advisor = PredictiveAdvisor(settings)
    floors = [
        advisor.advise(values[: i + 1], INTERVAL, 2 * INTERVAL, 10.0) for i in range(len(values))
    ]
    return floors, advisor


@pytest.fixture(scope="module")
def seasonal_run() -> tuple[list[float | None], list[int | None], PredictiveAdvisor]:
    values = seasonal(7)
    floors, advisor = run(values)
    return values, floors, advisor


def test_seasonal_load_gets_a_floor_that_covers_the_coming_load(
    seasonal_run: tuple[list[float | None], list[int | None], PredictiveAdvisor],
) -> None:
    values, floors, advisor = seasonal_run
    assert advisor.state.reliable
    assert advisor.state.model in {ModelKind.SEASONAL_NAIVE, ModelKind.HOLT_WINTERS, ModelKind.MSTL}
    assert advisor.state.backtest_mase is not None and advisor.state.backtest_mase < 1.0
    used = [(i, f) for i, f in enumerate(floors[:-2]) if f is not None]
    assert len(used) > DAY
    covered = [f * 10.0 >= values[i + 1] for i, f in used]  # type: ignore[operator]
    assert np.mean(covered) > 0.8


def cycles(period: int, count: float, seed: int = 0) -> list[float | None]:
    """`count` cycles of a `period`-row season (a sine plus a little noise)."""
    t = np.arange(int(period * count))
    rng = np.random.default_rng(seed)
    y = 100 + 50 * np.sin(2 * np.pi * t / period) + rng.normal(0, 2, len(t))
    return [float(v) for v in y]


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        pytest.param(cycles(40, 1.5), "too little history", id="fewer-rows-than-detection-needs"),
        pytest.param(cycles(48, 2.6), "too little history: 2.", id="season-seen-only-twice"),
    ],
)
def test_too_little_history_is_reactive_only(values: list[float | None], reason: str) -> None:
    floors, advisor = run(values)
    assert floors == [None] * len(floors)
    assert not advisor.state.reliable
    assert advisor.state.reason.startswith(reason)


def test_minimum_history_follows_the_detected_season_not_the_clock() -> None:
    """A one-minute season in 1-second rows: trusted after three cycles, minutes not days."""
    values = cycles(60, 8)
    advisor = PredictiveAdvisor(PredictiveSettings(persistence_fallback=False))
    floors = [advisor.advise(values[: i + 1], 1.0, 2.0, 10.0) for i in range(len(values))]
    first = next(i for i, f in enumerate(floors) if f is not None)
    assert 3 * 60 <= first < 6 * 60
    assert advisor.state.reliable


def test_noise_is_not_trusted() -> None:
    rng = np.random.default_rng(7)
    floors, advisor = run([float(v) for v in rng.normal(100, 20, 5 * DAY)])
    assert floors[-DAY:] == [None] * DAY
    assert not advisor.state.reliable
    assert "seasonality" in advisor.state.reason


def test_guard_turns_off_when_the_forecast_loses_to_seasonal_naive(
    seasonal_run: tuple[list[float | None], list[int | None], PredictiveAdvisor],
) -> None:
    values, _, _ = seasonal_run
    strict = replace(FAST, max_relative_error=0.0)
    floors, advisor = run(values, strict)
    assert floors[-1] is None
    assert "not better" in advisor.state.reason


@dataclass(frozen=True)
class AntiPhase:
    """A forecaster that repeats the last cycle half a season out of phase: a genuinely bad
    forecast, registered in place of a real model."""

    kind: ModelKind

    def fit(self, y: np.ndarray, periods: tuple[int, ...]) -> RepeatedCycle:
        period = periods[0]
        return RepeatedCycle(np.roll(np.asarray(y[-period:], dtype=np.float64), period // 2))


@pytest.mark.parametrize(
    ("kind", "reference"),
    [
        pytest.param(ModelKind.HOLT_WINTERS, "seasonal naive", id="fitted-model-worse-than-naive"),
        pytest.param(ModelKind.SEASONAL_NAIVE, "persistence",
                     id="seasonal-naive-worse-than-persistence"),
    ],
)
def test_guard_refuses_a_genuinely_bad_forecast(
    kind: ModelKind, reference: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(FORECASTERS, kind, lambda: AntiPhase(kind))
    floors, advisor = run(seasonal(7), replace(FAST, model=kind))
    assert floors[-DAY:] == [None] * DAY
    assert advisor.state.reference == reference
    assert advisor.state.reason.endswith(f"{reference}'s: not better")


def e2e_like(rows: int, seed: int) -> list[float | None]:
    """The e2e's pattern on its sync grid: a 30-row season (60 s at 2 s), noise 1.5."""
    t = np.arange(rows)
    rng = np.random.default_rng(seed)
    return [float(v) for v in 50 - 35 * np.cos(2 * np.pi * t / 30) + rng.normal(0, 1.5, rows)]


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_seasonal_naive_is_not_held_to_itself(seed: int) -> None:
    """Seasonal naive (with its level correction) on a clean season differs from plain seasonal
    naive only by noise; held to persistence instead, it is trusted, as it should be."""
    settings = PredictiveSettings(model=ModelKind.SEASONAL_NAIVE, history_seconds=300)
    advisor = PredictiveAdvisor(settings)
    values = e2e_like(200, seed)
    floors = [advisor.advise(values[: i + 1], 2.0, 16.0, 10.0) for i in range(len(values))]
    assert all(f is not None for f in floors[-60:])
    assert advisor.state.reference == "persistence"
    assert advisor.state.reason.endswith("x persistence's")


def test_prefix_gives_the_same_floors(
    seasonal_run: tuple[list[float | None], list[int | None], PredictiveAdvisor],
) -> None:
    values, floors, _ = seasonal_run
    prefix = 5 * DAY + 7
    prefix_floors, _ = run(values[:prefix])
    assert prefix_floors == floors[:prefix]


def test_same_input_same_output(
    seasonal_run: tuple[list[float | None], list[int | None], PredictiveAdvisor],
) -> None:
    values, floors, advisor = seasonal_run
    again, other = run(values)
    assert again == floors
    assert other.state == advisor.state


def test_gaps_outages_and_spikes_do_not_break_the_floor() -> None:
    values = seasonal(7, seed=2)
    for i in range(3 * DAY, 3 * DAY + 6):
        values[i] = None
    for i in range(4 * DAY, 4 * DAY + 8):
        values[i] = 0.0
    values[5 * DAY] = 1e5
    floors, advisor = run(values)
    assert advisor.state.reliable
    tail = [f for f in floors[-DAY:] if f is not None]
    assert tail and max(tail) <= 20  # peak load ~160 at 10 per replica, plus the band


def test_light_means_no_fit_and_a_continued_history() -> None:
    values = seasonal(4)
    advisor = PredictiveAdvisor(FAST)
    assert not advisor.is_light(values[:1], INTERVAL, INTERVAL)  # no engine yet
    light = advise_growing(advisor, values)
    assert sum(light) > len(values) // 2 and not all(light)
    check_not_light(advisor, values)


def test_why_a_call_is_not_light() -> None:
    values = seasonal(4)
    advisor = PredictiveAdvisor(FAST)
    assert advisor.fit_needed(values[:1], INTERVAL, INTERVAL) == "new"
    reasons = []
    for i in range(len(values)):
        reasons.append(advisor.fit_needed(values[: i + 1], INTERVAL, INTERVAL))
        advisor.advise(values[: i + 1], INTERVAL, INTERVAL, 10.0)
    assert "scheduled" in reasons and None in reasons
    assert advisor.fit_needed(values, INTERVAL, 2 * INTERVAL) == "new"
    assert advisor.fit_needed([v + 1.0 for v in values],  # type: ignore[operator]
                              INTERVAL, INTERVAL) == "discontinued"
    assert advisor.fit_needed(values + [1.0] * 3, INTERVAL, INTERVAL) == "behind"
    assert advisor.fit_needed([*values, 1.0], INTERVAL, INTERVAL) is None


def advise_growing(advisor: PredictiveAdvisor, values: list[float | None]) -> list[bool]:
    """Advice on a history growing by one row each call; which calls were light (each checked
    to have made no fit)."""
    light = []
    for i in range(len(values)):
        history = values[: i + 1]
        before = advisor._engine.refits if advisor._engine is not None else 0
        expected_light = advisor.is_light(history, INTERVAL, INTERVAL)
        advisor.advise(history, INTERVAL, INTERVAL, 10.0)
        engine = advisor._engine
        assert engine is not None
        if expected_light:  # a light call never fits
            assert engine.refits == before
        light.append(expected_light)
    return light


def check_not_light(advisor: PredictiveAdvisor, values: list[float | None]) -> None:
    """Calls that do not continue the last history by a row or two at the same look-ahead."""
    other = [v + 1.0 for v in values]  # type: ignore[operator]
    assert not advisor.is_light(other, INTERVAL, INTERVAL)  # not a continuation
    assert not advisor.is_light(values, INTERVAL, 2 * INTERVAL)  # another look-ahead
    assert not advisor.is_light(values + [1.0] * 3, INTERVAL, INTERVAL)  # too many new rows


def test_a_new_trace_restarts_the_advisor() -> None:
    values = seasonal(4)
    advisor = PredictiveAdvisor(FAST)
    for i in range(len(values)):
        advisor.advise(values[: i + 1], INTERVAL, INTERVAL, 10.0)
    other = [v + 1.0 for v in values]  # type: ignore[operator]
    assert advisor.advise(other[:10], INTERVAL, INTERVAL, 10.0) is None
    assert advisor.state.reason == "too little history"


def test_scale_down_ceiling_only_when_asked(
    seasonal_run: tuple[list[float | None], list[int | None], PredictiveAdvisor],
) -> None:
    values, _, advisor = seasonal_run
    assert advisor.state.scale_down_to is None
    opted = replace(FAST, scale_down_on_forecast=True)
    _, down = run(values, opted)
    assert down.state.scale_down_to == down.state.floor_replicas


def test_scale_down_on_forecast_lowers_replica_hours_in_the_replay(
    seasonal_run: tuple[list[float | None], list[int | None], PredictiveAdvisor],
) -> None:
    """The same replay with the setting on: the forecast's ceiling brings replicas down after
    each peak earlier than the metrics would; before the first trusted forecast nothing moves."""
    values, floors, _ = seasonal_run
    config = ReplayConfig(10.0, INTERVAL, INTERVAL)
    off = replay(values, config, PredictiveAdvisor(FAST))
    on = replay(values, config, PredictiveAdvisor(replace(FAST, scale_down_on_forecast=True)))
    assert sum(on.desired_replicas) < sum(off.desired_replicas)
    first = next(i for i, f in enumerate(floors) if f is not None)
    assert on.desired_replicas[:first] == off.desired_replicas[:first]
    assert on.desired_replicas != off.desired_replicas


def test_status_reports_model_and_forecast(
    seasonal_run: tuple[list[float | None], list[int | None], PredictiveAdvisor],
) -> None:
    _, _, advisor = seasonal_run
    status = status_from_state(advisor.state).model_dump(by_alias=True)
    assert status["reliable"] is True
    assert [p["offsetSeconds"] for p in status["forecast"]] == [INTERVAL, 2 * INTERVAL]
    assert all(p["pHigh"] >= p["p50"] for p in status["forecast"])
    assert math.isfinite(status["backtestMase"])


@pytest.mark.parametrize(
    ("block", "field", "value"),
    [
        pytest.param({}, "history_seconds", 14 * 86400, id="history-defaults-to-14-days"),
        pytest.param({}, "scale_down_on_forecast", False, id="scale-down-off-by-default"),
        pytest.param({"model": "HoltWinters"}, "model", ModelKind.HOLT_WINTERS, id="named-model"),
        pytest.param({"lookAheadSeconds": 150}, "look_ahead_seconds", 150, id="look-ahead-set"),
    ],
)
def test_spec_block(block: dict[str, object], field: str, value: object) -> None:
    assert getattr(PredictiveSpec.model_validate(block), field) == value


@pytest.mark.parametrize(
    "block",
    [
        pytest.param({"quantile": 0.3}, id="quantile-below-median-refused"),
        pytest.param({"model": "Prophet"}, id="unknown-model-refused"),
        pytest.param({"historySeconds": 59}, id="history-under-a-minute-refused"),
    ],
)
def test_spec_block_refuses(block: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PredictiveSpec.model_validate(block)
