"""Times as the API server and the trace files write them, to and from seconds since the epoch;
the sync grid that history windows are cut on."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def timestamp(now: float) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes times."""
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    """Seconds since the epoch from epoch seconds or ISO 8601 (without a zone: UTC).

    Raises ValueError for anything else.
    """
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def aligned(now: float, step: float) -> float:
    """`now` rounded down to the step grid: the end of a window others can share."""
    return math.floor(now / step) * step


def grid_window(now: float, step: float, rows: int) -> tuple[float, float]:
    """The first and last of the `rows` grid points up to `now`: on the step grid, so services
    starting together ask for the same window (and share its range queries)."""
    end = aligned(now, step)
    return end - (rows - 1) * step, end
