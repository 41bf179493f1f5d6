"""Instant queries shared between services: one answer serves every service that asks within a
short time, and queries that differ only in label values are answered by one grouped query
(`promql_shape`).

Each read says how old an answer it accepts (`max_age`, a fraction of its sync period). The first
read of a shape after its answer has aged starts one grouped query for every service known to ask
that shape; reads arriving while it is in flight wait for it; later reads within `max_age` take
the answer as it is. A service new to a shape while a fresh answer exists runs its own query
(so 1,000 services starting one after another do not re-run the grouped query 1,000 times) and
joins the group from the next grouped query on. A grouped query Prometheus refuses is never the
user's fault: the read falls back to its own query, so the condition shows the user's own text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from adaptive_operator import logs
from adaptive_operator.adapters import workers
from adaptive_operator.adapters.prometheus import MetricError, Sample, Target, _raw_query, to_total
from adaptive_operator.adapters.promql_shape import Shape, shape_of
from adaptive_operator.adapters.telemetry import PROMETHEUS_READS

Runner = Callable[[Target, str], list[dict[str, Any]]]  # blocking: (url, query) -> result
Key = tuple[object, ...]
FORGET_AFTER_SECONDS = 600.0  # a member not read for this long leaves its group
REFUSALS = ("QueryFailed", "NotAVector")  # the grouped query's own fault, not Prometheus being down
# The counters' children, looked up once: `labels()` takes the metric's lock on every call, and
# a thousand services read several times a period.
READ_SHARED, READ_BATCH, READ_ALONE = (PROMETHEUS_READS.labels(kind)
                                       for kind in ("shared", "batch", "query"))


@dataclass(frozen=True)
class Answer:
    at: float
    rows: dict[tuple[str, ...], list[dict[str, Any]]]  # by the members' label values; () = all
    members: frozenset[tuple[str, ...]]

    def of(self, values: tuple[str, ...]) -> list[dict[str, Any]]:
        return list(self.rows.get(values, []))


EXACT: frozenset[tuple[str, ...]] = frozenset({()})


class QueryBatcher:
    """Shares instant queries between reads; `enabled=False` runs every read's own query."""

    def __init__(
        self,
        runner: Runner = _raw_query,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
        pool: Executor | None = None,  # Prometheus's threads (None: the loop's default pool)
    ) -> None:
        self.runner, self.clock, self.enabled, self.pool = runner, clock, enabled, pool
        self._members: dict[Key, dict[tuple[str, ...], float]] = {}
        self._answers: dict[Key, Answer] = {}
        self._inflight: dict[Key, tuple[frozenset[tuple[str, ...]], asyncio.Future[Answer]]] = {}
        self._swept = clock()

    def _sweep(self, now: float) -> None:
        """Drop answers nobody has asked for in a while, and members that stopped asking
        (services come and go); once a minute, not per read (a read must not cost a pass over
        every member: that made a period's reads quadratic in the services)."""
        if now - self._swept < 60.0:
            return
        self._swept = now
        for key, answer in list(self._answers.items()):
            if now - answer.at > FORGET_AFTER_SECONDS:
                del self._answers[key]
        for members in self._members.values():
            for member, seen in list(members.items()):
                if now - seen > FORGET_AFTER_SECONDS:
                    del members[member]

    async def total(self, url: Target, query: str, max_age: float) -> Sample:
        """The query's one number, as `prometheus.query_total` gives it."""
        if not self.enabled:
            READ_ALONE.inc()
            return to_total(query, await workers.on_pool(self.pool, self.runner, url, query))
        shape = shape_of(query)
        if shape is not None:
            try:
                return to_total(query, (await self._grouped(url, shape, max_age)).of(shape.values))
            except MetricError as err:
                if err.reason not in REFUSALS:
                    raise
        answer = await self._shared(("exact", url, query), url, lambda: EXACT, max_age, query)
        return to_total(query, answer.of(()))

    async def _grouped(self, url: Target, shape: Shape, max_age: float) -> Answer:
        key = ("grouped", url, shape.key)
        now = self.clock()
        self._sweep(now)
        members = self._members.setdefault(key, {})
        members[shape.values] = now
        if self._newcomer(key, shape.values, now, max_age):
            # Alone now, grouped from the next grouped query on (so services arriving one by
            # one do not re-run the grouped query each).
            alone = frozenset({shape.values})
            return await self._shared(
                ("alone", url, shape.key, shape.values), url, lambda: alone, max_age, shape
            )
        return await self._shared(
            key, url, lambda: frozenset(members), max_age, shape, wanted=shape.values
        )

    def _newcomer(self, key: Key, values: tuple[str, ...], now: float, max_age: float) -> bool:
        """Not covered by the group's answer, which is fresh or on its way."""
        fresh, flight = self._answers.get(key), self._inflight.get(key)
        if fresh is not None and now - fresh.at > max_age:
            fresh = None
        if fresh is None and flight is None:
            return False
        return not ((fresh and values in fresh.members) or (flight and values in flight[0]))

    async def _shared(
        self,
        key: Key,
        url: Target,
        group: Callable[[], frozenset[tuple[str, ...]]],
        max_age: float,
        source: Shape | str,
        wanted: tuple[str, ...] = (),
    ) -> Answer:
        """A fresh enough answer covering `wanted`: kept, in flight, or fetched now for the
        members `group()` gives (built only then: it is a pass over every member), by the
        grouped query of the `source` shape, or the `source` query as written."""
        answer = self._answers.get(key)
        if (
            answer is not None
            and self.clock() - answer.at <= max_age
            and (wanted in answer.members)
        ):
            READ_SHARED.inc()
            return answer
        flight = self._inflight.get(key)
        if flight is not None and wanted in flight[0]:
            READ_SHARED.inc()
            return await asyncio.shield(flight[1])
        members = group()
        shape = source if isinstance(source, Shape) else None
        query = shape.grouped_query(members) if shape else str(source)
        (READ_BATCH if len(members) > 1 else READ_ALONE).inc()
        task = asyncio.get_running_loop().create_task(
            self._fetch(key, url, members, query, shape), context=logs.shared())
        self._inflight[key] = (members, task)

        def landed(done: asyncio.Future[Answer]) -> None:
            if self._inflight.get(key, (None, None))[1] is done:
                del self._inflight[key]

        task.add_done_callback(landed)
        return await asyncio.shield(task)

    async def _fetch(
        self,
        key: Key,
        url: Target,
        members: frozenset[tuple[str, ...]],
        query: str,
        shape: Shape | None,
    ) -> Answer:
        at = self.clock()
        result = await workers.on_pool(self.pool, self.runner, url, query)
        rows: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in result:
            labels = (row.get("metric") or {}) if isinstance(row, dict) else {}
            values = tuple(str(labels.get(label, "")) for label in shape.labels) if shape else ()
            rows.setdefault(values, []).append(row)
        answer = Answer(at, rows, members)
        kept = self._answers.get(key)
        if kept is None or kept.at <= at:  # a slower, older query never replaces a newer answer
            self._answers[key] = answer
        return answer

