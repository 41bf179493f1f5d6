"""Seasonal differencing in the anomaly detector: periods found in the training rows, a pattern
that repeats itself is not an anomaly, a break of it is, and the live path agrees with the
batch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.healing.anomaly import (
    DetectorSettings,
    detect_series,
    feature_matrix,
    find_periods,
    level_zscores,
    metric_features,
)
from adaptive_operator.domain.healing.anomaly_latest import latest_features, seasonal_difference
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector
from adaptive_operator.domain.healing.ladder import detector_settings_from_spec
from test_anomaly_latest import assert_same_verdict

PERIOD = 24
FAST = DetectorSettings(
    season_slack_rows=5,  # seasons from 15 rows: PERIOD is 24
    min_train_rows=120, refit_every=100, n_estimators=50, baseline_rows=100, train_rows=400,
    record_rows=200, cooldown_rows=20,
)


def daily(periods: int = 40, seed: int = 0) -> np.ndarray:
    """A square 'day' of PERIOD rows (busy half, quiet half) with a little noise."""
    rng = np.random.default_rng(seed)
    day = np.where(np.arange(PERIOD) < PERIOD // 2, 50.0, 10.0)
    return np.tile(day, periods) + rng.normal(0.0, 0.2, PERIOD * periods)


def test_the_period_is_found_in_the_training_rows_only() -> None:
    values = np.concatenate([np.random.default_rng(0).normal(0.0, 1.0, 300), daily(20)])
    history = {"load": values}
    assert find_periods(history, slice(0, 300), FAST) == {"load": 0}
    assert find_periods(history, slice(300, 780), FAST) == {"load": PERIOD}
    assert find_periods(history, slice(300, 780), replace(FAST, seasonal_differencing=False)) == {}


def test_seasonal_difference() -> None:
    x = np.array([1.0, 2.0, 4.0, 7.0])
    np.testing.assert_array_equal(seasonal_difference(x, 0), x)
    np.testing.assert_array_equal(seasonal_difference(x, 2), [np.nan, np.nan, 3.0, 5.0])


def test_a_pattern_repeating_itself_is_not_flagged_a_break_of_it_is() -> None:
    values = daily()
    assert not detect_series(values, FAST, random_state=0).flags.any()
    # Without seasonality every switch between busy and quiet is a big step off the baseline
    # (one row: judged on its own score, not smoothed with the calm rows before it).
    plain = replace(FAST, seasonal_differencing=False, smooth_rows=1)
    assert detect_series(values, plain, random_state=0).flags.any()
    broken = values.copy()
    broken[30 * PERIOD : 30 * PERIOD + PERIOD // 2] = 10.0  # a busy half-day that stays quiet
    flags = detect_series(broken, FAST, random_state=0).flags
    assert flags[30 * PERIOD : 30 * PERIOD + PERIOD // 2].any()
    assert flags.sum() <= 3


def test_batch_with_seasonality_is_causal() -> None:
    values = daily()
    values[700] += 30.0
    whole = detect_series(values, FAST, random_state=1)
    prefix = detect_series(values[:650], FAST, random_state=1)
    np.testing.assert_array_equal(whole.scores[:650], prefix.scores)
    np.testing.assert_array_equal(whole.flags[:650], prefix.flags)
    np.testing.assert_array_equal(
        metric_features(values, FAST, PERIOD)[:650], metric_features(values[:650], FAST, PERIOD)
    )


def test_a_seasonal_baseline_is_the_value_one_period_earlier_plus_the_usual_change() -> None:
    values = (daily(10) + np.arange(PERIOD * 10) * 0.01)[: -PERIOD // 2]  # ends busy, growing
    baseline, z = level_zscores(values, 100, PERIOD)
    np.testing.assert_allclose(baseline[-1], values[-1 - PERIOD] + PERIOD * 0.01, atol=0.3)
    assert abs(z[-1]) < 4.0


@pytest.mark.parametrize("rows", [3, 30, 200, 500])
def test_the_newest_rows_seasonal_features_equal_the_full_computation(rows: int) -> None:
    window = {"a": list(daily(30)[:rows]), "b": list(daily(30, seed=1)[:rows] * 2)}
    periods = {"a": PERIOD, "b": 0}
    full = feature_matrix(window, FAST, periods)[-1:]
    latest, levels = latest_features(window, FAST.baseline_rows, FAST.short_rows, periods)
    np.testing.assert_allclose(latest, full, rtol=1e-9, atol=1e-12)
    for name, value, baseline, z in levels:
        expected, zs = level_zscores(window[name], FAST.baseline_rows, periods[name])
        assert (value, baseline, z) == pytest.approx((window[name][-1], expected[-1], zs[-1]))


def test_score_latest_gives_the_verdicts_of_score_on_a_seasonal_metric() -> None:
    values = daily(30)
    values[500:506] += 25.0
    history = {"load": values, "errors": np.random.default_rng(5).normal(1.0, 0.1, len(values))}
    window_rows = FAST.baseline_rows * 2 + PERIOD + FAST.cooldown_rows + FAST.record_rows
    full, live = AnomalyDetector(FAST, 0), AnomalyDetector(FAST, 0)
    flags_full, flags_live = [], []
    for end in range(400, 620):
        past = {k: v[:end] for k, v in history.items()}
        if end % 100 == 0:
            full.fit(past)
            live.fit(past)
        window = {k: v[-window_rows:] for k, v in past.items()}
        a, b = full.score(window), live.score_latest(window)
        assert_same_verdict(a, b)
        flags_full.append(a.is_anomaly)
        flags_live.append(b.is_anomaly)
    assert full._model is not None and full._model.periods == {"errors": 0, "load": PERIOD}
    assert any(flags_full)
    assert flags_live == flags_full


def _series(kind: str, rows: int, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(size=rows)
    if kind == "white":
        return noise
    if kind == "walk":
        return np.cumsum(noise)
    x = np.zeros(rows)
    for t in range(1, rows):  # AR(1) at 0.99: slow, smooth wandering, a memory gauge's kind
        x[t] = 0.99 * x[t - 1] + noise[t]
    return x


@pytest.mark.parametrize("rows", [120, 500, 2_000])
@pytest.mark.parametrize("kind", ["white", "walk", "ar"])
def test_the_operator_finds_no_period_in_series_without_one(kind: str, rows: int) -> None:
    # The operator differences seasons since benchmarks/nab_live.py picked it; what was feared
    # is a chance period in a few hours of syncs (200 series of each kind checked once: none).
    live = detector_settings_from_spec(HealingSpec())
    rng = np.random.default_rng(rows)
    for _ in range(20):
        history = {"m": _series(kind, rows, rng)}
        assert find_periods(history, slice(0, rows), live) == {"m": 0}


def test_the_operator_differences_a_real_cycle_of_its_syncs() -> None:
    # A garbage collector's sawtooth every 40 syncs (10 minutes at 15 s) over 2,000 rows.
    live = detector_settings_from_spec(HealingSpec())
    t = np.arange(2_000)
    memory = 100.0 + (t % 40) + np.random.default_rng(1).normal(0.0, 1.0, len(t))
    assert find_periods({"memory": memory}, slice(0, len(t)), live) == {"memory": 40}
    detector = AnomalyDetector(live)
    assert detector.differenced == {} and detector.threshold is None and detector.season == 0
    flat = 5.0 + np.random.default_rng(2).normal(0.0, 1.0, len(t))
    detector.fit({"memory": list(memory), "errors": list(flat)})
    assert detector.differenced == {"memory": 40}  # what the fit's log line says
    assert detector.season == 40 and detector.threshold is not None
    assert 0.0 < detector.threshold <= 1.0
