"""Range queries (history backfills) shared between services that start together.

When the operator starts, every service backfills its history: the forecaster's load and the
healing watcher's health metrics, thousands of range queries for 1,000 services. At most
RANGE_CONCURRENCY run at a time (so they do not stampede Prometheus); the reads waiting for a
slot with the same window and the same query shape (`promql_shape`: queries that differ only
in label values) join one group, and the group runs one grouped query when it gets its slot:

    sum by (svc) (rate(requests_total{svc=~"a|b|c"}[1m]))

whose series labelled svc="a" is exactly the series of `sum(rate(requests_total{svc="a"}[1m]))`.
A group has at most GROUP_LIMIT members (Prometheus' samples-per-query limit and the answer's
size). Windows are shared only when they are equal: callers align them to their step grid
(`domain.common.times.grid_window`), so services starting within one step of each other
share. A grouped query that Prometheus refuses is not the user's fault: each member then runs
its own query, so an error names the user's own text. A read alone in its group runs its own
query.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from adaptive_operator import logs
from adaptive_operator.adapters import workers
from adaptive_operator.adapters.prometheus import (
    PrometheusError,
    RangeSeries,
    Target,
    on_grid,
    raw_range,
    single_series,
)
from adaptive_operator.adapters.promql_shape import Shape, shape_of

# Range queries in flight at once, across all services.
RANGE_CONCURRENCY = 4
# Members of one grouped query: 50 series of a day at 15 s steps is 288,000 points, and
# a [1m] rate over 2 s scrapes loads 30 samples per point (Prometheus refuses a query over
# 50 million by default).
GROUP_LIMIT = 50

Runner = Callable[[Target, str, float, float, float], Any]  # blocking: parsed JSON answer
Key = tuple[object, ...]
Rows = dict[tuple[str, ...], list[Any]]  # series by the members' label values


@dataclass
class _Group:
    url: Target
    query: str  # the first member's own query, run when it stays alone
    shape: Shape | None
    window: tuple[float, float, float]
    members: set[tuple[str, ...]] = field(default_factory=set)
    task: asyncio.Future[Rows] | None = None

    def text(self) -> str:
        if self.shape is not None and len(self.members) > 1:
            return self.shape.grouped_query(self.members)
        return self.query


class RangeBatcher:
    """Shares range queries between reads; `enabled=False` runs every read's own query."""

    def __init__(self, runner: Runner = raw_range, enabled: bool = True,
                 concurrency: int = RANGE_CONCURRENCY, limit: int = GROUP_LIMIT,
                 pool: Executor | None = None) -> None:  # None: the loop's default pool
        self.runner, self.enabled, self.pool = runner, enabled, pool
        self.concurrency, self.limit = concurrency, limit
        self._open: dict[Key, _Group] = {}
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary())

    def _slot(self) -> asyncio.Semaphore:
        return self._slots.setdefault(asyncio.get_running_loop(),
                                      asyncio.Semaphore(self.concurrency))

    async def series(self, url: Target, query: str, start: float, end: float,
                     step: float) -> RangeSeries:
        """The query's one series on the grid start..end (as `prometheus.query_range`)."""
        shape = shape_of(query) if self.enabled else None
        if not self.enabled:
            rows: list[Any] = await self._own(url, query, start, end, step)
        else:
            rows = await self._shared(url, query, shape, (start, end, step))
        return on_grid(single_series(rows, query), start, end, step)

    async def _shared(self, url: Target, query: str, shape: Shape | None,
                      window: tuple[float, float, float]) -> list[Any]:
        values = shape.values if shape else ()
        group = self._join(url, query, shape, window, values)
        assert group.task is not None
        try:
            answer = await asyncio.shield(group.task)
        except PrometheusError as err:
            if not (err.refused and group.text() != query):
                raise
            return await self._own(url, query, *window)  # the user's own text, own error
        return answer.get(values, [])

    def _join(self, url: Target, query: str, shape: Shape | None,
              window: tuple[float, float, float], values: tuple[str, ...]) -> _Group:
        """The open group this read belongs to (a new one if none, or it is full)."""
        key: Key = (url, shape.key if shape else query, *window)
        group = self._open.get(key)
        if group is None or len(group.members) >= self.limit or (
                shape is None and group.query != query):
            group = _Group(url, query, shape, window)
            self._open[key] = group
            group.task = asyncio.get_running_loop().create_task(self._run(key, group),
                                                               context=logs.shared())
        group.members.add(values)
        return group

    async def _run(self, key: Key, group: _Group) -> Rows:
        async with self._slot():
            if self._open.get(key) is group:
                del self._open[key]  # closed: reads from now on form the next group
            text = group.text()
            result = await workers.on_pool(self.pool, self.runner, group.url, text,
                                           *group.window)
        if text == group.query:
            return {next(iter(group.members)): result} if len(group.members) == 1 else {}
        return _by_member(result, group.shape)

    async def _own(self, url: Target, query: str, start: float, end: float,
                   step: float) -> list[Any]:
        async with self._slot():
            result: list[Any] = await workers.on_pool(self.pool, self.runner, url, query,
                                                      start, end, step)
        return result


def _by_member(result: Any, shape: Shape | None) -> Rows:
    """A grouped answer's series by their label values; not a list: nobody's (each member
    then finds no series and says so with its own query)."""
    rows: Rows = {}
    if shape is None or not isinstance(result, list):
        return rows
    for row in result:
        labels = (row.get("metric") or {}) if isinstance(row, dict) else {}
        values = tuple(str(labels.get(label, "")) for label in shape.labels)
        rows.setdefault(values, []).append(row)
    return rows
