"""The detector's operating point: which rows become flags, one row after the other.

A row exceeds when it passes the detector's gate (its score is above the training quantile,
some metric moves, it does not repeat the season) and its score beats the record: the highest
score of the `record_rows` rows before its persistence window (or their `record_quantile`), plus
`record_margin`. A flag
needs `persistence_k` exceeding rows among the last `persistence_n` and comes at least
`cooldown_rows` after the previous flag and, with `rearm_rows`, after the incident settled: a
run of `rearm_rows` rows where no metric moved (`settled`) since the flag. Without it, a level
shift that the trailing baseline takes hundreds of rows to absorb is flagged again at the end of
every cool-down, one false alarm each (issue 17).
With `rearm_rows`, a row beyond training (`beyond`) needs no cool-down once the incident before
it settled: a new incident far outside anything seen is flagged even soon after the last one.
The cool-down alone left the operator's detector blind for 100 syncs after any flag (25 minutes
at a 15-s sync): with a two-sync error blip flagged, a bad rollout 40 syncs later went unflagged
for 63 to 111 syncs, or for all 150 simulated (tests/test_healing_blind_spot.py).
The record is that of *normal* rows: the rows of an incident already flagged (the flag and its
cool-down, and until it settled) are left out of it, so one incident does not raise the bar the
next one must clear for a thousand rows. That makes a row's verdict depend on the flags before
it, hence the loop; it visits only the rows that pass the gate (and the persistence window
after them).

Pure numpy; causal: a row's verdict uses the scores and flags of rows up to it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]


class OperatingPoint(Protocol):
    @property
    def record_rows(self) -> int: ...
    @property
    def record_margin(self) -> float: ...
    @property
    def record_quantile(self) -> float: ...
    @property
    def persistence_k(self) -> int: ...
    @property
    def persistence_n(self) -> int: ...
    @property
    def cooldown_rows(self) -> int: ...
    @property
    def rearm_rows(self) -> int: ...


def record_level(normal: FloatArray, row: int, point: OperatingPoint) -> float:
    """The highest of `normal` over the `record_rows` rows before `row`'s persistence window
    (the `persistence_n - 1` rows before it), or their `record_quantile` below 1, plus the
    margin; 0 if record_rows is 0. The maximum is one row's score, which the forest's seed
    moves; a high quantile leans on several rows (benchmarks/results/nab_seed.md). Rows of
    an incident count as 0 in it."""
    if point.record_rows <= 0:
        return 0.0
    end = row - point.persistence_n + 1
    start = max(0, end - point.record_rows)
    if end <= start:
        return point.record_margin
    recent = normal[start:end]
    if point.record_quantile >= 1.0:
        return float(recent.max()) + point.record_margin
    # The order statistic at the quantile (no interpolation): a partition, not a sort.
    rank = int(np.ceil(point.record_quantile * (len(recent) - 1)))
    return float(np.partition(recent, rank)[rank]) + point.record_margin


def _rows_to_visit(candidates: BoolArray, persistence_n: int) -> IntArray:
    """The candidate rows and the `persistence_n - 1` rows after each, in order."""
    rows = np.flatnonzero(candidates)
    reach = (rows[:, None] + np.arange(persistence_n)[None, :]).ravel()
    visited: IntArray = np.unique(reach[reach < len(candidates)])
    return visited


def calm_runs(settled: BoolArray, rows: int) -> IntArray:
    """The first rows of every run of `rows` settled rows, in order (overlapping runs too);
    none with `rows` 0."""
    if rows <= 0:
        return np.zeros(0, dtype=np.intp)
    quiet = np.asarray(settled, dtype=np.int64)
    ends = np.flatnonzero(np.convolve(quiet, np.ones(rows, dtype=np.int64))[: len(quiet)] == rows)
    starts: IntArray = ends - rows + 1
    return starts


def flag_incidents(
    scores: FloatArray,
    gate: BoolArray,
    beyond: BoolArray,
    point: OperatingPoint,
    quiet_before: int = 0,
    settled: BoolArray | None = None,
) -> BoolArray:
    """Flags of the rows of `scores`: `gate` rows that beat the record of normal rows, and
    `beyond` rows whatever their score, through persistence, cool-down and re-arming (with
    re-arming, a `beyond` row waits for it alone).

    `quiet_before` is how many rows have passed since the last flag before this stretch (and
    the incident then counts as settled). `settled`: rows where no metric moved (none: every
    row), read only with `rearm_rows`.
    """
    normal = np.asarray(scores, dtype=float).copy()
    exceeds = np.zeros(len(normal), dtype=bool)
    flags = np.zeros(len(normal), dtype=bool)
    calm = calm_runs(np.ones(len(normal), dtype=bool) if settled is None else settled,
                     point.rearm_rows)
    last_flag, rearmed = -quiet_before, True
    for row in map(int, _rows_to_visit(gate | beyond, point.persistence_n)):
        if not rearmed:
            rearmed = _end_incident(normal, calm, last_flag, row, point.rearm_rows)
        exceeds[row] = bool(beyond[row]) or (
            bool(gate[row]) and scores[row] > record_level(normal, row, point)
        )
        recent = int(exceeds[max(0, row - point.persistence_n + 1) : row + 1].sum())
        if recent >= point.persistence_k and _cooled(row, last_flag, bool(beyond[row]), point) \
                and rearmed:
            flags[row] = True
            last_flag, rearmed = row, point.rearm_rows <= 0
            normal[row : row + point.cooldown_rows + 1] = 0.0
    return flags


def _cooled(row: int, last_flag: int, beyond: bool, point: OperatingPoint) -> bool:
    """Whether `row` is past the cool-down of the flag at `last_flag`: `cooldown_rows` later,
    or at once for a row beyond training when re-arming (which the caller checks) is on."""
    return row - last_flag > point.cooldown_rows or (point.rearm_rows > 0 and beyond)


def _end_incident(normal: FloatArray, calm: IntArray, flag: int, row: int, rows: int) -> bool:
    """Whether the incident flagged at `flag` settled before `row`: a run of `rows` settled
    rows began after the flag and ended before `row`. Its rows until that run, or until `row`
    while it lasts, leave the record of normal rows."""
    first = int(np.searchsorted(calm, flag, side="right"))
    settled = first < len(calm) and int(calm[first]) + rows <= row
    normal[flag : int(calm[first]) if settled else row] = 0.0
    return settled
