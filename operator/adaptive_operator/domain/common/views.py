"""A read-only view of rows held elsewhere, numbered from 0, without copying them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import overload


class RowsView(Sequence[float | None]):
    """Rows `start`, `start + 1`, ... of a source read one row at a time.

    The end is asked for at every use, so a view of a growing history grows with it. An advisor
    reads the load through such a view, so it cannot see rows past the end (the future, in a
    replay).
    """

    def __init__(
        self, row: Callable[[int], float | None], start: int, end: Callable[[], int]
    ) -> None:
        self._row = row
        self._start = start
        self._end = end

    @classmethod
    def prefix(cls, values: Sequence[float | None], length: int) -> RowsView:
        """The first `length` values."""
        return cls(values.__getitem__, 0, lambda: length)

    def __len__(self) -> int:
        return self._end() - self._start

    @overload
    def __getitem__(self, index: int) -> float | None: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[float | None]: ...

    def __getitem__(self, index: int | slice) -> float | Sequence[float | None] | None:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} is beyond the {len(self)} rows of the view")
        return self._row(self._start + index)
