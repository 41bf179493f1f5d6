"""The season of the training rows and the rule that a regular event is not an incident."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from adaptive_operator.domain.forecasting.seasonality import (
    finite_autocorrelation,
    season_of,
    seasonal_levels,
    strongest_peak,
)
from adaptive_operator.domain.healing.anomaly import (
    DetectorSettings,
    detect_series,
    repeats_season,
    training_season,
)
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector

FAST = DetectorSettings(min_train_rows=60, refit_every=80, n_estimators=20, baseline_rows=50,
                        record_margin=-0.05, seasonal_differencing=False,  # the repeat rule alone,
                        smooth_rows=1)  # on one-row jobs and incidents: each row's own score
SEASON = 60
JOB = 30  # the phase of a job that runs once per season


def periodic(rows: int, period: float, seed: int = 0, noise: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    series: np.ndarray = np.sin(2 * np.pi * np.arange(rows) / period) + rng.normal(0.0, noise, rows)
    return series


def with_jobs(seed: int, rows: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    values = 10 + np.random.default_rng(seed).normal(0, 1, rows)
    jobs = np.arange(JOB, rows, SEASON)
    values[jobs] += 10
    return values, jobs


def test_autocorrelation_is_one_at_lag_zero_and_zero_for_a_flat_line() -> None:
    acf = finite_autocorrelation(periodic(400, 40))
    assert acf[0] == pytest.approx(1.0)
    assert acf[40] > 0.5 > acf[20]
    assert not finite_autocorrelation(np.full(50, 3.0)).any()
    assert len(finite_autocorrelation([])) == 0
    assert not finite_autocorrelation([np.nan, np.inf]).any()


def test_autocorrelation_takes_missing_and_huge_values() -> None:
    values = periodic(400, 40) * 1e300
    values[::7] = np.nan
    values[3] = np.inf
    acf = finite_autocorrelation(values)
    assert np.isfinite(acf).all() and acf[40] > 0.5


@pytest.mark.parametrize(("values", "expected"), [
    pytest.param(periodic(1000, 48), 48, id="a-sine-of-48-rows"),  # within a row of it
    pytest.param(np.random.default_rng(3).normal(0, 1, 1000), 0, id="white-noise-has-none"),
    pytest.param(periodic(100, 48), 0, id="under-three-cycles-is-too-short-to-tell"),
])
def test_strongest_peak(values: np.ndarray, expected: int) -> None:
    assert strongest_peak(values, 30, 330, 4.5)[0] == pytest.approx(expected, abs=1)


def test_season_of_several_metrics_is_that_of_the_most_regular_one() -> None:
    noise = np.random.default_rng(4).normal(0, 1, 1000)
    assert season_of({"a": noise, "b": periodic(1000, 96)}, 30, 330, 4.5) == 96
    assert season_of({"a": noise}, 30, 330, 4.5) == 0


def test_seasonal_levels_look_back_whole_cycles_within_the_slack() -> None:
    scores = np.array([0.1, 0.9, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.1, 0.2])
    levels = seasonal_levels(scores, 4, slack=1, repeats=2)
    # row 7: rows 2..4 one cycle back; row 9: rows 4..6 one and rows 0..2 two cycles back
    assert levels.tolist() == pytest.approx([0, 0, 0, 0, 0.9, 0.9, 0.9, 0.4, 0.9, 0.9])


def test_seasonal_levels_ignore_seasons_within_the_slack() -> None:
    # A season within the slack would compare a row with rows after it (not causal).
    scores = np.linspace(0.0, 1.0, 20)
    assert not seasonal_levels(scores, 2, slack=2, repeats=3).any()
    assert not seasonal_levels(scores, np.zeros(20, dtype=np.intp), slack=2, repeats=3).any()


def test_repeats_season_needs_a_strictly_higher_score() -> None:
    scores = np.array([0.5, 0.1, 0.1, 0.1, 0.5, 0.1, 0.1, 0.1, 0.6])
    config = replace(FAST, season_slack_rows=1, season_repeats=1)
    # the first cycle has nothing to repeat; row 4 only ties row 0, row 8 beats it
    assert repeats_season(scores, 4, config).tolist() == [
        False, False, False, False, True, True, True, True, False]
    assert not repeats_season(scores, 0, config).any()


def test_training_season_of_a_history() -> None:
    history = {"value": periodic(1200, SEASON)}
    assert training_season(history, slice(0, 1200), FAST) == SEASON
    assert training_season(history, slice(0, 1200), replace(FAST, season_repeats=0)) == 0
    # longer than fits (record_rows - slack) / repeats: not a season the rule can use
    assert training_season(history, slice(0, 1200), replace(FAST, record_rows=150)) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_job_that_runs_every_season_is_flagged_less(seed: int) -> None:
    values, jobs = with_jobs(seed)
    seasonal = np.flatnonzero(detect_series(values, FAST, random_state=0).flags)
    plain = np.flatnonzero(
        detect_series(values, replace(FAST, season_repeats=0), random_state=0).flags)
    assert np.isin(seasonal, jobs).sum() < np.isin(plain, jobs).sum()


def test_an_incident_off_the_season_is_still_flagged() -> None:
    values, _ = with_jobs(0)
    values[1300] += 20
    assert detect_series(values, FAST, random_state=0).flags[1300]


def test_the_live_detector_learns_the_season_and_spares_the_job() -> None:
    values, _ = with_jobs(0, rows=751)  # a job at row 750
    detector = AnomalyDetector(FAST, random_state=0).fit({"value": values[:600]})
    assert detector._model is not None and detector._model.season == SEASON
    plain = AnomalyDetector(replace(FAST, season_repeats=0), random_state=0)
    plain.fit({"value": values[:600]})
    window = {"value": values}
    verdicts = (detector.score(window), plain.score(window))
    assert verdicts[0].score == pytest.approx(verdicts[1].score)
    assert [v.is_anomaly for v in verdicts] == [False, True]


@pytest.mark.parametrize("bad", [{"season_repeats": -1}, {"season_slack_rows": 0}])
def test_season_settings_validation(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="season"):
        DetectorSettings(**bad)  # type: ignore[arg-type]
