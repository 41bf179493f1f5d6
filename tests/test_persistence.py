"""Persistence with its realised band: the floor while no seasonal forecast is trusted."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from adaptive_operator.domain.forecasting.persistence import MIN_ERRORS, PersistenceBand, rise
from adaptive_operator.domain.scaling.operating_point import (
    FloorRecord,
    fallback_floors,
    with_fallback,
)
from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor, PredictiveSettings
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay

NAN = math.nan


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([10.0, 12.0, 11.0], 2.0, id="highest-later-row"),
        pytest.param([10.0, 8.0, 9.0], -1.0, id="a-fall-is-negative"),
        pytest.param([10.0, NAN, 13.0], 3.0, id="a-missing-later-row-is-skipped"),
        pytest.param([NAN, 12.0, 11.0], NAN, id="no-first-row"),
        pytest.param([10.0, NAN, NAN], NAN, id="no-later-row"),
    ],
)
def test_rise(rows: list[float], expected: float) -> None:
    found = rise(deque(rows))
    assert (math.isnan(found) and math.isnan(expected)) or found == expected


def band_over(values: list[float], horizon: int = 1, rows: int = 100) -> PersistenceBand:
    band = PersistenceBand(rows, horizon)
    for v in values:
        band.observe(v)
    return band


def test_no_band_before_enough_errors() -> None:
    band = band_over([10.0] * MIN_ERRORS)  # MIN_ERRORS rows give MIN_ERRORS - 1 errors
    assert band.high(0.9) is None and band.floor(0.9, 1.0) is None
    band.observe(10.0)
    assert band.high(0.9) == 10.0


def test_the_band_is_the_last_value_plus_the_quantile_of_the_rises() -> None:
    # Rises of 0, 1, 2, ... 19 between consecutive rows (the ramp restarts every 20 rows).
    values = list(np.cumsum(np.tile(np.arange(20.0), 3)))
    band = band_over(values, rows=40)
    errors = np.diff(values)[-40:]
    assert band.high(0.9) == pytest.approx(values[-1] + np.quantile(errors, 0.9))
    assert band.floor(0.9, 7.0) == math.ceil((values[-1] + np.quantile(errors, 0.9)) / 7.0)


def test_the_rise_spans_the_whole_look_ahead() -> None:
    """Two rows ahead: the rise to the higher of the next two rows, not to each row alone."""
    values = [10.0, 20.0] * 20  # the last row is 20
    one, two = band_over(values, horizon=1), band_over(values, horizon=2)
    assert one.high(0.4) == 10.0  # one row ahead: 19 falls of 10 and 20 rises of 10
    assert two.high(0.4) == 20.0  # two rows ahead, one of them is always back at 20 or above


def test_a_missing_last_row_gives_no_band() -> None:
    band = band_over([10.0] * 20)
    band.observe(NAN)
    assert band.high(0.9) is None
    band.observe(12.0)
    assert band.high(0.9) == 12.0


def test_an_infinite_row_is_a_missing_row() -> None:
    band = band_over([10.0] * 20 + [math.inf])
    assert band.high(0.9) is None
    band.observe(10.0)
    assert band.high(0.99) == 10.0


def test_the_band_never_goes_below_zero() -> None:
    band = band_over([100.0 - 5 * i for i in range(20)] + [0.0])
    assert band.high(0.5) == 0.0


def test_the_band_is_used_only_while_the_last_value_forecasts_no_worse_than_the_mean() -> None:
    """Ten rows ahead: on white noise the mean of the last ten rows forecasts better than the
    last row, and the band would only measure the noise; on a steady climb the last row wins."""
    rng = np.random.default_rng(5)
    noisy = band_over([float(v) for v in rng.normal(100, 20, 300)], horizon=10, rows=200)
    assert not noisy.trusted and noisy.high(0.8) is None
    climb = band_over([float(v) for v in 100 + np.arange(300) + rng.normal(0, 1, 300)],
                      horizon=10, rows=200)
    assert climb.trusted and climb.high(0.8) is not None
    one_row = band_over([float(v) for v in rng.normal(100, 20, 300)], horizon=1, rows=200)
    assert one_row.trusted  # one row ahead, the last row is the look-ahead's mean


def test_the_guard_waits_for_three_look_aheads_of_errors() -> None:
    band = band_over([100.0 + i for i in range(39)], horizon=10)  # 29 rows scored
    assert not band.trusted
    band.observe(139.0)
    assert band.trusted and band.high(0.5) == 149.0


def test_the_running_mean_skips_missing_rows() -> None:
    band = band_over([10.0, NAN, 20.0, 30.0], horizon=2)
    assert band._means[-1] == 25.0 and band._means[-2] == 20.0
    band.observe(NAN)
    band.observe(NAN)
    assert math.isnan(band._means[-1])


def noise(rows: int, seed: int = 7) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in rng.normal(100, 20, rows)]


def advise_all(values: Sequence[float | None], settings: PredictiveSettings) -> tuple[
        list[int | None], PredictiveAdvisor]:
    advisor = PredictiveAdvisor(settings)
    floors = [advisor.advise(values[: i + 1], 1800.0, 1800.0, 10.0)
              for i in range(len(values))]
    return floors, advisor


def test_an_untrusted_forecast_falls_back_to_the_persistence_band() -> None:
    """Noise has no season: no trusted forecast, but a floor from the recent rises, with no
    ceiling even with scale-down on forecast (only a trusted forecast may scale down)."""
    values = noise(200)
    settings = PredictiveSettings(scale_down_on_forecast=True)
    floors, advisor = advise_all(values, settings)
    assert not advisor.state.reliable
    assert "persistence band asks for" in advisor.state.reason
    assert all(f is not None for f in floors[MIN_ERRORS + 1:])
    assert advisor.ceiling() is None and advisor.state.scale_down_to is None
    covered = [f is not None and f * 10.0 >= v
               for f, v in zip(floors[100:-1], values[101:], strict=True)]
    assert 0.7 < np.mean(covered) < 0.97  # about the 0.8 quantile of the rises, not more
    off, plain = advise_all(values, replace(settings, persistence_fallback=False))
    assert off == [None] * len(values) and plain.fallback is None


def test_the_fallback_serves_more_than_reactive_scaling_in_the_replay() -> None:
    values = noise(400, seed=3)
    config = ReplayConfig(10.0, 60.0, 1800.0)
    def unserved(settings: PredictiveSettings) -> float:
        pods = replay(values, config, PredictiveAdvisor(settings)).serving_pods
        return sum(max(v / 10.0 - p, 0.0) for v, p in zip(values, pods, strict=True))
    assert unserved(PredictiveSettings()) < 0.5 * unserved(
        PredictiveSettings(persistence_fallback=False))


def test_fallback_floors_fill_only_the_untrusted_rows() -> None:
    band = band_over([10.0] * 20)
    found = fallback_floors(band, 1.0, (0.6, 0.9))
    assert found == {0.6: 10, 0.9: 10}
    assert fallback_floors(None, 1.0, (0.6,)) == {0.6: None}
    assert with_fallback({0.6: None, 0.9: 12}, found) == {0.6: 10, 0.9: 12}


def test_the_objective_scales_down_on_the_trusted_floor_only() -> None:
    """A fallback floor raises the replicas; as a ceiling it would cut them: the recorded curve
    keeps the two apart."""
    record = FloorRecord(10, (0.8,))
    for value in (50.0, 50.0, 10.0, 10.0, 10.0, 10.0):
        record.add(value, {0.8: 6}, {0.8: None})
    config = ReplayConfig(10.0, 60.0, 300.0)
    down, up = (next(p for p in record.curve(config) if p.point.scale_down is s) for s in
                (True, False))
    assert down.replica_hours == up.replica_hours
