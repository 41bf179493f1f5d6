"""The scaling benchmark's data: the load traces of ../shared/data/load (never copied into the
repository) and synthetic stress cases made here with a fixed seed.

Every trace is split into contiguous segments, the groups of the cross-validation: a replay always
runs over the whole trace (causal: row i is decided from rows 0..i), and a segment's figures are
the sums over its rows, so any set of segments can be scored by adding them up.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptive_operator.commands.replay import read_trace

ROOT = Path(__file__).resolve().parent.parent
# The data directory: $ADAPTIVE_DATA, else ../shared/data next to the repository.
DATA = Path(os.environ.get("ADAPTIVE_DATA", ROOT / ".." / "shared" / "data")) / "load"
STARTUP_SECONDS = 120.0
REPLICAS_AT_MEDIAN = 20  # target per replica = median load / 20 (as benchmarks/load_traces.py)
SEGMENTS = 4
SYNTHETIC_DAYS = 14
FIVE_MINUTES = 300.0


@dataclass(frozen=True)
class Trace:
    name: str
    values: list[float | None]
    interval: float
    seasonal: bool  # a daily season the product is meant to exploit (the target applies)
    synthetic: bool = False

    @property
    def target(self) -> float:
        known = [v for v in self.values if v is not None]
        return statistics.median(known) / REPLICAS_AT_MEDIAN

    def segments(self) -> list[range]:
        n = len(self.values)
        edges = [round(k * n / SEGMENTS) for k in range(SEGMENTS + 1)]
        return [range(a, b) for a, b in itertools.pairwise(edges)]


def real_traces() -> list[Trace]:
    if not DATA.is_dir():
        raise SystemExit(f"no load traces at {DATA} (set ADAPTIVE_DATA to the data folder)")
    out = []
    for path in sorted(DATA.glob("*.csv")):
        trace = read_trace(path)
        seasonal = trace.interval_seconds >= 60  # the two 5-minute traces; the 1 s one is bursty
        out.append(Trace(_short(path.stem), trace.values, trace.interval_seconds, seasonal))
    return out


def _short(stem: str) -> str:
    return "_".join(stem.split("_")[:2])


def _base(rng: np.random.Generator, rows: int) -> np.ndarray:
    """A daily season with a weekday/weekend swing, noise and rare bursts, around 1,000."""
    t = np.arange(rows) * FIVE_MINUTES / 86400.0
    daily = 1000 + 450 * np.sin(2 * math.pi * (t - 0.3)) + 120 * np.sin(4 * math.pi * t)
    weekend = np.where((t.astype(int) % 7) >= 5, 0.8, 1.0)
    bursts = np.where(rng.random(rows) < 0.003, rng.uniform(200, 500, rows), 0.0)
    base: np.ndarray = np.maximum(daily * weekend + rng.normal(0, 35, rows) + bursts, 1.0)
    return base


def synthetic_traces(seed: int = 17) -> list[Trace]:
    """Stress cases on one seasonal base: a level shift, a trend change, missing data, counter
    resets (a `rate()` over a restarted counter collapses for a row)."""
    rng = np.random.default_rng(seed)
    rows = SYNTHETIC_DAYS * 288
    day = np.arange(rows) / 288.0
    shift = _base(rng, rows) * np.where(day >= 9, 1.6, 1.0)
    trend = _base(rng, rows) * (1 + np.clip(day - 7, 0, None) * 0.06)
    gaps = _base(rng, rows)
    missing = (rng.random(rows) < 0.03) | ((day >= 10) & (day < 10.25))
    resets = _base(rng, rows)
    resets[rng.choice(np.arange(288 * 3, rows), 8, replace=False)] *= 0.05
    cases = {"synthetic_level_shift": shift, "synthetic_trend_change": trend,
             "synthetic_missing_data": np.where(missing, np.nan, gaps),
             "synthetic_counter_resets": resets}
    return [Trace(name, [None if not np.isfinite(v) else round(float(v), 3) for v in y],
                  FIVE_MINUTES, True, True) for name, y in cases.items()]


def all_traces() -> list[Trace]:
    return real_traces() + synthetic_traces()
