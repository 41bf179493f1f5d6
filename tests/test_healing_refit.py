"""The detector's fits run in the background through the runtime's fit gate, one at a time, and
no sync waits for one: after a restart every service's detector is due at once, and a thousand
fits on the shared worker threads held back the scaling daemons' calls until all were done."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from adaptive_operator.domain.healing.anomaly import AnomalyVerdict, DetectorSettings
from adaptive_operator.domain.healing.anomaly_live import AnomalyDetector
from adaptive_operator.domain.healing.watch import (
    RANDOM_STATE,
    Watcher,
    add_row,
    new_watcher,
    score,
)
from adaptive_operator.handlers import healing_observe
from adaptive_operator.handlers.healing import Watching

from fakes import HeldFits

SETTINGS = DetectorSettings(baseline_rows=50, train_rows=200, min_train_rows=60, refit_every=20,
                            cooldown_rows=5, record_rows=20)
SYNC = 15.0  # every row here is read at time 0: none comes after a gap


def watcher_with(rows: int, seed: int = 1) -> Watcher:
    watcher = new_watcher({"latency": "q1", "errors": "q2"}, {"latency": "latency"}, SETTINGS)
    rng = np.random.default_rng(seed)
    for _ in range(rows):
        add_row(watcher, {"latency": float(rng.normal(100, 5)),
                          "errors": float(rng.normal(1, 0.1))}, 0.0, SYNC)
    return watcher


def started(watcher: Watcher) -> asyncio.Task[None]:
    """The refit under way (one must be)."""
    assert watcher.fitting is not None
    return watcher.fitting


async def test_a_due_fit_runs_in_the_background_while_the_syncs_go_on() -> None:
    watcher, fits = watcher_with(SETTINGS.rows_to_fit), HeldFits()
    healing_observe.start_refit(watcher, fits)
    assert score(watcher, 0.0) is None  # the sync did not wait: nothing fitted yet
    await asyncio.sleep(0)
    # The next sync, the fit still held:
    add_row(watcher, {"latency": 100.0, "errors": 1.0}, 0.0, SYNC)
    healing_observe.start_refit(watcher, fits)  # still due, but one runs: no second fit
    await asyncio.sleep(0)
    assert fits.asked == 1 and not watcher.detector.fitted
    fits.release.set()
    await started(watcher)
    assert watcher.detector.fitted
    assert watcher.rows_since_fit == 0  # the rows are copied when the fit's turn comes
    assert score(watcher, 0.0) is not None


async def test_a_fit_that_waited_for_its_turn_fits_the_rows_of_then(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows the syncs appended while the fit queued are fitted on and their window
    scored, so the next sync continues it by one row (not the whole window again, on the
    event loop, once per fit)."""
    watcher, fits = watcher_with(SETTINGS.rows_to_fit), HeldFits()
    healing_observe.start_refit(watcher, fits)
    await asyncio.sleep(0)
    for _ in range(3):
        add_row(watcher, {"latency": 100.0, "errors": 1.0}, 0.0, SYNC)
    fits.release.set()
    await started(watcher)
    assert watcher.rows_since_fit == 0
    add_row(watcher, {"latency": 160.0, "errors": 1.0}, 0.0, SYNC)  # the next sync's

    def whole_window(_: object) -> None:
        raise AssertionError("the whole window was scored again on the event loop")

    monkeypatch.setattr(watcher.detector, "_score", whole_window)
    assert score(watcher, 0.0) is not None


async def test_a_refit_keeps_the_detector_fitted_so_far_until_it_is_done() -> None:
    watcher, fits = watcher_with(SETTINGS.rows_to_fit), HeldFits()
    fits.release.set()
    healing_observe.start_refit(watcher, fits)
    await started(watcher)
    first = watcher.detector
    fits.release.clear()
    for _ in range(SETTINGS.refit_every):
        add_row(watcher, {"latency": 100.0, "errors": 1.0}, 0.0, SYNC)
    healing_observe.start_refit(watcher, fits)
    await asyncio.sleep(0)
    assert watcher.detector is first and score(watcher, 0.0) is not None
    fits.release.set()
    await started(watcher)
    assert watcher.detector is not first and watcher.detector.fitted
    healing_observe.start_refit(watcher, fits)  # not due again: no fit
    assert fits.asked == 2


