"""A metric's history on a fixed time grid, bounded in memory, as the predictive advisor reads it.

The operator samples each metric once per sync; the forecaster needs evenly spaced rows. So the
history is a grid `origin + k * step` (set by the backfill's range query, continued by live
readings): a reading lands on the nearest row, a sync that came late leaves the rows it skipped
empty (None), and one that came early (the row is already filled) is dropped, never overwritten,
because the advisor has already consumed that row.

Only the last `capacity` rows are kept (8 bytes each, in a ring buffer), but rows keep their
absolute numbers: the advisor reads `history[seen:]` and checks `history[seen - 1]` to know the
history continues what it saw. A view from a `base` row presents rows base.. as 0.. to an advisor
started at `base`; rows that fell out of the ring raise IndexError (a view is rebased to the
oldest kept row whenever a new advisor is started).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from adaptive_operator.domain.common.views import RowsView

# Prometheus refuses a range query of more than 11,000 points per series.
MAX_POINTS_PER_QUERY = 11_000


def chunk_ranges(
    start: float, end: float, step: float, max_points: int = MAX_POINTS_PER_QUERY
) -> list[tuple[float, float]]:
    """(start, end) of consecutive range queries covering the grid start, start + step, ... <= end,
    each with at most `max_points` points and no point twice."""
    if step <= 0 or max_points < 1:
        raise ValueError("step and max_points must be positive")
    count = math.floor((end - start) / step + 1e-9) + 1
    ranges = []
    for first in range(0, max(count, 0), max_points):
        last = min(first + max_points, count) - 1
        ranges.append((start + first * step, start + last * step))
    return ranges


FIRST_ROWS = 1024


class MetricHistory:
    """The last `capacity` rows of one metric on the grid `origin + k * step`."""

    def __init__(self, origin: float, step: float, capacity: int) -> None:
        if step <= 0 or capacity < 1:
            raise ValueError("step and capacity must be positive")
        self.origin = origin
        self.step = step
        self.capacity = capacity
        # Grown as rows arrive, never allocated up front by the spec's history length.
        self._ring = np.full(min(capacity, FIRST_ROWS), np.nan)
        self.total = 0  # rows ever recorded; row k is at origin + k * step

    @classmethod
    def backfilled(
        cls, origin: float, step: float, capacity: int, values: Iterable[float | None]
    ) -> MetricHistory:
        history = cls(origin, step, capacity)
        for value in values:
            history.append(value)
        return history

    @property
    def kept(self) -> int:
        return min(self.total, self.capacity)

    @property
    def first_kept(self) -> int:
        return self.total - self.kept

    def append(self, value: float | None) -> None:
        """The next row; a value that is not a finite number is a gap, never a load."""
        usable = value is not None and math.isfinite(value)
        if self.total == len(self._ring) < self.capacity:
            grown = min(2 * len(self._ring), self.capacity) - len(self._ring)
            self._ring = np.concatenate([self._ring, np.full(grown, np.nan)])
        self._ring[self.total % self.capacity] = float(value) if usable else math.nan  # type: ignore[arg-type]
        self.total += 1

    def row_at(self, now: float) -> int:
        """The grid row nearest to `now`."""
        return round((now - self.origin) / self.step)

    def record(self, now: float, value: float | None) -> int:
        """Place a reading taken at `now`; returns how many rows were added (0: too early)."""
        row = self.row_at(now)
        if row < self.total:
            return 0
        added = row - self.total + 1
        for _ in range(added - 1):
            self.append(None)
        self.append(value)
        return added

    def frozen(self) -> MetricHistory:
        """A copy as it is now, with a ring of its own: what a fit on a worker thread reads
        while the syncs go on appending to this one (a view of this one would move under it)."""
        copy = MetricHistory(self.origin, self.step, self.capacity)
        copy._ring, copy.total = self._ring.copy(), self.total
        return copy

    def value(self, row: int) -> float | None:
        if not self.first_kept <= row < self.total:
            raise IndexError(f"row {row} is not kept (rows {self.first_kept}..{self.total - 1})")
        found = float(self._ring[row % self.capacity])
        return None if math.isnan(found) else found

    def view(self, base: int) -> RowsView:
        """Rows base.. numbered from 0; rows that fell out of the ring raise IndexError."""
        return RowsView(self.value, base, lambda: self.total)

    def nbytes(self) -> int:
        return int(self._ring.nbytes)


def joined(origin: float, step: float, capacity: int,
           answers: Iterable[tuple[Sequence[float | None], Mapping[str, int]]],
           ) -> tuple[MetricHistory, Counter[str]]:
    """The history from the consecutive answers of a backfill's range queries (their values,
    and the samples each left out by why), and what they left out in all."""
    values: list[float | None] = []
    ignored: Counter[str] = Counter()
    for found, left_out in answers:
        values.extend(found)
        ignored.update(left_out)
    return MetricHistory.backfilled(origin, step, capacity, values), ignored


def capacity_rows(history_seconds: float, step: float) -> int:
    """Rows that cover `history_seconds` at `step` (the advisor's own window is the same)."""
    return max(1, math.ceil(history_seconds / step))


def aligned_view(history: MetricHistory, shift: int, length: int) -> RowsView:
    """Rows of `history` numbered as another history's rows (`shift` rows apart on the same
    grid), `length` long; a row not kept (or not yet read) is None, a gap."""

    def row(index: int) -> float | None:
        kept = history.first_kept <= index < history.total
        return history.value(index) if kept else None

    return RowsView(row, shift, lambda: shift + length)


def grid_shift(history: MetricHistory, other: MetricHistory) -> int:
    """Rows from `history`'s numbering to `other`'s, for the same time (same step)."""
    return round((history.origin - other.origin) / history.step)
