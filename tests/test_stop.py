"""A SIGTERM ends the process promptly, at any scale: at kopf's cleanup the heartbeat ends and the
worker calls still queued are dropped, while those already running (a status write in flight)
finish; then the process ends without the interpreter's teardown, its logs flushed."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import kopf
import pytest

from adaptive_operator.adapters import health, workers
from adaptive_operator.commands import run as run_command
from adaptive_operator.handlers import settings
from adaptive_operator.handlers.runtime import Runtime

from fakes import NoShards

OPERATOR = Path(__file__).resolve().parent.parent / "operator"

WRITTEN = "status written"
# kopf types a decorated handler as its ActivityFn (every keyword kopf passes, required); the
# handlers themselves take the memo alone.
Activity = Callable[..., Awaitable[None]]
start_up = cast(Activity, settings.fair_thread_pool)
clean_up = cast(Activity, settings.stop_workers)


class Blockers:
    """Calls that hold every thread of a pool until released, each known to be running."""

    def __init__(self, threads: int) -> None:
        self.running = threading.Barrier(threads + 1)
        self.release = threading.Event()

    def write(self) -> str:
        self.running.wait(timeout=30)
        self.release.wait(timeout=30)
        return WRITTEN

    def wait_running(self) -> None:
        self.running.wait(timeout=30)


async def operator_lifetime(memo: kopf.Memo, ran: list[int]) -> list[Any]:
    """Start-up, a backlog deeper than the pool, then the cleanup kopf runs at stop."""
    await start_up(memo=memo)
    loop = asyncio.get_running_loop()
    blockers = Blockers(settings.WORKER_THREADS)
    in_flight = [loop.run_in_executor(None, blockers.write)
                 for _ in range(settings.WORKER_THREADS)]
    blockers.wait_running()  # every thread is busy: what follows queues
    queued = [loop.run_in_executor(None, ran.append, i) for i in range(100)]
    await clean_up(memo=memo)
    late = loop.run_in_executor(None, ran.append, -1)  # a call made while stopping
    blockers.release.set()
    written = await asyncio.gather(*in_flight)
    outcomes = await asyncio.gather(*queued, late, return_exceptions=True)
    heartbeat: asyncio.Task[None] = memo["heartbeat"]
    return [written, heartbeat.cancelling() > 0 or heartbeat.cancelled(), outcomes]


def test_a_stop_runs_no_queued_call_and_lets_the_running_ones_finish() -> None:
    """Closing the loop (as kopf.run does through asyncio.run) joins the worker pool; before the
    fix its threads first ran every call still queued, thousands with thousands of services."""
    ran: list[int] = []
    prometheus = workers.FairExecutor(1, "stop-prometheus")
    memo = kopf.Memo(runtime=Runtime(shards=NoShards(), prometheus_pool=prometheus))
    try:
        written, heartbeat_cancelled, outcomes = asyncio.run(operator_lifetime(memo, ran))
        late_query = prometheus.submit(ran.append, 0)
    finally:
        for name in ("eventLoop", "workers", "prometheusWorkers"):
            health.CHECKS.pop(name, None)
        prometheus.shutdown(wait=False)
    assert ran == []  # not one queued call ran, before or while the pool was joined
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert written == [WRITTEN] * settings.WORKER_THREADS  # the writes in flight completed
    assert heartbeat_cancelled  # kopf need not wait 5 s for it
    assert late_query.cancelled()  # Prometheus's threads stop too


def test_a_stopped_pool_cancels_what_is_queued_and_what_comes_later() -> None:
    pool, blockers = workers.FairExecutor(1, "stop"), Blockers(1)
    ran: list[int] = []
    try:
        running = pool.submit(blockers.write)
        blockers.wait_running()
        queued = [pool.submit(ran.append, i) for i in range(5)]
        pool.stop()
        late = pool.submit(ran.append, 5)
        blockers.release.set()
        assert running.result(timeout=30) == WRITTEN
    finally:
        blockers.release.set()
        pool.shutdown()
    assert all(future.cancelled() for future in (*queued, late))
    assert ran == []


def test_a_call_that_hangs_does_not_hold_the_stop() -> None:
    """The threads are daemons, joined within a grace period: a request that never answers
    (the kubernetes client sets no timeout) is abandoned with the process."""
    pool, blockers = workers.FairExecutor(1, "hang"), Blockers(1)
    hung = pool.submit(blockers.write)
    blockers.wait_running()
    try:
        pool.shutdown(wait=True, grace=0.0)
        assert hung.running()
    finally:
        blockers.release.set()
    assert hung.result(timeout=30) == WRITTEN


def test_the_process_ends_with_the_code_of_run_and_its_output_flushed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    written = io.BytesIO()
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(written))  # as to a pipe: buffered
    sys.stderr.write("the last line\n")
    exits: list[int] = []
    ran: list[str] = []
    run_command.end_process(3, exits.append, lambda: ran.append("exit functions"))
    assert exits == [3] and ran == ["exit functions"]
    assert written.getvalue() == b"the last line\n"


def test_what_was_registered_to_run_at_exit_still_runs(tmp_path: Path) -> None:
    """Coverage saves a measured operator's data at exit: skipping the interpreter's teardown
    must not skip that."""
    saved = tmp_path / "saved"
    script = ("import atexit, pathlib\n"
              "from adaptive_operator.commands.run import end_process\n"
              f"atexit.register(pathlib.Path({str(saved)!r}).write_text, 'data')\n"
              "end_process(3)\n")
    ended = subprocess.run([sys.executable, "-c", script], check=False, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(OPERATOR)})
    assert ended.returncode == 3
    assert saved.read_text() == "data"
