"""When the operator exits, kopf stops its daemons one by one: for a thousand services that took
over 50 s under a CPU limit, and the daemons not yet told went on deciding and writing. The
first daemon told that the operator exits tells the others, through the runtime."""

from __future__ import annotations

import asyncio
import gc
import signal
from dataclasses import replace
from typing import Any

import kopf
import pytest
from kopf._core.intents.stoppers import DaemonStopper

from adaptive_operator.handlers import adaptive_service, healing, runtime

from fakes import Cluster, FixedClock, kopf_body

NOW = 1_800_000_000.0
SPEC = {"scaleTargetRef": {"name": "web"}, "maxReplicas": 5, "mode": "Active",
        "metrics": [{"name": "load", "query": "sum(x)", "targetPerReplica": 10}],
        "healing": {"enabled": True}}


def stopped(reason: kopf.DaemonStoppingReason | None = None) -> kopf.DaemonStopped:
    stopper: DaemonStopper = DaemonStopper()
    if reason is not None:
        stopper.set(reason=reason)
    return stopper.async_waiter


async def test_the_first_daemon_told_the_operator_exits_tells_the_others() -> None:
    rt = Cluster().runtime(clock=FixedClock(NOW))
    others = stopped()
    assert runtime.carries_on(others, rt)
    # One service deleted: its daemon stops, the others carry on.
    assert not runtime.carries_on(stopped(kopf.DaemonStoppingReason.RESOURCE_DELETED), rt)
    assert runtime.carries_on(others, rt)
    # The operator exits: the daemon told stops, and so do the others at their next period.
    assert not runtime.carries_on(stopped(kopf.DaemonStoppingReason.OPERATOR_EXITING), rt)
    assert not runtime.carries_on(others, rt)


def test_the_shards_runtimes_share_the_lifecycle() -> None:
    rt = Cluster().runtime(clock=FixedClock(NOW))
    sharded = replace(rt, lease_shards=(replace(rt), replace(rt)))
    sharded.lifecycle.exiting = True
    assert all(shard.lifecycle.exiting for shard in sharded.lease_shards)


def body() -> kopf.Body:
    return kopf_body({"metadata": {"name": "web", "namespace": "ns", "generation": 1},
                      "spec": SPEC, "status": {}})


@pytest.mark.parametrize("daemon", [adaptive_service.scaling_daemon, healing.healing_daemon])
async def test_a_daemon_not_yet_told_syncs_no_more_once_the_operator_exits(daemon: Any) -> None:
    cluster = Cluster()
    rt = cluster.runtime(clock=FixedClock(NOW))
    rt.lifecycle.exiting = True  # another daemon was told
    # Bounded, so that a daemon that carried on fails the test instead of hanging it.
    await asyncio.wait_for(daemon(name="web", namespace="ns", body=body(), stopped=stopped(),
                                  memo=kopf.Memo(runtime=rt)), timeout=10)
    assert cluster.writes == [] and cluster.scaled == []


async def test_the_daemons_learn_of_the_exit_as_soon_as_kopfs_stop_begins() -> None:
    lifecycle = runtime.Lifecycle()
    assert not runtime.follow_stop(lifecycle)  # no kopf running here
    flag = asyncio.Event()
    checker = asyncio.create_task(flag.wait(), name=runtime.KOPF_STOP_TASK)
    assert runtime.follow_stop(lifecycle)
    await asyncio.sleep(0)
    assert not lifecycle.exiting
    flag.set()  # a signal: kopf's stop begins
    await checker
    await asyncio.sleep(0)  # done callbacks run on the loop's next turn
    assert lifecycle.exiting


def test_kopf_still_names_its_stop_task_so() -> None:
    """The task `follow_stop` looks for is kopf's own: a kopf release that renames it fails
    here, not silently in a slow stop."""
    import inspect

    from kopf._core.reactor import running

    assert f'name="{runtime.KOPF_STOP_TASK}"' in inspect.getsource(running.spawn_tasks)


async def test_a_stop_signal_says_exiting_at_once_and_still_reaches_the_handler_it_replaced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler runs in the main thread as the signal arrives: exiting at once, kopf's stop
    flag raised at the loop's next turn; the handler it replaced (here a recorder standing for
    asyncio's) still gets the signal."""
    received: list[int] = []
    installed: dict[int, Any] = {}
    monkeypatch.setattr(signal, "signal", lambda each, handler: installed.update({each: handler}))
    monkeypatch.setattr(signal, "getsignal", lambda each: lambda signum, _: received.append(
        signum))
    lifecycle = runtime.Lifecycle()
    assert runtime.follow_signals(lifecycle)
    assert set(installed) == {signal.SIGTERM, signal.SIGINT}
    assert not lifecycle.exiting
    installed[signal.SIGTERM](signal.SIGTERM, None)
    assert lifecycle.last_resort is not None  # armed: cancelled, or it would kill this run
    lifecycle.last_resort.cancel()
    assert lifecycle.exiting and received == [signal.SIGTERM]
    await asyncio.wait_for(lifecycle.stop.wait(), timeout=5)


async def test_without_a_handler_of_asyncios_to_wrap_none_is_installed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed before kopf adds asyncio's handlers, ours would be replaced by them: said."""
    installed: dict[int, Any] = {}
    monkeypatch.setattr(signal, "signal", lambda each, handler: installed.update({each: handler}))
    monkeypatch.setattr(signal, "getsignal", lambda each: signal.SIG_DFL)
    assert not runtime.follow_signals(runtime.Lifecycle())
    assert installed == {}


