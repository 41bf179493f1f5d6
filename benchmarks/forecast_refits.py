"""What one service's forecast costs at a fit, a scheduled refit and a refit that chooses the
model again, on the default history (14 days of 15 s rows, a daily season): the CPU a thousand
services spend at once when their refits fall due together (they were backfilled together).

    .venv/bin/python benchmarks/forecast_refits.py

CPU seconds (process time) of `PredictiveAdvisor.advise` as the operator calls it: the first on
the whole history, then one per sync, each a row more. Results:
benchmarks/results/forecast_refits.md.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from adaptive_operator.domain.scaling.predictive import PredictiveAdvisor  # noqa: E402

STEP = 15.0
DAY_ROWS = 5760
HISTORY_ROWS = 14 * DAY_ROWS
SYNCS = 11_600  # past the fourth refit (every half day), which chooses the model again
LOOK_AHEAD = 120.0


def load(rows: int) -> list[float]:
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    return [float(v) for v in 100 + 50 * np.sin(2 * math.pi * t / DAY_ROWS)
            + rng.normal(0, 5, rows)]


def timed_advice() -> tuple[float, list[tuple[int, bool, float]]]:
    """The first fit's CPU seconds, and (sync, light, seconds) of every advice over 10 ms."""
    values = load(HISTORY_ROWS + SYNCS)
    advisor = PredictiveAdvisor()
    history = values[:HISTORY_ROWS]
    start = time.process_time()
    advisor.advise(history, STEP, LOOK_AHEAD, 10.0)
    first = time.process_time() - start
    slow = []
    for sync in range(1, SYNCS):
        history.append(values[HISTORY_ROWS + sync])
        light = advisor.is_light(history, STEP, LOOK_AHEAD)
        start = time.process_time()
        advisor.advise(history, STEP, LOOK_AHEAD, 10.0)
        spent = time.process_time() - start
        if spent > 0.01 or not light:
            slow.append((sync, light, spent))
    return first, slow


def table(first: float, slow: list[tuple[int, bool, float]]) -> str:
    rows = [f"| first fit, on {HISTORY_ROWS:,} rows | 0 | no | {first:.3f} |"]
    rows += [f"| {sync * STEP / 3600:.1f} h later | {sync:,} | {'yes' if light else 'no'} | "
             f"{spent:.3f} |" for sync, light, spent in slow]
    head = ("`.venv/bin/python benchmarks/forecast_refits.py` (process time, one process). "
            "Every advice over 10 ms, or not light (`PredictiveAdvisor.is_light`: the operator "
            "runs those in the background, through the fit gate); every other sync's advice "
            "was under 10 ms.")
    return "\n".join(["# A forecast's fits and refits: CPU seconds per service", "", head, "",
                      "| advice | sync | light | CPU s |", "|---|---|---|---|", *rows, ""])


def main() -> int:
    text = table(*timed_advice())
    (ROOT / "benchmarks" / "results" / "forecast_refits.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
