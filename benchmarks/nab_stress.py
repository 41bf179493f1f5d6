"""Synthetic stress series for the NAB cross-validation: the failures a live metric shows
that NAB's files have few of (level shifts, trend changes, missing data, counter resets).

Each series is two weeks of 5-minute rows (4,032, like most NAB files): a daily cycle plus
noise, drawn from a fixed seed, with one event (or none) after NAB's probation. Its anomaly
window is NAB's: 10% of the rows, centred on the event's first row. Nothing here is tuned to the
detector: the events are sized in units of the series' own noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

ROWS = 4032
DAY = 288  # 5-minute rows per day
NOISE = 1.0
AMPLITUDE = 8.0  # the daily cycle's half-height, in units of the noise


@dataclass(frozen=True)
class StressSeries:
    name: str
    values: FloatArray
    windows: list[tuple[int, int]]


def _base(rng: np.random.Generator) -> FloatArray:
    rows = np.arange(ROWS)
    phase = rng.uniform(0, 2 * np.pi)
    daily = AMPLITUDE * np.sin(2 * np.pi * rows / DAY + phase)
    return 50.0 + daily + rng.normal(0.0, NOISE, ROWS)


def _level_shift(x: FloatArray, at: int, rng: np.random.Generator) -> FloatArray:
    # A new release doubling a baseline's cost: a step of 6 noise sigmas that stays.
    x[at:] += rng.choice([-1.0, 1.0]) * 6.0 * NOISE
    return x


def _trend_change(x: FloatArray, at: int, rng: np.random.Generator) -> FloatArray:
    # A leak: from `at` on, a climb of 10 noise sigmas a day.
    x[at:] += 10.0 * NOISE * np.arange(ROWS - at) / DAY
    return x


def _missing_zero(x: FloatArray, at: int, rng: np.random.Generator) -> FloatArray:
    # An exporter down for 2 hours, its gap read as zeros.
    x[at : at + 24] = 0.0
    return x


def _missing_stale(x: FloatArray, at: int, rng: np.random.Generator) -> FloatArray:
    # A stuck scrape: the last value repeated for 8 hours.
    x[at : at + 96] = x[at - 1]
    return x


def _counter_reset(x: FloatArray, at: int, rng: np.random.Generator) -> FloatArray:
    # A cumulative counter (the daily rate summed) that restarts from zero at `at`.
    counter = np.cumsum(np.maximum(x, 0.0)) / DAY
    counter[at:] -= counter[at - 1]
    return counter


def _volatility(x: FloatArray, at: int, rng: np.random.Generator) -> FloatArray:
    # A flapping dependency: the noise four times larger from `at` on.
    x[at:] += rng.normal(0.0, 3.0 * NOISE, ROWS - at)
    return x


def _none(x: FloatArray, at: int, rng: np.random.Generator) -> FloatArray:
    return x


EVENTS: dict[str, Callable[[FloatArray, int, np.random.Generator], FloatArray]] = {
    "level_shift": _level_shift,
    "trend_change": _trend_change,
    "missing_zero": _missing_zero,
    "missing_stale": _missing_stale,
    "counter_reset": _counter_reset,
    "volatility": _volatility,
    "no_event": _none,
}


def nab_window(at: int, rows: int = ROWS) -> tuple[int, int]:
    """NAB's window of one anomaly: 10% of the rows, centred on its first row."""
    half = rows // 20
    return max(0, at - half), min(rows - 1, at + half)


def stress_series(seed: int = 2026) -> list[StressSeries]:
    """One series per kind of event, each from its own fixed seed."""
    found = []
    for offset, (kind, inject) in enumerate(EVENTS.items()):
        rng = np.random.default_rng(seed + offset)
        at = int(rng.integers(2 * ROWS // 5, 4 * ROWS // 5))
        values = inject(_base(rng), at, rng)
        windows = [] if kind == "no_event" else [nab_window(at)]
        found.append(StressSeries(f"synthetic/{kind}.csv", values, windows))
    return found