# The C handler's write to the full pipe fails, and Python reports it as unraisable: expected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_signal_that_asyncio_drops_from_its_full_pipe_still_stops_kopf() -> None:
    """A loop busy while worker threads finish calls: each writes a byte to the loop's
    self-pipe, which fills; the byte a signal's C handler writes there is then dropped, and
    asyncio never calls the loop's handler of that signal. The stop flag is raised anyway."""
    import os
    import threading

    async def scenario() -> tuple[list[str], runtime.Lifecycle]:
        loop = asyncio.get_running_loop()
        seen: list[str] = []
        loop.add_signal_handler(signal.SIGUSR1, seen.append, "asyncio")  # as kopf does
        lifecycle = runtime.Lifecycle(last_resort_seconds=None)  # not this run's SIGKILL
        try:
            assert runtime.follow_signals(lifecycle, (signal.SIGUSR1,))
            # The loop does not turn while this coroutine runs: the pipe is not read.
            flood = threading.Thread(target=lambda: [
                loop.call_soon_threadsafe(lambda: None) for _ in range(20_000)])
            flood.start()
            flood.join()
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.wait_for(lifecycle.stop.wait(), timeout=10)
            await asyncio.sleep(0.1)  # asyncio's own delivery, if its byte got through
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        return seen, lifecycle

    seen, lifecycle = asyncio.run(scenario())
    assert lifecycle.exiting and lifecycle.stop.is_set()
    print(f"asyncio's own handler was called {len(seen)} time(s)")


def test_kopf_runs_with_the_lifecycles_stop_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptive_operator.commands import run as run_command
    from adaptive_operator.domain.common.namespaces import watch_scope

    passed: dict[str, Any] = {}
    monkeypatch.setattr(kopf, "run", lambda **kwargs: passed.update(kwargs))
    rt = Cluster().runtime(clock=FixedClock(NOW))
    run_command.start_kopf(watch_scope(()), rt)
    assert passed["stop_flag"] is rt.lifecycle.stop


def test_what_cannot_be_followed_is_said() -> None:
    """Outside kopf, and off the main thread (where Python refuses signal handlers)."""
    import threading

    said: list[list[str]] = []

    async def follow() -> None:
        said.append(runtime.follow_exit(runtime.Lifecycle()))

    thread = threading.Thread(target=lambda: asyncio.run(follow()))
    thread.start()
    thread.join()
    assert [problem.split(" cannot")[0] for problem in said[0]] == [
        "kopf's stop", "stop signals"]



HUNG_STOP = """
import asyncio, signal, sys
sys.path.insert(0, sys.argv[1])
from adaptive_operator.handlers import runtime

async def main() -> None:
    loop = asyncio.get_running_loop()
    for each in (signal.SIGTERM, signal.SIGINT):  # as kopf does (SIGINT may come ignored)
        loop.add_signal_handler(each, lambda: None)  # and its stop then hangs
    lifecycle = runtime.Lifecycle(last_resort_seconds=0.5)
    assert runtime.follow_signals(lifecycle)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_a_stop_that_hangs_is_ended_by_sigkill_as_kopf_would() -> None:
    """kopf's own SIGKILL 10 minutes into a hung stop applies only to stops by signal, and our
    handler turns every signal into a stop by flag: the handler arms the same last resort (here
    after 0.5 s). A process told SIGTERM whose stop never ends is killed."""
    import subprocess
    import sys
    from pathlib import Path

    source = str(Path(runtime.__file__).resolve().parents[2])
    child = subprocess.Popen([sys.executable, "-c", HUNG_STOP, source], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()


def test_the_last_resort_is_armed_once_and_can_be_left_out() -> None:
    lifecycle = runtime.Lifecycle()
    lifecycle.kill_if_hung()
    armed = lifecycle.last_resort
    assert armed is not None and armed.daemon and armed.interval == 600.0
    try:
        lifecycle.kill_if_hung()  # a second signal
        assert lifecycle.last_resort is armed
    finally:
        armed.cancel()
    without = runtime.Lifecycle(last_resort_seconds=None)
    without.kill_if_hung()
    assert without.last_resort is None


async def test_the_wait_between_periods_leaves_nothing_for_the_cyclic_collector() -> None:
    """kopf's `stopped.wait(n)` left some 26 objects in a cycle per call, which only a full
    collection frees: twice a period for every service, on every replica."""
    waits, flag = 200, stopped()
    gc.collect()
    gc.disable()
    try:
        for _ in range(waits):
            await runtime.pause(flag, 0.0001)
        found = gc.collect()
    finally:
        gc.enable()
    assert found < waits  # kopf's: over 5,000 here


async def test_a_stopped_daemon_does_not_wait() -> None:
    await asyncio.wait_for(
        runtime.pause(stopped(kopf.DaemonStoppingReason.RESOURCE_DELETED), 3600.0), timeout=5)


@pytest.mark.parametrize("daemon", [adaptive_service.scaling_daemon, healing.healing_daemon])
async def test_a_daemon_waiting_for_its_next_period_ends_when_kopf_cancels_it(
        daemon: Any) -> None:
    """As kopf stops a daemon whose object went: the flag, then a cancel at once."""
    cluster = Cluster()
    stopper: DaemonStopper = DaemonStopper()
    task = asyncio.create_task(daemon(name="web", namespace="ns", body=body(),
                                      stopped=stopper.async_waiter,
                                      memo=kopf.Memo(runtime=cluster.runtime(
                                          clock=FixedClock(NOW)))))

    async def first_sync() -> None:  # then the daemon waits for its next period
        while not cluster.writes:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(first_sync(), timeout=10)
    stopper.set(reason=kopf.DaemonStoppingReason.RESOURCE_DELETED)
    task.cancel()
    await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), timeout=10)
    assert task.done() and cluster.scaled == []
