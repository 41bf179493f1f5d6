"""The shard Leases held by several replicas against one Lease API (resourceVersion-checked
writes, as the API server does), on a clock the test moves: each replica gets its share, a
stopped replica's shards are taken once their records have not changed for a lease duration,
and a replica that stops on purpose hands its shards over at once."""

from __future__ import annotations

import math
import threading

import structlog
from kubernetes import client

from adaptive_operator.adapters.lease_shards import ShardedLeases

from fakes import LeaseApi

SHARDS = 4


def replica(api: LeaseApi, name: str, clock: list[float]) -> ShardedLeases:
    return ShardedLeases("ops", "op", name, SHARDS, clock=lambda: clock[0],
                         api=api)  # type: ignore[arg-type]


def rounds(replicas: list[ShardedLeases], clock: list[float], count: int) -> None:
    for _ in range(count):
        for each in replicas:
            each.step()
        clock[0] += 2.0


def test_two_replicas_hold_half_each_and_act_only_on_their_own() -> None:
    api, clock = LeaseApi(), [1000.0]
    a, b = replica(api, "a", clock), replica(api, "b", clock)
    rounds([a], clock, 1)
    assert a.held() == (0, 1, 2, 3)  # alone: every shard
    rounds([a, b], clock, 6)
    assert sorted(api.holders()) == ["a", "a", "b", "b"]
    assert set(a.held()).isdisjoint(b.held()) and len(a.held()) == len(b.held()) == 2
    for shard in range(SHARDS):
        assert a.may_write(shard)() is (shard in a.held())
        assert b.may_write(shard)() is (shard in b.held())


def test_a_stopped_replicas_shards_are_taken_after_a_lease_duration_and_not_before() -> None:
    api, clock = LeaseApi(), [1000.0]
    a, b = replica(api, "a", clock), replica(api, "b", clock)
    rounds([a, b], clock, 8)
    theirs = b.held()
    assert len(theirs) == 2
    stopped_at = clock[0]  # b stops: its records no longer change
    while set(theirs) - set(a.held()):
        rounds([a], clock, 1)
        assert clock[0] - stopped_at < 15.0 + 3 * 2.0  # a duration, and a round or two
    assert clock[0] - stopped_at > 15.0  # never while b's records could still be renewed
    assert a.held() == (0, 1, 2, 3)
    assert not any(b.may_write(shard)() for shard in theirs)  # b's own fences shut before


def test_a_replica_that_stops_on_purpose_hands_over_at_once() -> None:
    api, clock = LeaseApi(), [1000.0]
    a, b = replica(api, "a", clock), replica(api, "b", clock)
    rounds([a, b], clock, 8)
    b.release()
    assert b.held() == ()
    rounds([a], clock, 1)
    assert a.held() == (0, 1, 2, 3)


class SlowLeaseApi(LeaseApi):
    """An API server slow to answer: each read of a lease waits until `parties` reads wait
    together (one after another, the first would wait for ever: here, until the timeout)."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.together = threading.Barrier(parties)
        self.releasing = False

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        if self.releasing:
            self.together.wait(timeout=30)
        return super().read_namespaced_lease(name, namespace)


def test_a_stopping_replica_gives_its_leases_back_all_together() -> None:
    """A shard and a member lease, each a read and a write: together, not one after another
    on an API server busy with the other replicas' services."""
    api, clock = SlowLeaseApi(SHARDS + 1), [1000.0]
    a = replica(api, "a", clock)
    rounds([a], clock, 1)
    assert a.held() == (0, 1, 2, 3)
    api.releasing = True
    a.release()
    assert not api.together.broken
    assert api.holders() == [""] * SHARDS


def test_a_lost_shard_is_fenced_at_once_while_the_others_stay_held() -> None:
    api, clock = LeaseApi(), [1000.0]
    a = replica(api, "a", clock)
    rounds([a], clock, 1)
    stolen = api.leases["op-shard-2"]
    assert stolen.spec is not None
    stolen.spec.holder_identity = "intruder"  # another replica took shard 2 (say a had paused)
    api._stored(stolen)
    rounds([a], clock, 1)
    assert not a.may_write(2)()
    assert all(a.may_write(shard)() for shard in (0, 1, 3))


def test_while_the_api_server_is_away_the_fences_shut_by_the_deadline() -> None:
    api, clock = LeaseApi(), [1000.0]
    a = replica(api, "a", clock)
    rounds([a], clock, 3)
    api.down = True
    rounds([a], clock, 3)  # 8 s since the last renewal: still within 2/3 of 15 s
    assert a.held() == (0, 1, 2, 3)  # neither given up nor released on a failed round
    rounds([a], clock, 1)  # 10 s: beyond it
    assert a.held() == ()
    api.down = False
    rounds([a], clock, 2)
    assert a.held() == (0, 1, 2, 3)


