"""The operator's worker threads say how long calls waited for a thread and how long they ran."""

from __future__ import annotations

import asyncio
import functools

import pytest

from adaptive_operator.adapters.telemetry import WORKER_QUEUE_SECONDS, WORKER_RUN_SECONDS
from adaptive_operator.adapters.workers import FairExecutor, call_name, on_pool


def observed(histogram: object, **labels: str) -> float:
    """The calls `histogram` counted, over every series whose labels include `labels`."""
    total = 0.0
    for metric in histogram.collect():  # type: ignore[attr-defined]
        for sample in metric.samples:
            if sample.name.endswith("_count") and labels.items() <= sample.labels.items():
                total += float(sample.value)
    return total


def test_every_call_is_timed_even_one_that_fails() -> None:
    queued, ran = observed(WORKER_QUEUE_SECONDS), observed(WORKER_RUN_SECONDS)
    with FairExecutor(1, "timed") as pool:
        assert pool.submit(pow, 2, exp=5).result() == 32
        with pytest.raises(ZeroDivisionError):
            pool.submit(divmod, 1, 0).result()
    assert observed(WORKER_QUEUE_SECONDS) == queued + 2
    assert observed(WORKER_RUN_SECONDS) == ran + 2


def _named_work() -> int:
    return 7


def test_each_call_is_counted_under_its_pool_and_the_function_it_ran() -> None:
    before = observed(WORKER_RUN_SECONDS, pool="named", call="_named_work")
    others = observed(WORKER_RUN_SECONDS, pool="named", call="pow")

    async def wrapped() -> list[int]:  # the loop shuts its default pool down as it closes
        asyncio.get_running_loop().set_default_executor(pool)
        return [await asyncio.to_thread(functools.partial(_named_work)),
                await on_pool(pool, _named_work)]

    with FairExecutor(1, "named") as pool:
        assert pool.submit(_named_work).result() == 7
        assert asyncio.run(wrapped()) == [7, 7]
    assert observed(WORKER_RUN_SECONDS, pool="named", call="_named_work") == before + 3
    assert observed(WORKER_RUN_SECONDS, pool="named", call="pow") == others


def test_a_call_without_a_name_is_named_by_its_type() -> None:
    class Callable:
        def __call__(self) -> None: ...

    assert call_name(Callable()) == "Callable"
    assert call_name(functools.partial(divmod, 1)) == "divmod"
