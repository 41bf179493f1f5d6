"""Re-arming after a flag (`rearm_rows`), and the long mean shift feature (`long_rows`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from adaptive_operator.domain.healing.anomaly import (
    FEATURES_PER_METRIC,
    DetectorSettings,
    detect_series,
    metric_features,
)
from adaptive_operator.domain.healing.anomaly_flags import calm_runs, flag_incidents

POINT = replace(DetectorSettings(), cooldown_rows=2, record_margin=-0.1, record_quantile=1.0,
                persistence_k=1, persistence_n=1)
NONE = np.zeros(12, dtype=bool)


def rows(*flags: int, n: int = 12) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(flags)] = True
    return out


def test_calm_runs_are_the_first_rows_of_every_run() -> None:
    settled = np.array([1, 1, 0, 1, 1, 1, 0], dtype=bool)
    assert calm_runs(settled, 2).tolist() == [0, 3, 4]
    assert calm_runs(settled, 3).tolist() == [3]
    assert calm_runs(settled, 0).tolist() == []


@pytest.mark.parametrize(("rearm", "expected"), [
    pytest.param(0, [1, 4, 7, 10], id="off-the-cool-down-alone-flags-again-and-again"),
    pytest.param(2, [1], id="on-one-flag-while-the-incident-goes-on"),
])
def test_an_incident_that_goes_on_is_flagged_once(rearm: int, expected: list[int]) -> None:
    # From row 1 on every row passes the gate and nothing settles (a level shift).
    scores = np.full(12, 0.5)
    gate = rows(*range(1, 12))
    flags = flag_incidents(scores, gate, NONE, replace(POINT, rearm_rows=rearm), 3,
                           ~gate)
    assert np.flatnonzero(flags).tolist() == expected


def test_the_next_incident_is_flagged_once_the_first_settled() -> None:
    scores = np.full(12, 0.5)
    gate = rows(1, 2, 3, 8, 9)
    settled = ~rows(1, 2, 3, 8, 9)  # rows 4-7 settled: a run of 2 from row 4
    point = replace(POINT, rearm_rows=2)
    assert np.flatnonzero(flag_incidents(scores, gate, NONE, point, 3, settled)).tolist() == [1, 8]
    # A run of 4 settled rows ends at row 7: row 8 is already re-armed; one of 5 never ends.
    assert np.flatnonzero(flag_incidents(scores, gate, NONE, replace(point, rearm_rows=4), 3,
                                         settled)).tolist() == [1, 8]
    assert np.flatnonzero(flag_incidents(scores, gate, NONE, replace(point, rearm_rows=5), 3,
                                         settled)).tolist() == [1]


@pytest.mark.parametrize(("rearm", "expected"), [
    pytest.param(2, [1, 6], id="re-arming-a-row-beyond-training-needs-no-cool-down"),
    pytest.param(0, [1], id="cool-down-alone-it-waits-for-the-cool-down"),
])
def test_a_new_incident_beyond_training_is_flagged_within_the_cool_down(
        rearm: int, expected: list[int]) -> None:
    # A spike at rows 1-2 (flagged), settled over rows 3-5, then rows 6-11 beyond training:
    # a bad rollout soon after a blip, long before a 20-row cool-down ends.
    scores = np.full(12, 0.5)
    gate, beyond = rows(1, 2), rows(*range(6, 12))
    settled = ~(gate | beyond)
    point = replace(POINT, cooldown_rows=20, rearm_rows=rearm)
    flags = flag_incidents(scores, gate, beyond, point, 30, settled)
    assert np.flatnonzero(flags).tolist() == expected


def test_an_incident_beyond_training_that_goes_on_is_flagged_once() -> None:
    # Every row from 1 on beyond training and none settled: re-arming holds the one flag.
    beyond = rows(*range(1, 12))
    flags = flag_incidents(np.full(12, 0.5), NONE, beyond, replace(POINT, rearm_rows=2), 3,
                           ~beyond)
    assert np.flatnonzero(flags).tolist() == [1]


def test_an_incident_that_goes_on_stays_out_of_the_record() -> None:
    # Rows 4-6 continue the incident flagged at row 1, past its cool-down (rows 1-3): they
    # score high but do not count as normal, so row 10 (0.6) beats the record (0.2).
    scores = np.array([0.2, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.2, 0.2, 0.2, 0.6, 0.2])
    gate = rows(1, 10)
    settled = ~rows(1, 2, 3, 4, 5, 6, 10)
    point = replace(POINT, rearm_rows=2, record_rows=10, record_margin=0.0)
    # Row 5 is visited (a gate row) only to end the incident there: make it one.
    gate[5] = True
    assert np.flatnonzero(flag_incidents(scores, gate, NONE, point, 3, settled)).tolist() == [1, 10]
    # Without re-arming the rows after the cool-down count: row 10 would have to beat 0.9.
    assert np.flatnonzero(flag_incidents(scores, gate, NONE, replace(point, rearm_rows=0), 3,
                                         settled)).tolist() == [1]


def test_without_settled_rows_every_row_counts_as_settled() -> None:
    gate = rows(1, 2, 3, 4, 5, 6)
    flags = flag_incidents(np.full(12, 0.5), gate, NONE, replace(POINT, rearm_rows=1), 3)
    assert np.flatnonzero(flags).tolist() == [1, 4]


def test_rearming_stays_causal_a_prefix_flags_the_same() -> None:
    rng = np.random.default_rng(5)
    values = 10 + rng.normal(0, 1, 900)
    values[500:] += 8.0  # a level shift the baseline absorbs slowly
    values[820] += 25.0
    point = replace(DetectorSettings(), min_train_rows=100, refit_every=100, baseline_rows=200,
                    forests=1, rearm_rows=20, cooldown_rows=30)
    whole = detect_series(values, point, random_state=0).flags
    for cut in (520, 700, 830):
        assert (detect_series(values[:cut], point, random_state=0).flags == whole[:cut]).all()
    assert whole[500:510].any()


def test_rearm_rows_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="rearm_rows"):
        DetectorSettings(rearm_rows=-1)


def test_a_small_shift_held_for_dozens_of_rows_moves_the_long_mean_feature() -> None:
    # 1.5 sigmas from row 400: the level and the 6-row mean wobble with the noise, the long
    # mean (column 4, over `long_rows`) settles on the shift.
    rng = np.random.default_rng(7)
    values = rng.normal(0.0, 1.0, 600)
    values[400:] += 1.5
    settings = DetectorSettings(baseline_rows=300)
    features = metric_features(values, settings)
    assert features.shape[1] == FEATURES_PER_METRIC == 5
    long_before, long_after = features[399, 4], features[400 + settings.long_rows, 4]
    assert abs(long_before) < 0.4 < np.log1p(1.0) < long_after
    held = slice(430, 470)  # the long window within the shift: steadier than the 6-row mean
    assert np.std(features[held, 4]) < 0.7 * np.std(features[held, 2])


def test_long_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="long_rows"):
        DetectorSettings(long_rows=0)
