"""Small synthetic coupled traces for the coupling tests (no data files needed)."""

from __future__ import annotations

import numpy as np


def bursty(rows: int, seed: int) -> list[float | None]:
    """A load with bursts no season predicts: a random walk plus square pulses."""
    rng = np.random.default_rng(seed)
    walk = 100 + np.cumsum(rng.normal(0, 2, rows))
    pulses = np.where((np.arange(rows) // 17) % 5 == 0, 60.0, 0.0)
    return [float(v) for v in np.maximum(walk + pulses, 1.0)]


def follower(up: list[float | None], ratio: float, lag: int, noise: float,
             seed: int) -> list[float | None]:
    rng = np.random.default_rng(seed)
    out: list[float | None] = []
    for t in range(len(up)):
        source = up[max(0, t - lag)]
        assert source is not None
        out.append(ratio * source * (1 + rng.normal(0, noise)))
    return out
