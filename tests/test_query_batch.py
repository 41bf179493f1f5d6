"""Sharing instant queries between services: served once, grouped where sound, never wrong.

The runner here answers like Prometheus would from a table of series (the grouped query's
equivalence with the single ones against a real Prometheus is in e2e/test_query_sharing.py).
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import pytest

from adaptive_operator.adapters.prometheus import MetricError, Target
from adaptive_operator.adapters.promql_shape import Shape
from adaptive_operator.adapters.query_batch import FORGET_AFTER_SECONDS, QueryBatcher

LOAD = {"a": 3.0, "b": 5.0, "c": 7.0}
URL = "http://prometheus"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Prometheus:
    """Answers `sum(load{service="x"})` and its grouped form from LOAD; counts what it ran."""

    def __init__(self, refuse_grouped: bool = False, down: bool = False) -> None:
        self.queries: list[str] = []
        self.refuse_grouped, self.down = refuse_grouped, down
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()

    def __call__(self, url: Target, query: str) -> list[dict[str, Any]]:
        if self.gate is not None:
            self.gate.wait(5)
        with self.lock:
            self.queries.append(query)
        if self.down:
            raise MetricError("PrometheusUnreachable", "cannot reach Prometheus")
        return self.answer(query)

    def answer(self, query: str) -> list[dict[str, Any]]:
        """The query's result over LOAD, or Prometheus' refusal of a query it cannot parse."""
        if query == "sum(load)":
            return [{"metric": {}, "value": [0, str(sum(LOAD.values()))]}]
        single = re.fullmatch(r'sum\(load\{service="(\w+)"\}\)', query)
        if single:
            value = LOAD.get(single[1])
            return [] if value is None else [{"metric": {}, "value": [0, str(value)]}]
        grouped = re.fullmatch(r'sum by \(service\) \(load\{service=~"([\w|]+)"\}\)', query)
        if grouped and not self.refuse_grouped:
            return [
                {"metric": {"service": s}, "value": [0, str(LOAD[s])]}
                for s in grouped[1].split("|")
                if s in LOAD
            ]
        raise MetricError("QueryFailed", f"Prometheus refused the query {query!r}: parse error")


def query(service: str) -> str:
    return f'sum(load{{service="{service}"}})'


async def read_all(batcher: QueryBatcher, services: list[str]) -> list[float]:
    samples = await asyncio.gather(*(batcher.total(URL, query(s), 5.0) for s in services))
    return [s.value for s in samples]


async def test_services_known_to_the_group_share_one_query_per_period() -> None:
    prometheus, clock = Prometheus(), FakeClock()
    batcher = QueryBatcher(prometheus, clock)
    assert await read_all(batcher, ["a", "b", "c"]) == [3.0, 5.0, 7.0]  # first sight: grouped
    clock.now += 10  # the answer aged: the next read asks for the whole group
    prometheus.queries.clear()
    assert await read_all(batcher, ["c", "a", "b"]) == [7.0, 3.0, 5.0]
    assert prometheus.queries == ['sum by (service) (load{service=~"a|b|c"})']


async def test_the_grouped_query_is_built_once_per_answer_not_per_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Building it is a pass over every member: once per read made a period's reads quadratic.
    built: list[int] = []
    original = Shape.grouped_query

    def counted(self: Shape, members: Any) -> str:
        built.append(len(members))
        return original(self, members)

    monkeypatch.setattr(Shape, "grouped_query", counted)
    clock = FakeClock()
    batcher = QueryBatcher(Prometheus(), clock)
    await read_all(batcher, ["a", "b", "c"])
    clock.now += 10
    built.clear()
    await read_all(batcher, ["c", "a", "b", "a", "b"])
    assert built == [3]


async def test_reads_while_the_grouped_query_is_in_flight_wait_for_it() -> None:
    prometheus, clock = Prometheus(), FakeClock()
    batcher = QueryBatcher(prometheus, clock)
    await read_all(batcher, ["a", "b"])
    prometheus.queries.clear()
    clock.now += 10  # the answer aged
    prometheus.gate = threading.Event()
    first = asyncio.ensure_future(batcher.total(URL, query("a"), 5.0))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(batcher.total(URL, query("b"), 5.0))
    await asyncio.sleep(0.05)
    prometheus.gate.set()
    assert ((await first).value, (await second).value) == (3.0, 5.0)
    assert len(prometheus.queries) == 1


async def test_a_newcomer_to_a_fresh_group_runs_alone_then_joins() -> None:
    prometheus, clock = Prometheus(), FakeClock()
    batcher = QueryBatcher(prometheus, clock)
    await read_all(batcher, ["a", "b"])
    prometheus.queries.clear()
    assert await read_all(batcher, ["c"]) == [7.0]
    assert prometheus.queries == ['sum by (service) (load{service=~"c"})']
    clock.now += 10
    prometheus.queries.clear()
    assert await read_all(batcher, ["a", "b", "c"]) == [3.0, 5.0, 7.0]
    assert prometheus.queries == ['sum by (service) (load{service=~"a|b|c"})']


async def test_a_service_not_read_for_long_leaves_the_group() -> None:
    prometheus, clock = Prometheus(), FakeClock()
    batcher = QueryBatcher(prometheus, clock)
    await read_all(batcher, ["a", "b", "c"])
    clock.now += FORGET_AFTER_SECONDS + 61  # also sweeps the old answers
    prometheus.queries.clear()
    await read_all(batcher, ["a"])
    assert prometheus.queries == ['sum by (service) (load{service=~"a"})']


async def test_a_value_with_no_series_is_an_empty_result_as_alone() -> None:
    batcher = QueryBatcher(Prometheus(), FakeClock())
    with pytest.raises(MetricError) as err:
        await asyncio.gather(
            batcher.total(URL, query("a"), 5.0), batcher.total(URL, query("zz"), 5.0)
        )
    assert err.value.reason == "EmptyResult"
    assert query("zz") in err.value.message


async def test_a_refused_grouped_query_falls_back_to_the_users_own_query() -> None:
    prometheus = Prometheus(refuse_grouped=True)
    batcher = QueryBatcher(prometheus, FakeClock())
    assert (await batcher.total(URL, query("b"), 5.0)).value == 5.0
    assert prometheus.queries[-1] == query("b")


async def test_prometheus_down_is_reported_not_hidden_by_a_fallback() -> None:
    prometheus = Prometheus(down=True)
    batcher = QueryBatcher(prometheus, FakeClock())
    with pytest.raises(MetricError) as err:
        await batcher.total(URL, query("a"), 5.0)
    assert err.value.reason == "PrometheusUnreachable"
    assert len(prometheus.queries) == 1


async def test_identical_queries_that_cannot_be_grouped_are_shared() -> None:
    prometheus, clock = Prometheus(), FakeClock()
    batcher = QueryBatcher(prometheus, clock)
    total = "sum(load)"  # no matcher to group by
    assert [(await batcher.total(URL, total, 5.0)).value for _ in range(3)] == [15.0] * 3
    assert prometheus.queries == [total]


async def test_errors_are_not_kept() -> None:
    prometheus = Prometheus()
    batcher = QueryBatcher(prometheus, FakeClock())
    for _ in range(2):
        with pytest.raises(MetricError):
            await batcher.total(URL, "sum(nonsense)", 5.0)
    assert prometheus.queries == ["sum(nonsense)"] * 2


async def test_sharing_off_runs_every_reads_own_query() -> None:
    prometheus = Prometheus()
    batcher = QueryBatcher(prometheus, FakeClock(), enabled=False)
    assert [(await batcher.total(URL, query("a"), 5.0)).value for _ in range(2)] == [3.0, 3.0]
    assert prometheus.queries == [query("a")] * 2
