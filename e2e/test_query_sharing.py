"""The grouped query gives each service what its own query gives, on the real Prometheus:
instant queries (each sync's reads) and range queries (the history backfills).

Several series per service (two pods, two codes) and a few shapes of query: for each, every
service's value read through the sharing batcher equals its own query's, and a service with no
series is an empty result in both.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from adaptive_operator.adapters.prometheus import (
    MetricError,
    PrometheusError,
    Target,
    _raw_query,
    query_total,
    raw_range,
)
from adaptive_operator.adapters.query_batch import QueryBatcher
from adaptive_operator.adapters.range_batch import RangeBatcher
from adaptive_operator.domain.common.times import aligned
from metrics_source import Exporters

from conftest import Cluster
from support import prom_query, wait_until

SERVICES = ["api", "web.v2", "db-1"]
SHAPES = [
    'sum(e2e_share_load{{exporter="{feed}", svc="{svc}"}})',
    'sum(e2e_share_load{{exporter="{feed}", svc="{svc}", code!="500"}})',
    "sum(max_over_time(e2e_share_load{{exporter='{feed}',svc='{svc}',code='200'}}[1m]))",
    'sum(abs(e2e_share_load{{exporter="{feed}", svc="{svc}"}}))',
]


@pytest.fixture(scope="module")
def feed(cluster: Cluster, exporters: Exporters) -> Iterator[str]:
    name = f"e2e-share-{uuid.uuid4().hex[:6]}"
    with exporters(name) as exporter:
        for i, svc in enumerate(SERVICES):
            for pod in ("p0", "p1"):
                for code in ("200", "500"):
                    value = (i + 1) * 10 + (pod == "p1") * 3 + (code == "500") * 0.5
                    exporter.set("e2e_share_load", value, {"svc": svc, "pod": pod, "code": code})
        assert cluster.prometheus_url is not None
        url = cluster.prometheus_url
        wait_until(
            lambda: len(prom_query(url, f'e2e_share_load{{exporter="{name}"}}')) == 12,
            60,
            "Prometheus to scrape the feed",
        )
        yield name


def every_service(cluster: Cluster, feed: str, shape: str) -> tuple[str, list[str]]:
    """Prometheus' URL and the shape's query for each service, and one with no series."""
    assert cluster.prometheus_url is not None
    return cluster.prometheus_url, [shape.format(feed=feed, svc=svc)
                                    for svc in [*SERVICES, "absent"]]


@pytest.mark.parametrize("shape", SHAPES)
def test_each_service_reads_what_its_own_query_gives(
    cluster: Cluster, feed: str, shape: str
) -> None:
    url, queries = every_service(cluster, feed, shape)

    sent: list[str] = []

    def recording(where: Target, query: str) -> list[dict[str, Any]]:
        sent.append(query)
        return _raw_query(where, query)

    batcher = QueryBatcher(recording)

    async def own(query: str) -> object:
        try:
            return (await query_total(url, query)).value
        except MetricError as err:
            return err.reason

    async def shared(query: str, max_age: float) -> object:
        try:
            return (await batcher.total(url, query, max_age)).value
        except MetricError as err:
            return err.reason

    async def read_all() -> tuple[list[object], list[object]]:
        alone = [await own(q) for q in queries]
        await asyncio.gather(*(shared(q, 30.0) for q in queries))  # the group forms
        sent.clear()
        return alone, list(await asyncio.gather(*(shared(q, 0.0) for q in queries)))

    alone, together = asyncio.run(read_all())
    assert alone[-1] == "EmptyResult"
    assert all(isinstance(v, float) for v in alone[:-1])
    assert together == alone
    assert len(sent) == 1 and sent[0].startswith("sum by (")  # one grouped query served all


def scraped_window(url: str, query: str) -> tuple[float, float, float]:
    """A minute up to a step on the grid that already holds a scrape of the feed (a feed
    scraped moments ago may have no sample at or before the newest grid step yet)."""

    def window() -> tuple[float, float, float] | None:
        end = aligned(time.time(), 2.0)
        found = (end - 60.0, end, 2.0)
        return found if raw_range(url, query, *found) else None

    return wait_until(window, 30, f"a range query of {query!r} to find the feed")


@pytest.mark.parametrize("shape", SHAPES)
def test_each_service_backfills_what_its_own_range_query_gives(
    cluster: Cluster, feed: str, shape: str
) -> None:
    url, queries = every_service(cluster, feed, shape)
    window = scraped_window(url, queries[0])
    sent: list[str] = []

    def recording(where: Target, query: str, start: float, end: float, step: float) -> Any:
        sent.append(query)
        return raw_range(where, query, start, end, step)

    async def read(batcher: RangeBatcher) -> list[object]:
        async def one(query: str) -> object:
            try:
                return (await batcher.series(url, query, *window)).values
            except PrometheusError as err:
                return "no series" if "returned 0 series" in str(err) else str(err)
        return list(await asyncio.gather(*(one(q) for q in queries)))

    alone = asyncio.run(read(RangeBatcher(enabled=False)))
    together = asyncio.run(read(RangeBatcher(recording, concurrency=1)))
    assert alone[-1] == "no series" and all(isinstance(v, list) for v in alone[:-1])
    assert together == alone
    assert len(sent) == 1 and sent[0].startswith("sum by (")  # one grouped query served all
