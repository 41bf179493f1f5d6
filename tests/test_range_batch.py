"""Sharing history backfills (range queries) between services that start together.

The runner answers like Prometheus from a table of per-service loads (the grouped query's
equivalence with the single ones against a real Prometheus is in e2e/test_query_sharing.py).
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import pytest

from adaptive_operator.adapters.prometheus import PrometheusError, Target
from adaptive_operator.adapters.range_batch import RangeBatcher
from adaptive_operator.domain.common.times import aligned

LOAD = {"a": 3.0, "b": 5.0, "c": 7.0}
URL = "http://prometheus"
WINDOW = (1000.0, 1030.0, 15.0)  # three rows


def samples(value: float, start: float, end: float, step: float) -> list[list[Any]]:
    count = int((end - start) / step) + 1
    return [[start + i * step, str(value + i)] for i in range(count)]


class Prometheus:
    """Answers `sum(load{service="x"})` and its grouped form; counts what it ran. Holds every
    query at `gate` until released, so reads can pile up behind the slots."""

    def __init__(self, refuse_grouped: bool = False, down: bool = False) -> None:
        self.queries: list[str] = []
        self.refuse_grouped, self.down = refuse_grouped, down
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def __call__(self, url: Target, query: str, start: float, end: float, step: float) -> Any:
        self.entered.set()
        self.gate.wait(5)
        with self.lock:
            self.queries.append(query)
        if self.down:
            raise PrometheusError("range query to http://prometheus failed: refused")
        single = re.fullmatch(r'sum\(load\{service="(\w+)"\}\)', query)
        if single:
            value = LOAD.get(single[1])
            return [] if value is None else [
                {"metric": {}, "values": samples(value, start, end, step)}]
        grouped = re.fullmatch(r'sum by \(service\) \(load\{service=~"([\w|]+)"\}\)', query)
        if grouped and not self.refuse_grouped:
            return [{"metric": {"service": s}, "values": samples(LOAD[s], start, end, step)}
                    for s in grouped[1].split("|") if s in LOAD]
        if query == "max(load)":
            return [{"metric": {}, "values": samples(9.0, start, end, step)}]
        raise PrometheusError(f"range query to {url} failed: bad_data: parse error",
                              refused=True)


def query(service: str) -> str:
    return f'sum(load{{service="{service}"}})'


async def read_all(batcher: RangeBatcher, queries: list[str],
                   window: tuple[float, float, float] = WINDOW) -> list[Any]:
    return await asyncio.gather(*(batcher.series(URL, q, *window) for q in queries),
                                return_exceptions=True)


async def settle() -> None:
    """Every ready task runs up to its first wait (asyncio runs ready tasks in order: this
    counts loop turns, no clock is involved)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def piled_up(batcher: RangeBatcher, prometheus: Prometheus,
                   queries: list[str]) -> list[Any]:
    """The first read takes the only slot and is held there; the others arrive meanwhile."""
    prometheus.gate.clear()
    first = asyncio.ensure_future(read_all(batcher, queries[:1]))
    assert await asyncio.to_thread(prometheus.entered.wait, 5)
    rest = asyncio.ensure_future(read_all(batcher, queries[1:]))
    await settle()
    prometheus.gate.set()
    return [*await first, *await rest]


async def test_reads_waiting_for_a_slot_share_one_grouped_query() -> None:
    prometheus = Prometheus()
    batcher = RangeBatcher(prometheus, concurrency=1)
    found = await piled_up(batcher, prometheus, [query("z"), query("a"), query("b"),
                                                 query("c")])
    # "z" went first, alone (its own query, no series: said as the single query says it);
    # the other three waited and shared one grouped query.
    assert isinstance(found[0], PrometheusError) and "returned 0 series" in str(found[0])
    assert prometheus.queries == [query("z"),
                                  'sum by (service) (load{service=~"a|b|c"})']
    for series, service in zip(found[1:], "abc", strict=True):
        assert series.values == [LOAD[service], LOAD[service] + 1, LOAD[service] + 2]
        assert series.start == WINDOW[0]


