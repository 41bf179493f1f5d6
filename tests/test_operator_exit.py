"""When the operator exits, kopf stops its daemons one by one: for a thousand services that took
over 50 s under a CPU limit, and the daemons not yet told went on deciding and writing. The
first daemon told that the operator exits tells the others, through the runtime."""

from __future__ import annotations

import asyncio
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


def test_a_stop_signal_says_exiting_at_once_and_still_reaches_the_handler_it_replaced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler runs in the main thread as the signal arrives, before asyncio's loop gets
    round to kopf's; asyncio's handler (here a recorder) still gets the signal."""
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
    assert lifecycle.exiting and received == [signal.SIGTERM]


def test_a_replaced_default_handler_is_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    installed: dict[int, Any] = {}
    monkeypatch.setattr(signal, "signal", lambda each, handler: installed.update({each: handler}))
    monkeypatch.setattr(signal, "getsignal", lambda each: signal.SIG_DFL)
    lifecycle = runtime.Lifecycle()
    assert runtime.follow_signals(lifecycle)
    installed[signal.SIGINT](signal.SIGINT, None)  # SIG_DFL is not a callable: nothing else
    assert lifecycle.exiting


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
