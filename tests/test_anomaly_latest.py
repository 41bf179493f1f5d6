"""The live detector's shortcuts give the full computation's numbers: the newest row's
features, the forest's scores, and the verdicts of `score_latest` against `score`."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from adaptive_operator.domain.anomaly import (
    AnomalyDetector,
    AnomalyVerdict,
    DetectorSettings,
    feature_matrix,
)
from adaptive_operator.domain.anomaly_latest import latest_features
from adaptive_operator.domain.forest_scoring import FastForest, average_path_length


def series(rows: int, seed: int = 0) -> dict[str, list[float]]:
    """Two noisy metrics with a step, a spike and a flat stretch."""
    rng = np.random.default_rng(seed)
    errors = 0.01 + rng.normal(0, 0.002, rows)
    latency = 0.1 + rng.normal(0, 0.01, rows)
    errors[rows // 2 :] += 0.05
    latency[rows // 3] = 5.0
    latency[rows // 4 : rows // 4 + 30] = 0.1
    return {"errors": list(errors), "latency": list(latency)}


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 150, 2103, 3000])
def test_the_newest_rows_features_equal_the_full_computation(rows: int) -> None:
    settings = DetectorSettings(baseline_rows=1000)
    window = series(rows)
    full = feature_matrix(window, settings)[-1:]
    latest, levels = latest_features(window, settings.baseline_rows, settings.short_rows)
    np.testing.assert_allclose(latest, full, rtol=1e-9, atol=1e-12)
    assert [name for name, *_ in levels] == ["errors", "latency"]


def test_the_fast_forest_scores_as_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(600, 8))
    train[::7] *= 5
    forest = IsolationForest(n_estimators=30, max_samples=256, random_state=0).fit(train)
    rows = rng.normal(size=(500, 8)) * 3
    np.testing.assert_allclose(
        FastForest.of(forest).scores(rows), -forest.score_samples(rows), rtol=1e-12
    )


def test_the_average_path_length_of_tiny_samples() -> None:
    assert (average_path_length(1), average_path_length(2)) == (0.0, 1.0)
    assert average_path_length(256) == pytest.approx(10.2448, abs=1e-3)


def test_a_forest_that_subsamples_features_is_refused() -> None:
    forest = IsolationForest(n_estimators=3, max_features=0.5, random_state=0)
    forest.fit(np.random.default_rng(0).normal(size=(50, 4)))
    with pytest.raises(ValueError, match="every feature"):
        FastForest.of(forest)


def test_score_latest_gives_the_verdicts_of_score() -> None:
    """Rows scored one by one (refits included) agree with the whole window scored each time."""
    settings = DetectorSettings(
        baseline_rows=60,
        record_rows=60,
        cooldown_rows=10,
        persistence_k=2,
        persistence_n=3,
        warm_up_rows=10,
        min_train_rows=40,
        beyond_training=True,
        refit_every=50,
    )
    history = series(300, seed=3)
    window_rows = (
        settings.baseline_rows
        + settings.persistence_n
        + settings.cooldown_rows
        + (settings.record_rows)
    )
    full, live = AnomalyDetector(settings, 0), AnomalyDetector(settings, 0)
    flags_full, flags_live = [], []
    for end in range(60, 300):
        past = {k: v[:end] for k, v in history.items()}
        if end % settings.refit_every == 10:
            full.fit(past)
            live.fit(past)
        if not full.fitted:
            continue
        window = {k: v[-window_rows:] for k, v in past.items()}
        a, b = full.score(window), live.score_latest(window)
        assert_same_verdict(a, b)
        flags_full.append(a.is_anomaly)
        flags_live.append(b.is_anomaly)
    assert any(flags_full)  # the scenario has anomalies to agree on
    assert flags_live == flags_full


def test_score_latest_needs_a_fitted_detector() -> None:
    with pytest.raises(RuntimeError):
        AnomalyDetector().score_latest(series(10))


def assert_same_verdict(a: AnomalyVerdict, b: AnomalyVerdict) -> None:
    """The live path's verdict equals the full path's: score, and what it names and by how much."""
    assert b.score == pytest.approx(a.score, abs=1e-9)
    assert [c.metric for c in b.contributions] == [c.metric for c in a.contributions]
    assert [x for c in b.contributions for x in (c.baseline, c.z)] == pytest.approx(
        [x for c in a.contributions for x in (c.baseline, c.z)]
    )
