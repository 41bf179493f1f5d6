"""The shard Leases renewed by a process of their own: the child's rounds, its start and stop, and
the parent's fences, which read the renewal times the child shares."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import MutableSequence
from typing import Any

import pytest

from adaptive_operator import logs
from adaptive_operator.adapters import health, kube, lease_process
from adaptive_operator.adapters.leader import LeaderRounds
from adaptive_operator.adapters.lease_process import (
    LAPSED,
    ROUNDS,
    LeaseProcess,
    LeaseSpec,
    rounds,
    serve,
)
from adaptive_operator.adapters.lease_shards import ShardedLeases
from adaptive_operator.adapters.telemetry import LEADER, LEASE_SHARDS_LAPSED

from fakes import LeaseApi

SPEC = LeaseSpec("ops", "op", "a", 4)


def sharing(api: LeaseApi, renewals: MutableSequence[float],
            clock: list[float]) -> ShardedLeases:
    return ShardedLeases("ops", "op", "a", 4, clock=lambda: clock[0],
                         api=api, renewals=renewals)  # type: ignore[arg-type]


def test_at_stop_the_child_gives_every_lease_back() -> None:
    api, clock, renewals, stats = LeaseApi(), [1000.0], [math.nan] * 4, [0.0] * 3
    stop = threading.Event()
    stop.set()
    rounds(sharing(api, renewals, clock), stop, lambda: False, stats)
    assert stats[ROUNDS] == 1 and stats[LAPSED] == 0
    assert api.holders() == [""] * 4  # renewed in the round, then released
    assert all(math.isnan(value) for value in renewals)


def test_a_child_whose_parent_is_gone_stops_renewing_and_lets_the_leases_expire() -> None:
    api, clock, renewals, stats = LeaseApi(), [1000.0], [math.nan] * 4, [0.0] * 3
    rounds(sharing(api, renewals, clock), threading.Event(), lambda: True, stats)
    assert stats[ROUNDS] == 1
    assert api.holders() == ["a"] * 4  # not released: nothing told it the writes stopped


@pytest.mark.parametrize("silent_for", [0.0, 16.0])
def test_the_child_builds_its_leases_on_the_shared_slots_and_ignores_a_terminals_ctrl_c(
        monkeypatch: pytest.MonkeyPatch, silent_for: float) -> None:
    """... and renews nothing while its parent has been silent for longer than 15 s."""
    import signal

    api, clock, renewals = LeaseApi(), [1000.0], [math.nan] * 4
    stats = [0.0, 0.0, 0.0, time.monotonic() - silent_for]
    built: list[ShardedLeases] = []

    def leases(*args: Any, renewals: MutableSequence[float]) -> ShardedLeases:
        built.append(sharing(api, renewals, clock))
        assert args == ("ops", "op", "a", 4, 15)
        return built[-1]

    monkeypatch.setattr(lease_process, "ShardedLeases", leases)
    monkeypatch.setattr(logs, "configure", lambda *_, **__: None)
    monkeypatch.setattr(kube, "load_config", lambda: None)
    before = signal.getsignal(signal.SIGINT)
    try:
        serve(SPEC, renewals, stats, threading.Event(), -1)  # the parent -1: gone at once
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    if silent_for:
        assert all(math.isnan(value) for value in renewals) and stats[ROUNDS] == 0
        assert api.lists == 0
    else:
        assert renewals == [1000.0] * 4 and stats[ROUNDS] == 1
        assert built[0].may_write(2)() is True


class StopsAfter:
    """A stop told after `waits` waits."""

    def __init__(self, waits: int) -> None:
        self.waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.waits -= 1
        return self.waits < 0


def test_rounds_pause_while_the_parent_is_silent_and_go_on_when_it_speaks_again() -> None:
    api, clock, renewals, stats = LeaseApi(), [1000.0], [math.nan] * 4, [0.0] * 4
    silence = iter([True, True, False])
    rounds(sharing(api, renewals, clock), StopsAfter(2), lambda: False, stats,
           lambda: next(silence))
    assert stats[ROUNDS] == 1 and api.lists == 1  # the third round only
    assert api.holders() == [""] * 4  # then the stop: released


def test_the_parents_fences_read_the_shared_renewal_times() -> None:
    clock = [1000.0]
    leases = LeaseProcess(SPEC, clock=lambda: clock[0])
    assert leases.held() == () and not leases.may_write(0)()
    leases.renewals[0], leases.renewals[2] = 995.0, 989.0
    assert leases.held() == (0,)  # shard 2 renewed 11 s ago: past the 10-s deadline
    assert leases.may_write(0)() and not leases.may_write(2)()
    clock[0] = 1005.5
    assert leases.held() == ()


def test_the_parent_says_what_it_holds_and_counts_the_childs_lapses() -> None:
    clock = [1000.0]
    leases = LeaseProcess(SPEC, clock=lambda: clock[0])
    leases.renewals[1], leases.renewals[3] = 999.0, 999.0
    leases.stats[LAPSED] = 2.0
    before = LEASE_SHARDS_LAPSED._value.get()
    leases.publish()
    leases.publish()
    assert health.STATE["shards"] == "1,3" and health.STATE["role"] == "active"
    assert LEASE_SHARDS_LAPSED._value.get() - before == 2.0
    leases.renewals[1] = leases.renewals[3] = math.nan
    leases.publish()
    assert health.STATE["shards"] == "" and health.STATE["role"] == "standby"


def renews_until_stopped(spec: LeaseSpec, renewals: MutableSequence[float],
                         stats: MutableSequence[float], stop: Any, parent: int) -> None:
    """A child that holds shard 0 until told to stop, then gives it back."""
    renewals[0] = time.time()
    stats[ROUNDS] = 1
    stop.wait(60)
    renewals[0] = math.nan


def ends_at_once(spec: LeaseSpec, renewals: MutableSequence[float],
                 stats: MutableSequence[float], stop: Any, parent: int) -> None:
    """A child that dies: nothing renews any more."""


def never_stops(spec: LeaseSpec, renewals: MutableSequence[float],
                stats: MutableSequence[float], stop: Any, parent: int) -> None:
    time.sleep(60)


def test_a_child_process_holds_its_shards_until_the_parent_stops_it() -> None:
    leases = LeaseProcess(SPEC, target=renews_until_stopped)
    leases.start()
    first_round(leases)
    assert leases.held() == (0,) and leases.process.pid != os.getpid()
    leases.release()
    assert leases.process.exitcode == 0 and leases.held() == ()


def test_when_the_child_ends_on_its_own_the_parent_is_told() -> None:
    leases = LeaseProcess(SPEC, target=ends_at_once)
    lost = threading.Event()
    leases.start()
    leases.keep(threading.Event(), lost.set)
    assert lost.is_set() and leases.process.exitcode == 0


def test_a_child_that_does_not_stop_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease_process, "STOP_SECONDS", 0.5)
    leases = LeaseProcess(SPEC, target=never_stops)
    leases.start()
    leases.release()
    assert not leases.process.is_alive() and leases.process.exitcode is not None


def test_a_child_never_started_needs_no_stop() -> None:
    leases = LeaseProcess(SPEC)
    leases.release()
    assert leases.process.pid is None


LEADER_SPEC = LeaseSpec("ops", "op", "a", 1, leader=True)


def test_the_leaders_child_renews_the_one_lease_named_by_the_flag_on_the_shared_slot() -> None:
    renewals = [math.nan]
    built = lease_process.leases_of(LEADER_SPEC, renewals)
    assert isinstance(built, LeaderRounds) and built.elector.name == "op"
    built.elector.renewed = 1000.0
    assert renewals == [1000.0]


def first_round(leases: LeaseProcess) -> None:
    deadline = time.monotonic() + 60
    while leases.stats[ROUNDS] < 1 and time.monotonic() < deadline:
        leases.process.join(0.05)  # waits for the child's first round, at most a minute


def test_a_standby_waits_until_its_child_wins_the_leaders_lease() -> None:
    leases = LeaseProcess(LEADER_SPEC, target=renews_until_stopped)
    leases.start()
    try:
        assert leases.wait_held(threading.Event())
        assert leases.may_write(0)()
    finally:
        leases.release()


def test_a_standby_whose_child_ended_is_told_and_one_told_to_stop_stops_waiting() -> None:
    ended = LeaseProcess(LEADER_SPEC, target=ends_at_once)
    ended.start()
    assert not ended.wait_held(threading.Event())
    waiting = LeaseProcess(LEADER_SPEC, target=never_stops)
    stop = threading.Event()
    stop.set()
    waiting.start()
    try:
        assert not waiting.wait_held(stop)
    finally:
        waiting.process.kill()


def test_a_leader_whose_renewals_lapsed_is_told_it_lost_the_lease(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The child is alive but its renewals no longer come in time: past the deadline the
    leader has lost (another replica may take over), and stops."""
    monkeypatch.setattr(lease_process, "PUBLISH_SECONDS", 0.0)
    clock = [0.0]
    leases = LeaseProcess(LEADER_SPEC, clock=lambda: clock[0], target=renews_until_stopped)
    leases.start()
    lost = threading.Event()
    try:
        first_round(leases)
        clock[0] = leases.renewals[0] + 1.0
        leases.publish()
        assert health.STATE["role"] == "leader" and LEADER._value.get() == 1
        clock[0] += 11.0  # no renewal for longer than the 10-s deadline
        leases.keep(threading.Event(), lost.set)
        assert lost.is_set() and leases.process.is_alive()
        assert health.STATE["role"] == "standby" and LEADER._value.get() == 0
    finally:
        leases.release()
