"""Worker threads are shared fairly between namespaces, Prometheus has its own, and /healthz fails
when the event loop or a pool is stuck."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from adaptive_operator.adapters import health, workers
from adaptive_operator.adapters.prometheus import Target
from adaptive_operator.adapters.query_batch import QueryBatcher
from adaptive_operator.adapters.range_batch import RangeBatcher


@pytest.fixture
def pool() -> Iterator[workers.FairExecutor]:
    executor = workers.FairExecutor(1, "test")
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


async def _call(tenant: str, fn: object, *args: object) -> None:
    workers.TENANT.set(tenant)
    await asyncio.to_thread(fn, *args)  # type: ignore[arg-type]


async def test_a_noisy_namespace_cannot_starve_a_quiet_one(pool: workers.FairExecutor) -> None:
    """One thread, held by a namespace with 20 calls queued behind it: another namespace's call
    runs next, not after the 20 (as it would in a plain FIFO pool)."""
    asyncio.get_running_loop().set_default_executor(pool)
    release = threading.Event()
    order: list[str] = []
    blocker = asyncio.create_task(_call("noisy", release.wait))
    await asyncio.sleep(0.05)
    noisy = [asyncio.create_task(_call("noisy", order.append, f"noisy-{i}")) for i in range(20)]
    await asyncio.sleep(0.05)
    quiet = asyncio.create_task(_call("quiet", order.append, "quiet"))
    await asyncio.sleep(0.05)  # every call is queued behind the blocker by now
    assert order == []
    release.set()
    await asyncio.gather(blocker, quiet, *noisy)
    assert order.index("quiet") <= 1


async def test_prometheus_calls_run_while_every_worker_is_busy(pool: workers.FairExecutor) -> None:
    asyncio.get_running_loop().set_default_executor(pool)
    release = threading.Event()
    blocked = asyncio.create_task(asyncio.to_thread(release.wait))
    await asyncio.sleep(0.05)
    prometheus = workers.prometheus_pool()
    try:
        assert await asyncio.wait_for(workers.on_pool(prometheus, sum, [1, 2]), timeout=30) == 3
    finally:
        release.set()
        await blocked
        prometheus.shutdown(wait=False)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_pool_whose_threads_all_hang_is_stuck() -> None:
    clock, release = Clock(), threading.Event()
    executor = workers.FairExecutor(1, "stuck", clock=clock)
    try:
        executor.submit(release.wait)
        waiting = executor.submit(int, "1")
        assert not executor.stuck(120)
        clock.now += 121
        assert executor.stuck(120)
        release.set()
        assert waiting.result(timeout=30) == 1
        assert not executor.stuck(120)  # it finished a call just now
    finally:
        release.set()
        executor.shutdown()


def test_an_idle_pool_is_not_stuck() -> None:
    clock = Clock()
    executor = workers.FairExecutor(1, "idle", clock=clock)
    clock.now += 10_000
    assert not executor.stuck(120)
    executor.shutdown()


async def test_the_loop_heartbeat_stops_when_the_loop_does() -> None:
    clock = Clock()
    heartbeat = workers.LoopHeartbeat(clock)
    beating = asyncio.create_task(heartbeat.run(period=0.01))
    clock.now += 500
    await asyncio.sleep(0.05)  # the loop runs: it beats at the new time
    assert not heartbeat.stuck(120)
    beating.cancel()
    clock.now += 121  # nothing beats any more, as when a handler blocks the loop
    assert heartbeat.stuck(120)


def _get(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_healthz_fails_while_a_check_says_stuck() -> None:
    server = health.serve(0, "127.0.0.1")
    port = server.server_address[1]
    stuck = [False]
    health.watch("test", lambda: "no beat" if stuck[0] else None)
    try:
        assert _get(port)[0] == 200
        stuck[0] = True
        status, body = _get(port)
        assert status == 503 and body["stuck"] == {"test": "no beat"}
    finally:
        health.CHECKS.pop("test")
        server.shutdown()


async def test_prometheus_reads_run_on_the_pool_they_were_given() -> None:
    pool, threads = workers.FairExecutor(1, "given"), []

    def runner(url: Target, query: str, *window: float) -> list[dict[str, Any]]:
        threads.append(threading.current_thread().name)
        return [{"metric": {}, "value": [0, "1"], "values": [[0, "1"]]}]

    try:
        await QueryBatcher(runner, pool=pool).total("http://p", "up", 0.0)
        await QueryBatcher(runner, enabled=False, pool=pool).total("http://p", "up", 0.0)
        await RangeBatcher(runner, pool=pool).series("http://p", "up", 0.0, 60.0, 60.0)
        await RangeBatcher(runner, enabled=False, pool=pool).series("http://p", "up", 0.0, 60.0,
                                                                    60.0)
    finally:
        pool.shutdown(wait=False)
    assert threads == ["given-0"] * 4
