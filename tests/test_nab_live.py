"""The live detector's cross-validation harness (benchmarks/nab_live.py): the settings it
judges are the operator's, its candidates start with the operator's current point, and its
counts and report hold on a small corpus."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import nab_cv
import nab_live
from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.healing.anomaly import score_batch
from adaptive_operator.domain.healing.ladder import detector_settings_from_spec


def test_it_judges_the_operators_settings_and_tries_its_current_point_first() -> None:
    live = nab_live.live_settings()
    assert live == detector_settings_from_spec(HealingSpec(enabled=True))
    found = nab_live.candidates(live)
    assert len(found) == 48
    assert all(getattr(live, knob) == value for knob, value in found[0].items())
    assert len({tuple(knobs.items()) for knobs in found}) == 48
    # Two forest set-ups (with seasonal differencing or without), each judged 24 ways: the
    # cool-down and re-arming are read by the judge only, so they need no forest of their own.
    set_ups = {nab_live.scoring(live, knobs) for knobs in found}
    assert {s.seasonal_differencing for s in set_ups} == {False, True}
    assert all(s.train_sigmas == live.train_sigmas for s in set_ups)


def test_the_cached_scores_are_keyed_without_the_operating_point() -> None:
    # Only the judge reads the operating point: a new one of the operator's reads the forests'
    # scores cached before it, and a knob the forests read keys scores of their own.
    live = nab_live.live_settings()
    assert nab_cv.cache_key(replace(live, rearm_rows=0, train_sigmas=0.0)) == \
        nab_cv.cache_key(live)
    assert nab_cv.cache_key(replace(live, seasonal_differencing=False)) != nab_cv.cache_key(live)


def test_tree_shapes_keep_the_operators_budget_of_rows() -> None:
    live = nab_live.live_settings()
    found = nab_live.candidates(live, (1, 2, 4))
    assert len(found) == 144
    assert all(getattr(live, knob) == value for knob, value in found[0].items())
    shapes = {(k["n_estimators"], k["max_samples"]) for k in found}
    assert shapes == {(30, 256), (60, 128), (120, 64)}
    assert list(nab_live.by_shape(found)) == [
        "30 trees of 256 rows", "60 trees of 128 rows", "120 trees of 64 rows"]
    # Six forest set-ups: each shape with seasonal differencing or without.
    assert len({nab_live.scoring(live, knobs) for knobs in found}) == 6
    with pytest.raises(ValueError, match="cannot be cut"):
        nab_live.shape(live, 256)


def test_a_window_is_missed_when_no_flag_falls_in_it() -> None:
    flags = np.zeros(20, dtype=bool)
    flags[[3, 15]] = True
    assert nab_live.missed_windows(flags, [(2, 4), (6, 9), (15, 15), (17, 19)]) == 2


SMALL: dict[str, Any] = {"min_train_rows": 60, "refit_every": 80, "n_estimators": 20,
                         "baseline_rows": 50, "warm_up_rows": 10}


def small_corpus() -> list[nab_cv.File]:
    rng = np.random.default_rng(8)
    files = []
    for group in ("a", "b", "c"):
        values = 10.0 + rng.normal(0.0, 1.0, 400)
        values[300:320] += 12.0
        files.append(nab_cv.File(f"{group}/x.csv", values, [(295, 330)]))
    return files


@pytest.fixture
def small_live(monkeypatch: pytest.MonkeyPatch) -> None:
    small = replace(nab_live.live_settings(), **SMALL)
    monkeypatch.setattr(nab_live, "live_settings", lambda: small)


@pytest.mark.usefixtures("small_live")
def test_each_set_up_is_scored_once_a_seed_as_the_detector_scores_it(tmp_path: Path) -> None:
    files = small_corpus()
    live = nab_live.live_settings()
    runs = nab_live.score_runs(files, live, nab_live.candidates(live), 2, tmp_path)
    assert len(runs) == 2 and all(len(seeds) == 2 for seeds in runs.values())
    for file, batch in zip(files, runs[live][1], strict=True):
        direct = score_batch({"value": file.values}, live, 1)
        np.testing.assert_array_equal(batch.scores, direct.scores)


SMALL_FACTORS = (1, 2)


@pytest.fixture
def small_runs(small_live: None, tmp_path: Path) -> nab_live.Runs:
    live = nab_live.live_settings()
    found = nab_live.candidates(live, SMALL_FACTORS)
    return nab_live.score_runs(small_corpus(), live, found, 2, tmp_path)


def test_the_table_of_a_small_corpus(small_runs: nab_live.Runs) -> None:
    live = nab_live.live_settings()
    found = nab_live.candidates(live, SMALL_FACTORS)
    tables, missed = nab_live.build_tables(small_corpus(), small_runs, live, found)
    assert list(tables) == [profile.name for profile in nab_live.PROFILES]
    assert missed.shape == (96, 2)
    # A 12-sigma jump held for 20 rows is found by every candidate and seed.
    assert (missed == 0).all()
    for table in tables.values():
        assert table.raw.shape == (96, 2, 3)
        assert (table.raw > 0).all()


def test_the_report_of_a_small_corpus_gives_both_profiles(small_runs: nab_live.Runs) -> None:
    live = nab_live.live_settings()
    found = nab_live.candidates(live, SMALL_FACTORS)
    text, data = nab_live.report(small_corpus(), small_runs, live, found, "cmd", np.inf)
    json.dumps(data, allow_nan=False)
    assert data["max_spread"] is None
    for profile in nab_live.PROFILES:
        assert f"## NAB profile {profile.name}" in text
        assert [fold["group"] for fold in data[profile.name]["folds"]] == ["a", "b", "c"]
        assert len(data[profile.name]["held_out_pooled"]) == 2
    assert f"{data['candidates'][0]} (the operator now)" in text


def test_the_report_gives_each_tree_shapes_score_and_costs(small_runs: nab_live.Runs) -> None:
    live = nab_live.live_settings()
    found = nab_live.candidates(live, SMALL_FACTORS)
    data = nab_live.report(small_corpus(), small_runs, live, found, "cmd", np.inf)[1]
    for profile in nab_live.PROFILES:
        by_shape = data[profile.name]["held_out_by_shape"]
        assert list(by_shape) == ["20 trees of 256 rows", "40 trees of 128 rows"]
        assert all(len(scores) == 2 for scores in by_shape.values())
    # Half the rows a tree, twice the trees: on noise (no repeated values) about the same nodes.
    kib = [costs[0] for costs in data["shape_costs"].values()]
    assert len(kib) == 2 and 0.5 < kib[1] / kib[0] < 2.0


def test_a_single_shape_gives_no_shape_table(small_runs: nab_live.Runs) -> None:
    live = nab_live.live_settings()
    found = nab_live.candidates(live)
    singles = {k: v for k, v in small_runs.items() if k.n_estimators == live.n_estimators}
    text, data = nab_live.report(small_corpus(), singles, live, found, "cmd", np.inf)
    assert "held_out_by_shape" not in data["standard"]
    assert "shape fixed" not in text


def test_flags_on_the_series_without_windows_are_counted_apart() -> None:
    files = [nab_cv.File("a/x.csv", np.zeros(5), [(1, 2)]),
             nab_cv.File("b/quiet.csv", np.zeros(5), [])]
    outside = np.array([[[1, 3], [2, 5]]])  # candidate, seed, file
    table = nab_cv.Table(np.zeros(outside.shape), outside, np.array([1, 0]))
    assert nab_live.quiet_flags(files, table, 0) == 4.0


def test_a_reports_command_gives_the_niceness_it_ran_at(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.nice", lambda increment: 5)
    assert nab_cv.runner() == "PYTHONPATH=operator nice -n 5 .venv/bin/python"
    monkeypatch.setattr("os.nice", lambda increment: 0)
    assert nab_cv.runner() == "PYTHONPATH=operator .venv/bin/python"


@pytest.mark.usefixtures("small_live")
def test_forests_are_averaged_only_where_two_runs_remain(tmp_path: Path) -> None:
    files, live = small_corpus(), nab_live.live_settings()
    singles = nab_live.score_runs(files, live, nab_live.candidates(live), 4, tmp_path)[live]
    lines, found = nab_live.forests_section(files, singles, live)
    assert list(found) == ["1", "2"]  # 4 seeds: 4 single runs, 2 of two forests, not 1 of 3
    assert [len(runs) for runs in found.values()] == [4, 2]
    assert any(line.startswith("| 2 | 2 |") for line in lines)