async def test_a_fit_is_logged_with_its_threshold_and_season(
        capsys: pytest.CaptureFixture[str]) -> None:
    # What a later row's score is judged against: why a bad rollout was (or was not) flagged.
    watcher, fits = watcher_with(SETTINGS.rows_to_fit), HeldFits()
    fits.release.set()
    healing_observe.start_refit(watcher, fits)
    await started(watcher)
    line = next(line for line in capsys.readouterr().out.splitlines()
                if "detector fitted" in line)
    assert f"threshold={watcher.detector.threshold}" in line and "season=0" in line


async def test_a_fit_on_too_few_rows_is_logged_and_leaves_the_detector_as_it_was(
        capsys: pytest.CaptureFixture[str]) -> None:
    watcher, fits = watcher_with(SETTINGS.rows_to_fit), HeldFits()
    healing_observe.start_refit(watcher, fits)
    watcher.history.rows = {name: values[:5] for name, values in watcher.history.rows.items()}
    fits.release.set()
    await asyncio.sleep(0)  # the task copies the rows when it starts: after the cut
    await started(watcher)
    assert not watcher.detector.fitted and started(watcher).exception() is None
    assert "detector not fitted" in capsys.readouterr().out


async def test_the_refit_under_way_is_dropped_with_the_daemon() -> None:
    watcher, fits = watcher_with(SETTINGS.rows_to_fit), HeldFits()
    watching = Watching(watcher=watcher)
    healing_observe.start_refit(watcher, fits)
    watching.stop()
    with pytest.raises(asyncio.CancelledError):
        await started(watcher)
    assert not watcher.detector.fitted


async def fitted_watcher() -> tuple[Watcher, dict[str, list[float]]]:
    """A watcher whose detector was just fitted (one window of rows: 76), and its rows then."""
    watcher, fits = watcher_with(SETTINGS.rows_to_fit + 10), HeldFits()
    fits.release.set()
    healing_observe.start_refit(watcher, fits)
    await started(watcher)
    return watcher, {name: list(values) for name, values in watcher.history.rows.items()}


def whole_verdict(watcher: Watcher, fitted_on: dict[str, list[float]],
                  monkeypatch: pytest.MonkeyPatch) -> AnomalyVerdict:
    """The verdict of the watcher's window scored whole by a detector fitted alike; the
    watcher's own detector may no longer score a window whole."""
    window = watcher.history.tail(watcher.window_rows)
    whole = AnomalyDetector(SETTINGS, RANDOM_STATE).fit(fitted_on).score(window)

    def whole_window(_: object) -> None:
        raise AssertionError("the whole window was scored again on the event loop")

    monkeypatch.setattr(watcher.detector, "_score", whole_window)
    return whole


async def test_after_a_fit_the_next_sync_scores_one_row_and_gets_the_whole_windows_verdict(
        monkeypatch: pytest.MonkeyPatch) -> None:
    watcher, fitted_on = await fitted_watcher()
    add_row(watcher, {"latency": 160.0, "errors": 1.0}, 0.0, SYNC)  # the next sync's
    assert score(watcher, 0.0) == whole_verdict(watcher, fitted_on, monkeypatch)


async def test_a_late_sync_scores_its_made_up_row_then_its_own_one_row_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync a period late adds a row standing in for the one missed, then its own: both are
    scored by continuing the last window a row at a time (the whole window again took 45
    times as long), with the verdict a whole window's scoring gives."""
    watcher, fitted_on = await fitted_watcher()
    add_row(watcher, {"latency": 100.0, "errors": 1.0}, watcher.clock.rows * SYNC, SYNC)
    assert score(watcher, 0.0) is not None
    late = (watcher.clock.rows + 1) * SYNC  # a row due before this one: made up
    add_row(watcher, {"latency": 160.0, "errors": 1.0}, late, SYNC)
    assert watcher.history.rows["latency"][-2] != 160.0 and watcher.unscored == 2
    assert score(watcher, 0.0) == whole_verdict(watcher, fitted_on, monkeypatch)
    assert watcher.unscored == 0
