"""Coupled scaling: the fitted relation, the guard on the coupled forecast, chains and cycles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptive_operator.domain.scaling.coupled_advisor import (
    CoupledAdvisor,
    OwnAdvisor,
    UpstreamTrace,
)
from adaptive_operator.domain.scaling.coupling import (
    CoupledForecaster,
    CouplingSettings,
    Relation,
    UpstreamInput,
    find_cycle,
    fit_relation,
    predict,
    upstream_value,
)
from adaptive_operator.domain.scaling.replay import ReplayConfig, replay

from coupling_traces import bursty, follower

FAST = CouplingSettings(max_lag_rows=6, min_rows=40, window_rows=400, refit_rows=50,
                        min_scored=10, error_rows=100)


def test_the_fit_finds_ratio_and_lag_of_a_noisy_follower() -> None:
    up = bursty(300, 1)
    relation = fit_relation(follower(up, 3.0, 4, 0.03, 2), [up], max_lag=8)
    assert relation is not None
    assert relation.lags == (4,)
    assert relation.ratios[0] == pytest.approx(3.0, rel=0.05)


def test_an_incident_on_the_downstream_does_not_bend_the_ratio() -> None:
    up = bursty(300, 3)
    down = follower(up, 2.0, 2, 0.02, 4)
    for row in range(100, 120):  # an outage upstream of nothing: the downstream spikes alone
        down[row] = 5_000.0
    relation = fit_relation(down, [up], max_lag=5)
    assert relation is not None and relation.lags == (2,)
    assert relation.ratios[0] == pytest.approx(2.0, rel=0.05)


def test_fan_in_fits_each_upstream_with_its_own_lag() -> None:
    a, b = bursty(400, 5), bursty(400, 6)
    down: list[float | None] = [
        2.0 * (a[max(0, t - 1)] or 0) + 0.5 * (b[max(0, t - 3)] or 0) + 10 for t in range(400)]
    relation = fit_relation(down, [a, b], max_lag=5)
    assert relation is not None and relation.lags == (1, 3)
    assert relation.ratios == pytest.approx((2.0, 0.5), rel=0.02)
    assert "2 x a (1 rows later)" in relation.describe(["a", "b"])


def test_too_few_rows_or_mismatched_lengths_give_no_relation() -> None:
    assert fit_relation([1.0] * 10, [[1.0] * 10], max_lag=5) is None
    assert fit_relation([1.0] * 50, [[1.0] * 49], max_lag=5) is None
    assert fit_relation([None] * 50, [[1.0] * 50], max_lag=5) is None


def test_the_upstream_is_read_then_forecast_then_held() -> None:
    upstream = UpstreamInput([1.0, 2.0, None, 4.0], forecast=(5.0,))
    assert [upstream_value(upstream, row, 3) for row in (1, 3, 4)] == [2.0, 4.0, 5.0]
    assert math.isnan(upstream_value(upstream, 2, 3))
    assert math.isnan(upstream_value(upstream, -1, 3))
    assert upstream_value(upstream, 5, 3) == 4.0  # past the forecast: the last reading
    relation = Relation((2.0,), (1,), 1.0, 0.1)
    assert list(predict(relation, [upstream], 3, 3)) == [9.0, 11.0, 9.0]


def run_forecaster(down: list[float | None], up: list[float | None],
                   horizon: int) -> tuple[CoupledForecaster, list[int | None]]:
    forecaster = CoupledForecaster(FAST)
    floors = []
    for n in range(1, len(down) + 1):
        floors.append(forecaster.advise(down[:n], [UpstreamInput(up[:n])], None, horizon, 10.0))
    return forecaster, floors


def test_a_follower_trusts_the_coupled_forecast_and_is_floored_ahead() -> None:
    up = bursty(300, 7)
    down = follower(up, 3.0, 3, 0.02, 8)
    forecaster, floors = run_forecaster(down, up, horizon=2)
    state = forecaster.state
    assert state.trusted and state.relative_error is not None and state.relative_error < 0.5
    # The floor covers what the relation predicts two rows ahead (known: the lag is 3 rows).
    coming = 3.0 * (up[len(up) - 1] or 0)
    assert floors[-1] is not None and floors[-1] * 10.0 >= coming * 0.95


def test_an_unrelated_upstream_is_ignored_and_status_says_why() -> None:
    up = bursty(300, 9)
    down = bursty(300, 10)
    forecaster, floors = run_forecaster(down, up, horizon=2)
    assert not forecaster.state.trusted
    assert "not better" in forecaster.state.reason
    assert floors[-50:] == [None] * 50


def test_young_history_is_not_trusted_yet() -> None:
    up = bursty(45, 11)
    forecaster, floors = run_forecaster(follower(up, 1.0, 1, 0.0, 1), up, horizon=1)
    assert floors == [None] * 45
    assert "rows scored so far" in forecaster.state.reason


def test_a_chain_passes_the_forecast_down() -> None:
    a = bursty(300, 12)
    b = follower(a, 2.0, 2, 0.02, 13)
    c = follower(b, 1.5, 2, 0.02, 14)
    b_advisor = CoupledAdvisor(None, [UpstreamTrace(a, OwnAdvisor(), 10.0)], FAST)
    c_advisor = CoupledAdvisor(None, [UpstreamTrace(b, b_advisor, 20.0)], FAST)
    config = ReplayConfig(30.0, startup_seconds=180.0, interval_seconds=60.0)
    result = replay(c, config, c_advisor)
    assert b_advisor.coupled.state.trusted and c_advisor.coupled.state.trusted
    assert len(b_advisor.median_path()) == 4  # b's coupled path (start-up + a row), read by c
    assert len(result.desired_replicas) == 300


def test_the_coupled_floor_never_lowers_the_own_forecast() -> None:
    up = [1.0] * 120
    advisor = CoupledAdvisor(None, [UpstreamTrace(up, OwnAdvisor(), 1.0)], FAST)
    down = [50.0] * 120
    floors = [advisor.advise(down[:n], 60.0, 60.0, 10.0) for n in range(1, 121)]
    assert all(f is None or f >= 5 for f in floors)
    assert advisor.ceiling() is None
    assert advisor.median_path() in ((), advisor.coupled.state.forecast)


def test_an_upstream_trace_shorter_than_the_downstream_is_refused() -> None:
    trace = UpstreamTrace([1.0, 2.0], OwnAdvisor(), 1.0)
    with pytest.raises(ValueError, match="shorter"):
        trace.at(3, 60.0, 60.0)


@pytest.mark.parametrize(("edges", "start", "cycle"), [
    pytest.param({"c": ["b"], "b": ["a"]}, "c", None, id="chain"),
    pytest.param({"d": ["b", "c"], "b": ["a"], "c": ["a"]}, "d", None, id="diamond-fan-in"),
    pytest.param({"a": ["b"], "b": ["a"]}, "a", ("a", "b", "a"), id="two-cycle"),
    pytest.param({"a": ["a"]}, "a", ("a", "a"), id="self"),
    pytest.param({"x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]}, "x", ("a", "b", "c", "a"),
                 id="cycle-upstream"),
])
def test_cycles_are_found(edges: dict[str, list[str]], start: str,
                          cycle: tuple[str, ...] | None) -> None:
    assert find_cycle(edges, start) == cycle


def step_load(rows: int, at: int, low: float, high: float) -> list[float | None]:
    """A flat load that steps up once (a release, a campaign), as a load generator makes it."""
    return [high if t >= at else low for t in range(rows)]


def test_a_step_load_is_fitted_at_its_true_lag() -> None:
    # Only the rows right after the step tell the lags apart; a robust scale discounts exactly
    # those rows as outliers, so it must not be what picks the lag.
    for rows, lag in ((60, 2), (200, 4), (200, 8)):
        up = step_load(rows, rows - 30, 100.0, 400.0)
        relation = fit_relation(follower(up, 3.0, lag, 0.0, 22), [up], max_lag=12)
        assert relation is not None and relation.lags == (lag,)
        assert relation.ratios[0] == pytest.approx(3.0, rel=0.01)


def test_a_negative_ratio_is_never_trusted() -> None:
    # A downstream that falls when the upstream rises follows it tightly, but more upstream load
    # never means less downstream load: such a relation must not set a floor.
    up = bursty(300, 23)
    down: list[float | None] = [900.0 - 2.0 * (up[max(0, t - 3)] or 0.0) for t in range(300)]
    forecaster, floors = run_forecaster(down, up, horizon=2)
    relation = forecaster.state.relation
    assert relation is not None and relation.ratios[0] < 0
    assert not forecaster.state.trusted
    assert "not positive" in forecaster.state.reason
    assert floors[-50:] == [None] * 50


def test_noisy_upstream_readings_do_not_dilute_the_ratio() -> None:
    # A load wave as small as the readings' noise (as a rate over a short window reads it): a
    # least-squares fit of the downstream on such readings halves the ratio, and the coupled
    # forecast then undershoots exactly when the upstream steps up.
    rng = np.random.default_rng(31)
    wave = 30 * (1 + 0.2 * np.sin(2 * np.pi * np.arange(400) / 20))
    up: list[float | None] = [float(v) for v in wave * (1 + rng.normal(0, 0.12, 400))]
    down: list[float | None] = [float(3 * wave[max(0, t - 3)] * (1 + rng.normal(0, 0.12)))
                                for t in range(400)]
    relation = fit_relation(down, [up], max_lag=6)
    assert relation is not None and relation.lags == (3,)
    assert relation.ratios[0] == pytest.approx(3.0, rel=0.05)


def test_a_periodic_load_is_not_fitted_half_a_period_out_with_the_sign_flipped() -> None:
    # The e2e suite's loadgen swings over 20 rows and api follows 3 rows later: the lag 13 (or
    # 12) fits as well with a negative ratio, and was picked in 21 of these 40 seeds, so api
    # never trusted its upstream (learned ratio -2.95 at lag 12, once in CI).
    wave = 30 * (1 + 0.2 * np.sin(2 * np.pi * np.arange(300) / 20))
    for seed in range(40):
        rng = np.random.default_rng(seed)
        up: list[float | None] = [float(v) for v in wave * (1 + rng.normal(0, 0.12, 300))]
        down: list[float | None] = [float(3 * wave[max(0, t - 3)] * (1 + rng.normal(0, 0.12)))
                                    for t in range(300)]
        relation = fit_relation(down, [up], max_lag=13)
        assert relation is not None and abs(relation.lags[0] - 3) <= 1, (seed, relation)
        assert relation.ratios[0] == pytest.approx(3.0, rel=0.15), (seed, relation)
