"""Score smoothing (`smooth_rows`): causal, and a lone high score weighs less than a run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from adaptive_operator.domain.healing.anomaly import (
    DetectorSettings,
    ScoredBatch,
    detect_series,
    judge,
    smoothed,
)
from adaptive_operator.domain.healing.anomaly_live import _ScoredRows


def test_smoothing_is_the_mean_of_the_row_and_the_rows_before_it() -> None:
    scores = np.array([1.0, 2.0, 3.0, 4.0, 8.0])
    np.testing.assert_allclose(smoothed(scores, 3), [1.0, 1.5, 2.0, 3.0, 5.0])
    np.testing.assert_array_equal(smoothed(scores, 1), scores)


def test_smoothing_is_causal() -> None:
    scores = np.random.default_rng(3).uniform(0.0, 1.0, 50)
    later = scores.copy()
    later[30:] = 1.0
    np.testing.assert_array_equal(smoothed(scores, 5)[:30], smoothed(later, 5)[:30])


def test_smooth_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="smooth_rows"):
        DetectorSettings(smooth_rows=0)


def _batch(scores: np.ndarray) -> ScoredBatch:
    # One block from row 100 whose training scores put the threshold at 0.5; every row moves.
    n = len(scores)
    return ScoredBatch(scores, np.full(n, 10.0), np.zeros(n, dtype=bool),
                       np.zeros(n, dtype=np.intp), ((100, np.full(50, 0.5)),))


def test_a_lone_high_score_is_flagged_unsmoothed_only_and_a_run_of_them_either_way() -> None:
    scores = np.full(600, 0.3)
    scores[:100] = 0.0
    scores[250] = 0.8  # one row
    scores[400:403] = 0.8  # three rows in a row
    plain = DetectorSettings(refit_every=500, smooth_rows=1, rearm_rows=0)  # every row moves
    assert list(np.flatnonzero(judge(_batch(scores), plain).flags)) == [250, 400]
    smooth = replace(plain, smooth_rows=3)
    result = judge(_batch(scores), smooth)
    assert list(np.flatnonzero(result.flags)) == [401]  # (0.3 + 0.8 + 0.8) / 3 >= 0.5
    np.testing.assert_allclose(result.scores[[250, 401]], [(0.3 + 0.3 + 0.8) / 3, 1.9 / 3])


def test_detect_with_smoothing_is_deterministic_and_causal() -> None:
    values = 10 + np.random.default_rng(5).normal(0.0, 1.0, 500)
    values[[320, 420]] += [8.0, -10.0]
    settings = DetectorSettings(min_train_rows=60, refit_every=80, n_estimators=20,
                                baseline_rows=50, smooth_rows=3)
    whole = detect_series(values, settings, random_state=1)
    again = detect_series(values, settings, random_state=1)
    prefix = detect_series(values[:400], settings, random_state=1)
    np.testing.assert_array_equal(whole.flags, again.flags)
    np.testing.assert_array_equal(whole.scores, again.scores)
    np.testing.assert_array_equal(whole.flags[:400], prefix.flags)
    np.testing.assert_allclose(whole.scores[:400], prefix.scores)


def test_the_product_smooths_over_three_rows_as_the_folds_picked() -> None:
    assert DetectorSettings().smooth_rows == 3  # benchmarks/results/nab_cv.md


def test_the_live_shortcut_judges_the_smoothed_score() -> None:
    def quiet(scores: list[float], smooth_rows: int) -> bool:
        return _ScoredRows.of(5, scores, [True] * 4, [False] * 4).quiet(1, 0.5, smooth_rows)

    assert not quiet([0.3, 0.3, 0.3, 0.8], 1)
    assert quiet([0.3, 0.3, 0.3, 0.8], 3)  # (0.3 + 0.3 + 0.8) / 3 < 0.5
    assert not quiet([0.3, 0.4, 0.4, 0.8], 3)  # 1.6 / 3 >= 0.5
    rows = _ScoredRows.of(5, [0.1, 0.2, 0.4, 0.8], [True] * 4, [False] * 4)
    expected = smoothed(np.array([0.1, 0.2, 0.4, 0.8]), 3)
    assert [rows.smoothed(i, 3) for i in range(4)] == expected.tolist()
