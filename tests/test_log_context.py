"""What a service's daemons log, their background warm-ups and fits included, names the
service; a query batched for several services names none of them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from adaptive_operator import logs
from adaptive_operator.adapters.query_batch import QueryBatcher
from adaptive_operator.adapters.range_batch import RangeBatcher
from adaptive_operator.handlers.warmup import WarmUps

log = logs.get(__name__)


async def test_a_warm_up_started_by_a_service_logs_its_name(
        capsys: pytest.CaptureFixture[str]) -> None:
    async def daemon() -> None:
        logs.about("shop", "web")

        async def backfill() -> None:
            log.info("history backfilled")

        await WarmUps().start(backfill)

    await asyncio.create_task(daemon())
    line = capsys.readouterr().out
    assert "history backfilled" in line and "namespace=shop" in line and "name=web" in line


async def test_the_context_shared_by_many_names_no_object() -> None:
    async def daemon() -> dict[str, Any]:
        logs.about("shop", "web")
        seen = logs.shared().run(structlog.contextvars.get_contextvars)
        assert structlog.contextvars.get_contextvars() == {"namespace": "shop", "name": "web"}
        return seen

    assert await asyncio.create_task(daemon()) == {}


def _bound_then(read: Any) -> Any:
    async def daemon() -> Any:
        logs.about("shop", "web")
        return await read()

    return daemon


async def test_a_batched_range_query_runs_without_the_first_callers_name() -> None:
    seen: list[dict[str, Any]] = []

    def prometheus(url: object, query: str, start: float, end: float, step: float) -> Any:
        seen.append(structlog.contextvars.get_contextvars())
        return [{"metric": {}, "values": [[start, "1"]]}]

    batcher = RangeBatcher(prometheus)
    await asyncio.create_task(_bound_then(
        lambda: batcher.series("http://p", "sum(x)", 1000.0, 1000.0, 15.0))())
    assert seen == [{}]


async def test_a_batched_instant_query_runs_without_the_first_callers_name() -> None:
    seen: list[dict[str, Any]] = []

    def prometheus(url: object, query: str, **_: Any) -> Any:
        seen.append(structlog.contextvars.get_contextvars())
        return [{"metric": {}, "value": [1000.0, "1"]}]

    batcher = QueryBatcher(prometheus)
    await asyncio.create_task(_bound_then(lambda: batcher.total("http://p", "sum(x)", 5.0))())
    assert seen == [{}]
