"""The one shape of a forecast advisor: a replica floor from the history seen so far.

The replay, the coupled replay and the operator's own advisors all take the same four
arguments; this is that signature, written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class ForecastAdvisor(Protocol):
    """The predictive part: a replica floor from the history seen so far, or None; and, after
    that advice, the ceiling the service may scale down to on the forecast alone, or None."""

    def advise(
        self,
        history: Sequence[float | None],
        interval_seconds: float,
        lookahead_seconds: float,
        target_per_replica: float,
    ) -> int | None: ...

    def ceiling(self) -> int | None: ...


class PathAdvisor(ForecastAdvisor, Protocol):
    """An advisor that also says its median forecast path (what a downstream couples to), and
    the rise over its last value its persistence band's floor provisions for (None when its
    floor is not that band's)."""

    def median_path(self) -> tuple[float, ...]: ...

    def persistence_rise(self) -> float | None: ...