class SlowListApi(LeaseApi):
    """A list that takes `seconds` to answer, on the test's clock."""

    def __init__(self, clock: list[float], seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def list_namespaced_lease(self, namespace: str) -> client.V1LeaseList:
        self.clock[0] += self.seconds
        return super().list_namespaced_lease(namespace)


def test_what_a_slow_list_returns_is_seen_when_it_answered_not_when_it_was_asked() -> None:
    """Another replica's record may have been written while the list was on its way: counted
    as seen when the round began, its expiry would be judged early, and two replicas could
    act on one shard. A renewal written after the list counts from then too."""
    clock = [1000.0]
    api = SlowListApi(clock, 4.0)
    a, b = replica(api, "a", clock), replica(api, "b", clock)
    rounds([a, b], clock, 8)
    answered = clock[0] + 4.0
    a.step()
    assert {elector.seen.since for elector in a.shards if elector.seen is not None
            and elector.seen.lease.holder == "b"} == {answered}
    assert {a.shards[shard].renewed for shard in a.held()} == {answered}


def test_a_round_past_half_the_renewal_deadline_is_logged() -> None:
    clock = [1000.0]
    a = replica(SlowListApi(clock, 4.0), "a", clock)
    with structlog.testing.capture_logs() as logged:
        a.step()
    assert not [line for line in logged if line["event"] == "lease round slow"]
    a.api.seconds = 5.5  # type: ignore[attr-defined]
    with structlog.testing.capture_logs() as logged:
        a.step()
    assert [line["round_seconds"] for line in logged if line["event"] == "lease round slow"
            ] == [5.5]


def test_shards_whose_deadline_passed_before_the_round_began_count_as_lapsed() -> None:
    api, clock = LeaseApi(), [1000.0]
    a = replica(api, "a", clock)
    rounds([a], clock, 2)
    assert a.lapsed == 0
    clock[0] += 9.0  # the next round begins 11 s after the last: the 10-s deadline passed
    a.step()
    assert a.held() == (0, 1, 2, 3)  # renewed again (no one took them)
    assert a.lapsed == SHARDS  # but their fences were shut meanwhile
    rounds([a], clock, 2)
    assert a.lapsed == SHARDS


def test_shards_taken_by_another_replica_count_as_lapsed_and_given_up_ones_do_not() -> None:
    api, clock = LeaseApi(), [1000.0]
    a = replica(api, "a", clock)
    rounds([a], clock, 1)
    stolen = api.leases["op-shard-2"]
    assert stolen.spec is not None
    stolen.spec.holder_identity = "intruder"
    api._stored(stolen)
    rounds([a], clock, 1)
    assert a.lapsed == 1
    b = replica(api, "b", clock)
    rounds([a, b], clock, 8)  # a gives shards up to b on purpose
    assert len(a.held()) < 3 and a.lapsed == 1


class ReleaseWatchingApi(LeaseApi):
    """Records, for each lease given back, what the shared renewal slots said at that moment."""

    def __init__(self, renewals: list[float]) -> None:
        super().__init__()
        self.renewals = renewals
        self.at_release: dict[str, list[float]] = {}

    def replace_namespaced_lease(self, name: str, namespace: str,
                                 body: client.V1Lease) -> client.V1Lease:
        if body.spec is not None and body.spec.holder_identity == "":
            self.at_release[name] = list(self.renewals)
        return super().replace_namespaced_lease(name, namespace, body)


def test_a_shared_renewal_slot_is_cleared_before_its_lease_is_given_back() -> None:
    """Another process fences on the slots: a shard must read as not held before the release
    that lets another replica take it is sent."""
    renewals = [math.nan] * SHARDS
    api, clock = ReleaseWatchingApi(renewals), [1000.0]
    a = ShardedLeases("ops", "op", "a", SHARDS, clock=lambda: clock[0],
                      api=api, renewals=renewals)  # type: ignore[arg-type]
    rounds([a], clock, 1)
    assert renewals == [1000.0] * SHARDS
    a.release()
    assert all(math.isnan(value) for value in renewals)
    assert {name: math.isnan(at[int(name.rsplit("-", 1)[1])])
            for name, at in api.at_release.items() if "shard" in name} == {
        f"op-shard-{shard}": True for shard in range(SHARDS)}


def test_a_round_reads_every_lease_in_one_list_whatever_the_shards() -> None:
    """K shard and K member Leases are read by one list a round, not 2K reads: the API server's
    load from sharing does not grow with K."""
    api, clock = LeaseApi(), [1000.0]
    a, b = replica(api, "a", clock), replica(api, "b", clock)
    rounds([a, b], clock, 5)
    assert api.lists == 10
    assert len(a.held()) == len(b.held()) == 2
    assert sorted(api.leases) == sorted([f"op-shard-{i}" for i in range(SHARDS)]
                                        + ["op-member-0", "op-member-1"])
