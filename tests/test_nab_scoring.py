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
