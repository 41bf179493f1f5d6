"""The NAB cross-validation harness: its groups, its stress series, and that a fold's choice
never sees the group it is scored on."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import nab
import nab_cv
import nab_stress
from adaptive_operator.domain.healing.anomaly import (
    OPERATING_POINT_KNOBS,
    DetectorSettings,
    detect_batch,
    judge,
    score_batch,
)


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv", "aws_cpu"),
        ("realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv", "aws_rds"),
        ("realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv", "aws_network"),
        ("realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv", "aws_disk"),
        ("realAWSCloudwatch/elb_request_count_8c0756.csv", "aws_elb"),
        ("realAWSCloudwatch/grok_asg_anomaly.csv", "aws_asg"),
        ("realAWSCloudwatch/something_else.csv", "aws_other"),
        ("artificialNoAnomaly/art_flatline.csv", "artificialNoAnomaly"),
        ("synthetic/level_shift.csv", "synthetic"),
    ],
)
def test_groups_split_aws_by_metric_kind(name: str, group: str) -> None:
    assert nab_cv.group_of(name) == group


def test_stress_series_are_fixed_and_their_windows_are_nabs() -> None:
    first, second = nab_stress.stress_series(), nab_stress.stress_series()
    assert [s.name for s in first] == [f"synthetic/{k}.csv" for k in nab_stress.EVENTS]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.values, b.values)
        assert len(a.values) == nab_stress.ROWS
        for left, right in a.windows:
            assert right - left + 1 == round(0.1 * nab_stress.ROWS)  # 10% of the rows
            assert left > nab.probation_rows(nab_stress.ROWS)
    assert next(s for s in first if s.name.endswith("no_event.csv")).windows == []


def test_counter_reset_restarts_from_zero() -> None:
    series = next(s for s in nab_stress.stress_series() if "counter" in s.name)
    left, right = series.windows[0]
    at = (left + right) // 2
    assert np.all(np.diff(series.values[:at]) >= 0)
    assert series.values[at] < series.values[at - 1] / 10


SMALL = DetectorSettings(min_train_rows=60, refit_every=80, n_estimators=20, baseline_rows=50)


@pytest.mark.parametrize(
    "knobs",
    [{}, {"min_deviation_z": 2.0, "record_margin": -0.1}, {"train_quantile": 0.9, "margin": 0.1,
     "sensitivity": 0.8}, {"cooldown_rows": 5, "persistence_k": 2, "persistence_n": 3},
     {"beyond_training": True}, {"smooth_rows": 3}],
)
def test_a_scored_batch_judged_at_other_knobs_is_the_detector_at_those_knobs(
        knobs: dict[str, Any]) -> None:
    assert set(knobs) <= set(OPERATING_POINT_KNOBS)
    values = 10 + np.random.default_rng(4).normal(0, 1, 600)
    values[[300, 450]] += [9.0, -12.0]
    scored = score_batch({"value": values}, SMALL, random_state=2)
    other = replace(SMALL, **knobs)
    direct = detect_batch({"value": values}, other, random_state=2)
    np.testing.assert_array_equal(judge(scored, other).flags, direct.flags)
    np.testing.assert_array_equal(judge(scored, other).scores, direct.scores)


def test_a_fold_picks_on_the_other_groups_only() -> None:
    # Candidate 1 is perfect on group "a" and useless elsewhere; candidate 0 is the reverse.
    # The fold leaving "a" out must pick 0 and score 0's (poor) figure on "a".
    raw = np.array([[[-1.0, 1.0, 1.0]], [[1.0, -1.0, -1.0]]])  # candidates x seeds x files
    table = nab_cv.Table(raw, np.zeros(raw.shape, dtype=int), np.array([1, 1, 1]))
    folds, overall = nab_cv.cross_validate(table, ["a", "b", "b"])
    by_group = {fold.group: fold for fold in folds}
    assert by_group["a"].chosen == 0
    assert by_group["a"].held_out[0] == pytest.approx(0.0)
    assert by_group["a"].development[0] == pytest.approx(100.0)
    assert by_group["b"].chosen == 1
    assert overall[0] == pytest.approx(0.0)  # every file judged by the choice of others


def two_seed_table(raw: list[list[float]]) -> nab_cv.Table:
    """Candidates x two seeds, one file of one window: the normalised score is 50 * (raw + 1)."""
    scores = np.array(raw)[:, :, None]
    return nab_cv.Table(scores, np.zeros(scores.shape, dtype=int), np.array([1]))


def test_a_pick_keeps_to_the_candidates_the_seed_moves_by_at_most_the_bound() -> None:
    # Candidate 0 has the best mean but its seeds differ by 10 points; 1 by 0.5; 2 by 2.
    table = two_seed_table([[0.9, 0.7], [0.7, 0.71], [0.8, 0.76]])
    rows = np.ones(1, dtype=bool)
    assert nab_cv.pick(table, rows) == 0
    assert nab_cv.pick(table, rows, max_spread=1.0) == 1
    assert nab_cv.pick(table, rows, max_spread=3.0) == 2


def test_when_no_candidate_keeps_within_the_bound_the_narrowest_is_picked() -> None:
    table = two_seed_table([[0.9, 0.7], [0.6, 0.56], [0.8, 0.7]])  # 10, 2 and 5 points
    assert nab_cv.pick(table, np.ones(1, dtype=bool), max_spread=1.0) == 1


def test_a_group_without_windows_has_no_normalised_score() -> None:
    table = nab_cv.Table(np.array([[[-0.2, 1.0]]]), np.array([[[2, 0]]]), np.array([0, 1]))
    folds, _ = nab_cv.cross_validate(table, ["quiet", "loud"])
    quiet = next(fold for fold in folds if fold.group == "quiet")
    assert np.isnan(quiet.held_out).all()
    assert quiet.false_positives.tolist() == [2]


SMALL_SET_UP = {"min_train_rows": 60, "refit_every": 80, "n_estimators": 20, "baseline_rows": 50}


def test_k_forests_are_the_mean_of_k_cached_single_forests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = 10.0 + np.random.default_rng(3).normal(0.0, 1.0, 400)
    values[300:] += 3.0
    files = [nab_cv.File("synthetic/shift.csv", values, [(300, 330)])]
    monkeypatch.setattr(nab_cv, "SCORE_CHOICES", ({**SMALL_SET_UP, "forests": 3},))
    found = nab_cv.scored(files, 0, 1, tmp_path)[0]
    direct = score_batch({"value": values}, nab_cv.settings_of(0, {}), random_state=1)
    np.testing.assert_allclose(found.scores, direct.scores, rtol=1e-12)
    for (start, train), (direct_start, direct_train) in zip(found.blocks, direct.blocks,
                                                            strict=True):
        assert start == direct_start
        np.testing.assert_allclose(train, direct_train, rtol=1e-12)
    assert sorted(p.name.split("-")[2] for p in tmp_path.iterdir()) == ["seed3", "seed4", "seed5"]
    # Read back from the cache: nothing is scored again.
    monkeypatch.setattr(nab_cv, "score_batch", lambda *a, **k: pytest.fail("scored again"))
    again = nab_cv.scored(files, 0, 1, tmp_path)[0]
    np.testing.assert_array_equal(again.scores, found.scores)


def test_a_setting_that_scores_differently_never_reads_the_old_scores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [nab_cv.File("synthetic/noise.csv", np.random.default_rng(4).normal(size=300), [])]
    monkeypatch.setattr(nab_cv, "SCORE_CHOICES", ({**SMALL_SET_UP, "forests": 1},
                                                  {**SMALL_SET_UP, "forests": 1,
                                                   "n_estimators": 10}))
    first, second = (nab_cv.scored(files, choice, 0, tmp_path)[0] for choice in (0, 1))
    assert len(list(tmp_path.iterdir())) == 2
    assert not np.array_equal(first.scores, second.scores)


@pytest.mark.parametrize("max_spread", [1.0, np.inf])
def test_the_report_is_strict_json_with_or_without_a_bound(max_spread: float) -> None:
    files = [nab_cv.File(f"{g}/x.csv", np.zeros(5), [(1, 2)]) for g in ("a", "b")]
    raw = np.array([[[0.9, 0.9], [0.7, 0.7]], [[0.6, 0.6], [0.61, 0.6]]])  # candidate, seed, file
    table = nab_cv.Table(raw, np.zeros(raw.shape, dtype=int), np.array([1, 1]))
    text, data = nab_cv.report(files, [0, 1], table, (1.0, 1.0, 10), "cmd", max_spread)
    json.dumps(data, allow_nan=False)
    assert data["max_spread"] == (1.0 if np.isfinite(max_spread) else None)
    assert "Picked by best mean alone" in text
    # Within one point only candidate 1 keeps its seeds together; unbounded, 0 has the best mean.
    assert [fold["picked"] == nab_cv.describe(1) for fold in data["folds"]] == [
        np.isfinite(max_spread)] * 2


def test_the_report_says_when_one_seed_makes_the_bound_rule_none_out() -> None:
    assert "rules none out" in nab_cv.bound_caveat([0], 1.0)
    assert nab_cv.bound_caveat([0, 1], 1.0) == ""
    assert nab_cv.bound_caveat([0], np.inf) == ""
