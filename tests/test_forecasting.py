"""Forecasting models, seasonality detection, cleaning and backtest on synthetic series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_operator.domain.forecasting import ModelKind, forecaster
from adaptive_operator.domain.forecasting.backtest import (
    CANDIDATES,
    Plan,
    Reference,
    naive_scale,
    rank,
    reference_for,
)
from adaptive_operator.domain.forecasting.baseline import Resolution, baseline_path
from adaptive_operator.domain.forecasting.cleaning import (
    aggregate,
    as_array,
    clean,
    clip_outliers,
    fill_gaps,
    mark_outages,
    remove_level_shift,
)
from adaptive_operator.domain.forecasting.engine import (
    EngineSettings,
    ForecastEngine,
    History,
    detect,
    level_clip,
)
from adaptive_operator.domain.forecasting.seasonality import detect_periods
from adaptive_operator.domain.forecasting.tracker import ErrorWindow

DAY = 48  # points per day at 30-minute resolution


def series(days: int, weekly: float = 0.0, noise: float = 2.0, seed: int = 0) -> np.ndarray:
    """Load with a daily cycle (and optionally a weekly one) plus Gaussian noise."""
    t = np.arange(days * DAY)
    rng = np.random.default_rng(seed)
    daily = 30 * np.sin(2 * np.pi * t / DAY)
    week = weekly * np.where((t // DAY) % 7 >= 5, -1.0, 0.4)
    return 100 + daily + week + rng.normal(0, noise, len(t))


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        pytest.param(series(10), (DAY,), id="daily-cycle-found"),
        pytest.param(series(28, weekly=25.0), (DAY, 7 * DAY), id="weekly-cycle-over-daily"),
        pytest.param(np.random.default_rng(3).normal(100, 5, 500), (), id="white-noise-none"),
        pytest.param(np.full(200, 7.0), (), id="flat-line-none"),
        pytest.param(np.arange(300, dtype=float), (), id="pure-trend-none"),
    ],
)
def test_detects_periods(y: np.ndarray, expected: tuple[int, ...]) -> None:
    found = detect_periods(y)
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert abs(got - want) <= max(1, want // 20)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rows", [90, 100, 120])
def test_a_young_history_finds_the_exact_period(seed: int, rows: int) -> None:
    """Three to four cycles of a 30-row season: the biased ACF peaks at 29 about half the time
    (its taper pulls peaks to shorter lags); the unbiased refinement finds 30."""
    t = np.arange(rows)
    y = 50 - 35 * np.cos(2 * np.pi * t / 30) + np.random.default_rng(seed).normal(0, 1.5, rows)
    assert detect_periods(y) == (30,)


@pytest.mark.parametrize(
    ("kind", "period", "horizon", "expected"),
    [
        pytest.param(
            ModelKind.HOLT_WINTERS,
            30,
            8,
            Reference("seasonal naive", 30),
            id="fitted-model-held-to-seasonal-naive",
        ),
        pytest.param(
            ModelKind.MSTL,
            30,
            45,
            Reference("seasonal naive", 60),
            id="horizon-beyond-a-season-looks-two-seasons-back",
        ),
        pytest.param(
            ModelKind.SEASONAL_NAIVE,
            30,
            8,
            Reference("persistence", 8),
            id="seasonal-naive-held-to-persistence-not-itself",
        ),
    ],
)
def test_the_guard_reference(
    kind: ModelKind, period: int, horizon: int, expected: Reference
) -> None:
    assert reference_for(kind, period, horizon) == expected


def test_detect_on_fine_rows_scales_periods_back() -> None:
    fine = np.repeat(series(10), 30)  # 1-minute rows
    (period,) = detect(fine)
    assert abs(period - DAY * 30) <= 60


@pytest.mark.parametrize("kind", [ModelKind.SEASONAL_NAIVE, ModelKind.HOLT_WINTERS, ModelKind.MSTL])
@pytest.mark.parametrize(
    ("y", "periods"),
    [
        pytest.param(series(10), (DAY,), id="daily"),
        pytest.param(series(28, weekly=25.0), (DAY, 7 * DAY), id="daily-and-weekly"),
    ],
)
def test_models_forecast_a_known_season(
    kind: ModelKind, y: np.ndarray, periods: tuple[int, ...]
) -> None:
    train, test = y[:-DAY], y[-DAY:]
    path = forecaster(kind).fit(train, periods).path(DAY)
    mae = float(np.mean(np.abs(path - test)))
    flat = float(np.mean(np.abs(np.mean(train) - test)))
    assert mae < 0.35 * flat


@pytest.mark.parametrize("kind", [ModelKind.HOLT_WINTERS, ModelKind.MSTL])
def test_models_without_season_forecast_the_level(kind: ModelKind) -> None:
    y = np.random.default_rng(5).normal(50, 1, 300)
    path = forecaster(kind).fit(y, ()).path(10)
    assert np.all(np.abs(path - 50) < 2)


def test_auto_is_not_a_registered_forecaster() -> None:
    with pytest.raises(ValueError, match="Auto"):
        forecaster(ModelKind.AUTO)


def test_weekly_model_wins_the_backtest_when_weeks_differ() -> None:
    y = series(35, weekly=40.0, noise=1.0)
    plan = Plan(Resolution.for_periods((DAY, 7 * DAY), 48), 1, DAY, 2, level_clip(y))
    scores = rank(y, CANDIDATES, plan)
    assert [s.mae for s in scores] == sorted(s.mae for s in scores)
    assert scores[0].kind is ModelKind.MSTL
    assert scores[0].relative < 1.0


def test_naive_scale_is_the_seasonal_difference() -> None:
    y = np.array([1.0, 2.0, 4.0, 2.0])
    assert naive_scale(y, 2) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param([1.0, None, 3.0], [1.0, math.nan, 3.0], id="none-is-missing"),
        pytest.param([5.0, -2.0, 5.0], [5.0, math.nan, 5.0], id="negative-counter-reset-missing"),
        pytest.param([1.0, math.inf], [1.0, math.nan], id="infinite-missing"),
    ],
)
def test_as_array(raw: list[float | None], expected: list[float]) -> None:
    np.testing.assert_array_equal(as_array(raw), np.array(expected))


def test_long_zero_run_is_an_outage_short_one_is_load() -> None:
    y = np.array([5.0, 0.0, 5.0, 5.0, 5.0, 0, 0, 0, 0, 5.0, 5.0, 5.0])
    out = mark_outages(y, 3)
    assert out[1] == 0.0
    assert np.isnan(out[5:9]).all()
    assert np.isfinite(np.delete(out, range(5, 9))).all()


def test_gaps_are_filled_from_the_previous_cycle() -> None:
    y = np.tile([1.0, 5.0, 9.0], 3)
    y[4] = np.nan
    y[0] = np.nan
    out = fill_gaps(y, 3)
    assert out[4] == 5.0
    assert out[0] == 5.0  # no earlier cycle: the nearest value


def test_spike_is_clipped() -> None:
    y = series(3)
    y[70] = 10_000.0
    out = clip_outliers(y)
    assert out[70] < 200
    assert np.array_equal(np.delete(out, 70)[:60], np.delete(y, 70)[:60])


def test_level_shift_moves_old_data_to_the_new_level() -> None:
    y = series(8, noise=1.0)
    y[-3 * DAY :] += 80.0
    out = remove_level_shift(y, DAY)
    assert abs(float(np.mean(out[: 5 * DAY] - y[: 5 * DAY])) - 80.0) < 10.0


def test_no_shift_leaves_the_series_alone() -> None:
    y = series(8, noise=1.0)
    np.testing.assert_array_equal(remove_level_shift(y, DAY), y)


def test_clean_series_with_gaps_zeros_and_spikes_is_complete() -> None:
    y = np.repeat(series(6), 2)
    y[100:130] = 0.0
    y[200:220] = np.nan
    y[300] = 1e6
    out = clean(y, 2, DAY, 5)
    assert out is not None and np.isfinite(out).all()
    assert out.max() < 200


def test_clean_of_nothing_is_none() -> None:
    assert clean(np.full(10, np.nan), 2, 2, 3) is None


def test_baseline_tracks_the_season_through_damage() -> None:
    y = np.repeat(series(8), 4)
    y[2000:2100] = 0.0
    y[2500:2600] = np.nan
    truth = np.repeat(series(9)[-DAY:], 4)
    path = baseline_path(y, ModelKind.HOLT_WINTERS, Resolution.for_periods((4 * DAY,), 48), 4 * DAY)
    assert path is not None
    assert float(np.mean(np.abs(path - truth))) < 8.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.floats(0, 1e6)), min_size=1, max_size=60),
    st.integers(1, 7),
)
def test_aggregate_then_fill_has_no_gap_when_any_data(values: list[float | None], k: int) -> None:
    coarse = aggregate(as_array(values), k)
    filled = fill_gaps(coarse, 2)
    if np.isfinite(coarse).any():
        assert np.isfinite(filled).all()
        assert filled.min() >= 0


def test_history_keeps_the_last_rows() -> None:
    h = History(5)
    for i in range(3000):
        h.append(float(i))
    np.testing.assert_array_equal(h.values(), [2995.0, 2996.0, 2997.0, 2998.0, 2999.0])
    assert h.at(2999) == 2999.0
    assert math.isnan(h.at(10))
    assert math.isnan(h.at(3000))


# --- the guard's error window -------------------------------------------------------------------


def window_with(model: float, reference: float, rows: int, size: int = 43_200) -> ErrorWindow:
    window = ErrorWindow(size, 2)
    for _ in range(rows):
        window.add(np.array([model / 2, model]), reference)
    return window


@pytest.mark.parametrize(
    ("model", "reference", "expected"),
    [
        pytest.param(1.0, 2.0, 0.5, id="half-the-reference-error"),
        pytest.param(3.0, -2.0, 1.5, id="absolute-errors-compared"),
        pytest.param(0.0, 0.0, 0.0, id="both-perfect"),
        pytest.param(1.0, 0.0, math.inf, id="reference-perfect-model-not"),
    ],
)
def test_relative_error_is_mae_over_the_reference_mae(
    model: float, reference: float, expected: float
) -> None:
    assert window_with(model, reference, 10).relative_error() == (expected, 10)


def test_a_young_window_follows_its_realised_errors() -> None:
    """A day's window at a 2 s sync holds 43,200 rows; while it holds a few dozen, each new row
    counts at once (it used to keep the seeded figure for 675 rows)."""
    window = window_with(1.0, 1.0, 28)
    assert window.relative_error()[0] == pytest.approx(1.0)
    for _ in range(28):
        window.add(np.array([2.5, 5.0]), 1.0)
    assert window.relative_error()[0] == pytest.approx(3.0)
    _, high = window.quantiles(0.9)
    assert high[-1] == pytest.approx(5.0)


def test_an_empty_window_has_no_ratio() -> None:
    assert ErrorWindow(10, 2).relative_error() == (math.inf, 0)


def engine_after(rows: int, model: ModelKind = ModelKind.AUTO) -> tuple[ForecastEngine, np.ndarray]:
    y = series(5, seed=1)
    engine = ForecastEngine(EngineSettings(model=model, window_rows=400, refit_rows=24), 2)
    for value in y[:rows]:
        engine.observe(float(value))
        engine.forecast()
    return engine, y


@pytest.mark.parametrize(
    ("model", "sits_out"),
    [
        pytest.param(ModelKind.AUTO, True, id="auto-re-chooses-without-it"),
        pytest.param(ModelKind.HOLT_WINTERS, False, id="a-named-model-stays-and-is-refused"),
    ],
)
def test_a_model_losing_to_its_reference_sits_out_the_next_choice(
    model: ModelKind, sits_out: bool
) -> None:
    engine, y = engine_after(4 * DAY + 7, model)
    chosen = engine.kind
    assert chosen is not None and engine.tracker is not None
    for _ in range(100):  # realised rows far worse than the reference
        engine.tracker.window.add(np.array([40.0, 40.0]), 1.0)
    for value in y[4 * DAY + 7 : 5 * DAY]:  # past the next refit
        engine.observe(float(value))
        engine.forecast()
    assert (engine.kind is not chosen) == sits_out
    assert engine.kind is not None
