"""The anomaly detector: causality, determinism, explanations, operating point."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.api.healing import HealingSpec, Persistence
from adaptive_operator.domain.healing.anomaly import (
    AnomalyVerdict,
    Contribution,
    DetectorSettings,
    beyond_training,
    detect_batch,
    detect_series,
    fit_model,
    metric_features,
)
from adaptive_operator.domain.healing.anomaly_flags import flag_incidents, record_level
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector
from adaptive_operator.domain.healing.ladder import detector_settings_from_spec

# One row per score (smooth_rows=1): these tests are about single rows (a one-row spike, which
# smoothing over three rows dilutes: tests/test_anomaly_smoothing.py).
FAST = DetectorSettings(min_train_rows=60, refit_every=80, n_estimators=20, baseline_rows=50,
                        smooth_rows=1)


def noisy(n: int, seed: int = 1, level: float = 10.0) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0.0, 1.0, n)


def with_spike(n: int = 400, at: int = 300, height: float = 15.0) -> np.ndarray:
    values = noisy(n)
    values[at] += height
    return values


def test_batch_is_causal_a_prefix_scores_the_same() -> None:
    values = with_spike()
    whole = detect_series(values, FAST, random_state=3)
    prefix = detect_series(values[:250], FAST, random_state=3)
    np.testing.assert_array_equal(whole.scores[:250], prefix.scores)
    np.testing.assert_array_equal(whole.flags[:250], prefix.flags)


def test_features_are_causal() -> None:
    values = with_spike()
    np.testing.assert_array_equal(metric_features(values, FAST)[:299],
                                  metric_features(values[:299], FAST))


def test_batch_is_deterministic_for_a_seed() -> None:
    values = with_spike()
    first = detect_series(values, FAST, random_state=7)
    second = detect_series(values, FAST, random_state=7)
    np.testing.assert_array_equal(first.scores, second.scores)


def test_spike_is_flagged_once_and_noise_is_not() -> None:
    result = detect_series(with_spike(), FAST, random_state=0)
    assert result.flags[300]
    assert result.flags.sum() <= 3
    assert result.scores[300] > np.quantile(result.scores[100:300], 0.99)
    assert ((result.scores >= 0.0) & (result.scores <= 1.0)).all()
    assert not result.flags[: FAST.min_train_rows].any()


@settings(max_examples=8, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=150))
def test_scores_stay_in_unit_interval_for_any_series(values: list[float]) -> None:
    result = detect_series(values, FAST, random_state=0)
    assert len(result.scores) == len(values) == len(result.flags)
    assert ((result.scores >= 0.0) & (result.scores <= 1.0)).all()


@pytest.mark.parametrize(
    ("exceeds", "k", "n", "cooldown", "expected"),
    [
        pytest.param([1, 0, 1, 1, 0], 1, 1, 0, [1, 0, 1, 1, 0], id="no-persistence-no-cooldown"),
        pytest.param([1, 0, 1, 1, 0], 2, 3, 0, [0, 0, 1, 1, 1], id="two-of-three-needed"),
        pytest.param([1, 1, 1, 0, 1, 1], 1, 1, 3, [1, 0, 0, 0, 1, 0],
                     id="cooldown-merges-incident"),
    ],
)
def test_operating_point(exceeds: list[int], k: int, n: int, cooldown: int,
                         expected: list[int]) -> None:
    config = replace(FAST, persistence_k=k, persistence_n=n, cooldown_rows=cooldown, rearm_rows=0)
    gate = np.array(exceeds, dtype=bool)  # equal scores: every gate row beats the record
    flags = flag_incidents(np.ones(len(gate)), gate, np.zeros(len(gate), dtype=bool), config,
                           cooldown + 1)
    assert flags.astype(int).tolist() == expected


def history(n: int = 300) -> dict[str, np.ndarray]:
    return {"errorRatio": np.abs(noisy(n, 2, 0.0)) * 0.01, "latencyP99": noisy(n, 3, 0.2),
            "cpu": noisy(n, 4, 2.0)}


def test_detector_explains_which_metric_deviates_and_how() -> None:
    detector = AnomalyDetector(FAST, random_state=0).fit(history())
    window = history(320)
    window["errorRatio"][-1] = 0.4
    verdict = detector.score(window)
    assert verdict.is_anomaly
    top = verdict.contributions[0]
    assert top.metric == "errorRatio" and top.direction == "up" and top.z > 10
    assert top.value == pytest.approx(0.4)
    assert "errorRatio up 0.4 vs baseline" in verdict.explain()


def test_detector_calm_window_is_not_anomalous() -> None:
    detector = AnomalyDetector(FAST, random_state=0).fit(history())
    verdict = detector.score(history(320))
    assert not verdict.is_anomaly and 0.0 <= verdict.score <= 1.0


def test_detector_matches_batch_on_last_row() -> None:
    # The operator's single-row path and the batch path are the same model and operating point.
    values = with_spike(n=301)
    detector = AnomalyDetector(replace(FAST, train_rows=300), random_state=0)
    detector.fit({"value": values[:300]})
    batch = detect_batch({"value": values}, replace(FAST, refit_every=1000, min_train_rows=300,
                                                    train_rows=300), random_state=0)
    verdict = detector.score({"value": values})
    assert verdict.score == pytest.approx(batch.scores[-1])


def test_detector_with_warm_up_matches_batch_on_last_row() -> None:
    # Both paths leave the same first rows out of training.
    warm = replace(FAST, warm_up_rows=20, train_rows=300)
    values = with_spike(n=301)
    detector = AnomalyDetector(warm, random_state=0).fit({"value": values[:300]})
    batch = detect_batch({"value": values}, replace(warm, refit_every=1000, min_train_rows=280),
                         random_state=0)
    assert detector.score({"value": values}).score == pytest.approx(batch.scores[-1])
    assert batch.scores[:300].max() == 0.0  # nothing scored before the first fit


@pytest.mark.parametrize(("n", "expected"), [
    pytest.param(1, [-0.02, 0.08, 0.28, 0.88], id="n-1-the-record-of-the-rows-before"),
    pytest.param(2, [-0.02, -0.02, 0.08, 0.28], id="n-2-leaves-the-row-before-out"),
    pytest.param(3, [-0.02, -0.02, -0.02, 0.08], id="n-3-leaves-the-two-rows-before-out"),
])
def test_record_leaves_the_persistence_window_out(n: int, expected: list[float]) -> None:
    # Otherwise the first rows of an anomaly raise the bar its next rows must clear to persist.
    config = replace(FAST, persistence_k=1, persistence_n=n, record_margin=-0.02)  # margin pinned
    scores = np.array([0.1, 0.3, 0.9, 0.85])
    levels = [record_level(scores, row, config) for row in range(4)]
    assert levels == pytest.approx(expected)
    assert record_level(scores, 3, replace(config, record_rows=0)) == 0.0


def live_history(seed: int, rows: int, repeats: float) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    errors, latency = 0.01 + rng.normal(0, 0.002, rows), 0.2 + rng.normal(0, 0.01, rows)
    for i in range(1, rows):  # a scrape read twice repeats every metric's sample
        if rng.random() < repeats:
            errors[i], latency[i] = errors[i - 1], latency[i - 1]
    return {"errorRatio": list(errors), "latency": list(latency)}


@pytest.mark.parametrize("rows", [100, 40])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_live_detector_flags_a_bad_rollout_soon_after_a_short_history(seed: int,
                                                                      rows: int) -> None:
    # The operator's settings on the shortest history it fits on (40 training rows: the e2e's).
    config = detector_settings_from_spec(HealingSpec(
        enabled=True, persistence=Persistence(k=2, n=3), min_training_rows=rows))
    history = live_history(seed, config.rows_to_fit + 60, repeats=0.0)
    detector = AnomalyDetector(config, random_state=0).fit(history)
    rng = np.random.default_rng(seed + 100)
    flags = []
    for share in (0.5, 1.0, 1.0, 1.0, 1.0):
        history["errorRatio"].append(0.01 + 0.5 * share + rng.normal(0, 0.002))
        history["latency"].append(0.2 + rng.normal(0, 0.01))
        flags.append(detector.score(history).is_anomaly)
    assert any(flags[:4]), flags


@pytest.mark.parametrize(("on", "jump", "expected"), [
    pytest.param(True, 15.0, True, id="a-level-past-every-training-row-counts"),
    pytest.param(True, 0.0, False, id="a-normal-row-is-inside-the-envelope"),
    pytest.param(False, 15.0, False, id="off-for-the-detect-contract"),
])
def test_beyond_training(on: bool, jump: float, expected: bool) -> None:
    config = replace(FAST, beyond_training=on, min_train_rows=200)
    values = noisy(301)
    values[-1] = 10.0 + jump
    features = metric_features(values, config)
    model = fit_model(features[20:300], config, random_state=0)  # past the warm-up
    assert bool(beyond_training(model, features[-1:], config)[0]) is expected


@pytest.mark.parametrize(("spec", "rows"), [
    pytest.param({}, 120, id="the-default-100-training-rows"),
    pytest.param({"minTrainingRows": 40}, 60, id="fewer-training-rows-from-the-spec"),
])
def test_live_detector_needs_its_warm_up_rows_too(spec: dict[str, int], rows: int) -> None:
    config = detector_settings_from_spec(HealingSpec(enabled=True, **spec))
    assert config.rows_to_fit == rows
    with pytest.raises(ValueError, match=f"at least {rows} rows to fit \\(20 of them warm-up\\)"):
        AnomalyDetector(config).fit(live_history(0, rows - 1, repeats=0.0))
    AnomalyDetector(config).fit(live_history(0, rows, repeats=0.0))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_live_detector_on_few_training_rows_keeps_quiet_on_normal_rows(seed: int) -> None:
    config = detector_settings_from_spec(HealingSpec(
        enabled=True, persistence=Persistence(k=2, n=3), min_training_rows=40))
    history = live_history(seed, config.rows_to_fit + 120, repeats=0.0)
    detector = AnomalyDetector(config, random_state=0).fit(
        {name: values[: config.rows_to_fit] for name, values in history.items()})
    flags = [detector.score({name: values[:end] for name, values in history.items()}).is_anomaly
             for end in range(config.rows_to_fit + 1, len(history["errorRatio"]) + 1)]
    assert not any(flags), flags


def test_detector_guards() -> None:
    detector = AnomalyDetector(FAST)
    with pytest.raises(RuntimeError, match="fit the detector"):
        detector.score(history())
    with pytest.raises(ValueError, match="at least 60 rows"):
        detector.fit(history(10))
    detector.fit(history())
    assert detector.fitted
    with pytest.raises(ValueError, match="differ"):
        detector.score({"cpu": noisy(100)})
    with pytest.raises(ValueError, match="same number of rows"):
        detector.fit({"a": noisy(100), "b": noisy(90)})


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"sensitivity": 0.0}, id="sensitivity-zero"),
        pytest.param({"persistence_k": 3, "persistence_n": 2}, id="k-above-n"),
        pytest.param({"min_train_rows": 1}, id="too-few-training-rows"),
        pytest.param({"warm_up_rows": -1}, id="negative-warm-up"),
    ],
)
def test_settings_validation(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DetectorSettings(**bad)  # type: ignore[arg-type]


def test_explain_without_deviation() -> None:
    verdict = AnomalyVerdict(0.3, False, (Contribution("cpu", 1.0, 1.0, 0.0),))
    assert verdict.explain() == "score 0.30; no metric deviates from its baseline"
    assert verdict.contributions[0].direction == "flat"
    assert Contribution("cpu", 0.0, 1.0, -3.0).direction == "down"


def test_flat_line_never_flags() -> None:
    # The forest scores every row of a flat line alike; nothing deviates, so nothing counts.
    result = detect_series(np.full(400, 5.0), FAST, random_state=0)
    assert not result.flags.any()


def test_step_change_is_flagged_near_its_start() -> None:
    values = noisy(400)
    values[320:] += 12.0
    flags = detect_series(values, FAST, random_state=0).flags
    assert flags[320:326].any()


def test_a_flagged_incident_does_not_raise_the_record_for_the_next() -> None:
    # Row 1 is flagged; its cool-down (rows 1-3) leaves the record, so row 5 (0.8) beats the
    # record of the normal rows (0.2) although the first incident scored higher.
    scores = np.array([0.2, 0.95, 0.9, 0.9, 0.2, 0.8])
    gate = np.array([False, True, False, False, False, True])
    config = replace(FAST, cooldown_rows=2, record_margin=0.0, rearm_rows=0)
    none = np.zeros(6, dtype=bool)
    assert flag_incidents(scores, gate, none, config, 3).tolist() == [
        False, True, False, False, False, True]
    # Without the flag (say it came during an earlier cool-down) row 1 stays in the record.
    assert not flag_incidents(scores, gate, none, config, 0)[5]


def test_a_row_beyond_training_needs_no_record() -> None:
    scores = np.array([0.9, 0.1, 0.1])
    beyond = np.array([False, False, True])
    config = replace(FAST, cooldown_rows=0)
    flags = flag_incidents(scores, np.zeros(3, dtype=bool), beyond, config, 1)
    assert flags.tolist() == [False, False, True]
