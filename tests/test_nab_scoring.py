"""NAB scorer units on tiny hand-made cases."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import nab

STANDARD = nab.PROFILES[0]
N = 1000  # probation: 150 rows
WINDOW = (500, 599)


def flags_at(*rows: int) -> np.ndarray:
    flags = np.zeros(N, dtype=bool)
    flags[list(rows)] = True
    return flags


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param((500,), 1.0, id="detection-at-left-edge-earns-full-tp"),
        pytest.param((), -1.0, id="miss-costs-fn"),
        pytest.param((599,), nab.scaled_sigmoid(-0.01) / nab.scaled_sigmoid(-1.0),
                     id="detection-at-right-edge-earns-almost-nothing"),
        pytest.param((500, 520, 560), 1.0, id="only-earliest-detection-in-window-counts"),
        pytest.param((300,), -1.0 - 0.11, id="false-positive-before-first-window-costs-full-fp"),
        pytest.param((100,), -1.0, id="detections-in-probation-are-ignored"),
        pytest.param((500, 600), 1.0 + 0.11 * nab.scaled_sigmoid(1 / 99),
                     id="fp-just-after-window-costs-almost-full-fp"),
        pytest.param((500, 999), 1.0 + 0.11 * nab.scaled_sigmoid(400 / 99),
                     id="fp-far-after-window-costs-full-fp"),
    ],
)
def test_score_file(rows: tuple[int, ...], expected: float) -> None:
    assert nab.score_file(flags_at(*rows), [WINDOW], STANDARD) == pytest.approx(expected)


def test_middle_detection_earns_between() -> None:
    middle = nab.score_file(flags_at(550), [WINDOW], STANDARD)
    assert 0.5 < middle < 1.0


def test_low_fn_profile_doubles_miss_cost() -> None:
    assert nab.score_file(flags_at(), [WINDOW], nab.PROFILES[2]) == -2.0


def test_normalised_scores_null_zero_and_perfect_hundred() -> None:
    assert nab.normalised(-3.0, 3, STANDARD) == 0.0
    assert nab.normalised(3.0, 3, STANDARD) == 100.0


def test_window_rows_maps_timestamps_inclusively() -> None:
    stamps = [f"2014-01-01 00:{minute:02d}:00" for minute in range(10)]
    spans = [["2014-01-01 00:02:00.000000", "2014-01-01 00:05:00.000000"]]
    assert nab.window_rows(stamps, spans) == [(2, 5)]


def test_corpus_threshold_sweep_uses_scores() -> None:
    scores = np.zeros(N)
    scores[505] = 0.9
    result = nab.FileResult("f", [WINDOW], scores, np.zeros(N, dtype=bool))
    assert nab.corpus_score([result], STANDARD, None) == 0.0
    best, threshold = nab.best_threshold([result], STANDARD)
    assert best > 95.0 and threshold <= 0.9


def test_counts_flags_outside_windows_after_probation_and_missed_windows() -> None:
    hit = nab.FileResult("realAWSCloudwatch/a.csv", [WINDOW], np.zeros(N), flags_at(100, 300, 550))
    missed = nab.FileResult("artificialNoAnomaly/b.csv", [WINDOW, (800, 850)], np.zeros(N),
                            flags_at(700))
    assert nab.counts([hit, missed]) == (2, 2)  # 300 and 700 outside; row 100 is probation


def test_scores_per_group_and_the_seed_table() -> None:
    aws = nab.FileResult("realAWSCloudwatch/a.csv", [WINDOW], np.zeros(N), flags_at(500))
    art = nab.FileResult("artificialWithAnomaly/b.csv", [WINDOW], np.zeros(N), flags_at())
    assert (nab.group_of(aws.name), nab.group_of(art.name)) == nab.GROUPS
    assert nab.own_score([aws, art], STANDARD, "realAWSCloudwatch") == 100.0
    assert nab.own_score([aws, art], STANDARD, "artificial") == 0.0
    assert nab.own_score([aws, art], STANDARD) == 50.0
    art_hit = nab.FileResult(art.name, [WINDOW], np.zeros(N), flags_at(500))
    lines = nab.seed_table({0: [aws, art], 1: [aws, art_hit]})
    standard = next(line for line in lines if line.startswith("| standard"))
    # all: 50 at seed 0, 100 at seed 1; AWS 100 both; artificial 0 then 100.
    cells = standard.rstrip(" |").split(" | ")[1:7]
    assert cells == ["50.0", "75.0", "100.0", "100.0", "0.0", "50.0"]
    assert "Seed 1: 0 flags outside windows, 0 of 2 windows missed." in lines
