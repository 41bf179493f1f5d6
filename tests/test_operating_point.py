"""The operating point: per-quantile floors from one engine, the service's own cost curve, the
objective that picks its cheapest point, and the exact fast paths under the forecast."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from adaptive_operator.api.predictive import PredictiveSpec
from adaptive_operator.domain.common.views import RowsView
from adaptive_operator.domain.forecasting.tracker import _nanquantiles, next_level, simulate
from adaptive_operator.domain.scaling.lookahead import look_ahead
from adaptive_operator.domain.scaling.operating_point import (
    CANDIDATE_QUANTILES,
    OperatingPoint,
    PointFigures,
    candidate_floors,
    cheapest_within,
    fallback_floors,
    with_fallback,
)
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor, PredictiveSettings
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay

INTERVAL = 1800.0
DAY = 48
FAST = PredictiveSettings(refit_seconds=86400 / 2, error_window_seconds=86400)


def seasonal(days: int, seed: int = 0) -> list[float | None]:
    t = np.arange(days * DAY)
    rng = np.random.default_rng(seed)
    y = 100 + 60 * np.sin(2 * np.pi * t / DAY) ** 2 + rng.normal(0, 4, len(t))
    return [float(v) for v in y]


def floors_of(values: list[float | None], settings: PredictiveSettings) -> list[int | None]:
    advisor = PredictiveAdvisor(settings)
    return [advisor.advise(RowsView.prefix(values, i + 1), INTERVAL, INTERVAL, 10.0)
            for i in range(len(values))]


@pytest.mark.parametrize("fallback", [False, True], ids=["trusted-only", "with-fallback"])
def test_one_engine_gives_each_quantile_the_floor_of_a_service_configured_with_it(
    fallback: bool,
) -> None:
    """The trusted forecast's floors, and with the persistence band on the rows without one:
    each quantile's, as a service configured with it computes them (what the benchmark records)."""
    settings = replace(FAST, persistence_fallback=fallback)
    values = seasonal(5)
    advisor = PredictiveAdvisor(settings)
    recorded: dict[float, list[int | None]] = {q: [] for q in CANDIDATE_QUANTILES}
    for i in range(len(values)):
        advisor.advise(RowsView.prefix(values, i + 1), INTERVAL, INTERVAL, 10.0)
        assert advisor.engine is not None
        found = candidate_floors(advisor.engine, advisor.band, advisor.state.reliable, 10.0,
                                 CANDIDATE_QUANTILES)
        found = with_fallback(found, fallback_floors(advisor.fallback, 10.0,
                                                     CANDIDATE_QUANTILES))
        for q, floor in found.items():
            recorded[q].append(floor)
    for q in (0.6, 0.95):
        assert recorded[q] == floors_of(values, replace(settings, quantile=q))
    assert recorded[0.6] != recorded[0.95]
    assert (None in recorded[0.6][DAY:]) is not fallback  # the fallback fills untrusted rows


def figures(q: float, down: bool, unserved: float, cost: float) -> PointFigures:
    return PointFigures(OperatingPoint(q, down), unserved, cost)


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        pytest.param(1.0, OperatingPoint(0.7, True), id="cheapest-within-the-bound"),
        pytest.param(0.2, OperatingPoint(0.9, False), id="a-tight-bound-costs-more"),
        pytest.param(0.01, OperatingPoint(0.9, False), id="none-fits-the-one-serving-most"),
    ],
)
def test_cheapest_within(bound: float, expected: OperatingPoint) -> None:
    curve = [figures(0.6, True, 2.0, 90), figures(0.7, True, 0.9, 95),
             figures(0.8, False, 0.5, 100), figures(0.9, False, 0.1, 110),
             figures(0.95, False, 0.1, 120)]
    assert cheapest_within(curve, bound) == expected


def run(values: list[float | None], settings: PredictiveSettings) -> tuple[list[int], str]:
    advisor = PredictiveAdvisor(settings)
    result = replay(values, ReplayConfig(10.0, INTERVAL, INTERVAL), advisor)
    return list(result.desired_replicas), advisor.state.reason


def test_an_objective_moves_the_point_on_the_service_own_rows() -> None:
    values = seasonal(7, seed=3)
    base, _ = run(values, FAST)
    loose = replace(FAST, max_unserved_percent=100.0, objective_window_seconds=2 * 86400)
    cheap, reason = run(values, loose)
    assert "objective: quantile 0.6, scale-down on" in reason
    assert sum(cheap) < sum(base)
    prefix, _ = run(values[: 6 * DAY], loose)
    assert prefix == cheap[: 6 * DAY]  # causal and deterministic


def test_without_an_objective_nothing_is_recorded() -> None:
    advisor = PredictiveAdvisor(FAST)
    replay(seasonal(4), ReplayConfig(10.0, INTERVAL, INTERVAL), advisor)
    assert advisor._objective is None
    assert "objective" not in advisor.state.reason


@settings(max_examples=80, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 4)),
              elements=st.one_of(st.just(np.nan), st.floats(-1e6, 1e6))),
       st.floats(0.51, 0.99))
def test_nanquantiles_equal_numpy(errors: np.ndarray, q: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.nanquantile(errors, [0.5, q], axis=0)
    assert np.array_equal(_nanquantiles(errors, (0.5, q)), expected, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.just(np.nan), st.floats(0, 1e4)), min_size=4, max_size=60),
       st.sampled_from([0.2, 0.5, 0.8]), st.floats(0.1, 1e3), st.integers(1, 3))
def test_simulate_runs_the_online_level_correction(
    actual: list[float], alpha: float, clip: float, horizon: int
) -> None:
    y = np.array(actual)
    base = np.linspace(0, 100, len(y))
    rows = len(y) - horizon
    level, levels = 0.0, []
    for t in range(rows):
        level = next_level(level, float(y[t] - base[t]), alpha, clip)
        levels.append(level)
    idx = np.arange(rows)[:, None] + np.arange(1, horizon + 1)[None, :]
    expected = y[idx] - base[idx] - np.array(levels)[:, None]
    assert np.array_equal(simulate(y, base, alpha, clip, horizon), expected, equal_nan=True)


@pytest.mark.parametrize(
    ("samples", "factor", "seconds"),
    [
        pytest.param([40.0], 1.0, 60.0, id="learned-start-up-plus-a-period"),
        pytest.param([40.0], 2.0, 105.0, id="twice-the-start-up"),
        pytest.param([], 2.0, 135.0, id="twice-the-default"),
    ],
)
def test_look_ahead_factor(samples: list[float], factor: float, seconds: float) -> None:
    assert look_ahead(None, samples, 15, None, factor).seconds == seconds
    assert look_ahead(90.0, samples, 15, None, factor).seconds == 90.0


def test_spec_operating_point_fields() -> None:
    spec = PredictiveSpec.model_validate(
        {"lookAheadFactor": 1.5, "objective": {"maxUnservedPercent": 0.5}})
    assert spec.look_ahead_factor == 1.5
    assert spec.objective is not None and spec.objective.max_unserved_percent == 0.5
    assert PredictiveSpec.model_validate({}).objective is None
    bad_specs: tuple[dict[str, object], ...] = (
        {"lookAheadFactor": 0.5}, {"lookAheadFactor": 11},
        {"objective": {"maxUnservedPercent": 101}}, {"objective": {}})
    for bad in bad_specs:
        with pytest.raises(ValueError):
            PredictiveSpec.model_validate(bad)