async def test_a_group_answers_exactly_what_each_single_query_would() -> None:
    prometheus = Prometheus()
    grouped = await piled_up(RangeBatcher(prometheus, concurrency=1), prometheus,
                             [query("a"), query("b"), query("c"), query("x")])
    alone = await read_all(RangeBatcher(Prometheus(), enabled=False),
                           [query("a"), query("b"), query("c"), query("x")])
    for mine, theirs in zip(grouped, alone, strict=True):
        if isinstance(theirs, Exception):
            assert type(mine) is type(theirs) and str(mine) == str(theirs)
        else:
            assert mine == theirs


async def test_groups_hold_at_most_the_limit() -> None:
    prometheus = Prometheus()
    await piled_up(RangeBatcher(prometheus, concurrency=1, limit=2), prometheus,
                   [query("c"), query("a"), query("b"), query("c")])
    assert prometheus.queries[1:] == ['sum by (service) (load{service=~"a|b"})', query("c")]


async def test_different_windows_are_not_shared() -> None:
    prometheus = Prometheus()
    batcher = RangeBatcher(prometheus, concurrency=1)
    prometheus.gate.clear()
    first = asyncio.ensure_future(batcher.series(URL, query("c"), *WINDOW))
    assert await asyncio.to_thread(prometheus.entered.wait, 5)
    reads = asyncio.ensure_future(asyncio.gather(
        batcher.series(URL, query("a"), *WINDOW),
        batcher.series(URL, query("b"), 985.0, 1015.0, 15.0)))
    await settle()
    prometheus.gate.set()
    await first
    a, b = await reads
    assert len(prometheus.queries) == 3 and all("=~" not in q for q in prometheus.queries)
    assert b.start == 985.0 and a.start == 1000.0


async def test_a_refused_grouped_query_falls_back_to_each_own_query() -> None:
    prometheus = Prometheus(refuse_grouped=True)
    found = await piled_up(RangeBatcher(prometheus, concurrency=1), prometheus,
                           [query("c"), query("a"), query("b")])
    assert [series.values[0] for series in found] == [7.0, 3.0, 5.0]
    assert prometheus.queries[2:] == [query("a"), query("b")] or prometheus.queries[2:] == [
        query("b"), query("a")]


async def test_prometheus_away_fails_every_read_of_the_group_once() -> None:
    prometheus = Prometheus(down=True)
    found = await piled_up(RangeBatcher(prometheus, concurrency=1), prometheus,
                           [query("c"), query("a"), query("b")])
    assert all(isinstance(err, PrometheusError) and not err.refused for err in found)
    assert len(prometheus.queries) == 2  # "c" alone, then one grouped query: no retry storm


async def test_identical_queries_that_cannot_be_grouped_share_one_answer() -> None:
    prometheus = Prometheus()
    found = await piled_up(RangeBatcher(prometheus, concurrency=1), prometheus,
                           ["max(load)", "max(load)", "max(load)"])
    assert prometheus.queries == ["max(load)", "max(load)"]
    assert all(series.values == [9.0, 10.0, 11.0] for series in found)


async def test_a_refused_query_that_cannot_be_grouped_says_its_own_error() -> None:
    prometheus = Prometheus()
    found = await read_all(RangeBatcher(prometheus), ["rate(oops"])
    assert isinstance(found[0], PrometheusError) and "parse error" in str(found[0])
    assert prometheus.queries == ["rate(oops"]


async def test_sharing_off_runs_every_read_alone() -> None:
    prometheus = Prometheus()
    await piled_up(RangeBatcher(prometheus, enabled=False, concurrency=1), prometheus,
                   [query("a"), query("b"), query("a")])
    assert sorted(prometheus.queries) == sorted([query("a"), query("b"), query("a")])


@pytest.mark.parametrize(("now", "step", "expected"), [
    (1000.0, 15.0, 990.0), (990.0, 15.0, 990.0), (1004.9, 5.0, 1000.0)])
def test_windows_align_down_to_the_step_grid(now: float, step: float, expected: float) -> None:
    assert aligned(now, step) == expected
