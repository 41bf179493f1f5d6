"""The shard Leases held by several replicas against one Lease API (resourceVersion-checked
writes, as the API server does), on a clock the test moves: each replica gets its share, a
stopped replica's shards are taken once their records have not changed for a lease duration,
and a replica that stops on purpose hands its shards over at once."""

from __future__ import annotations

import copy
import threading

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator.adapters import health
from adaptive_operator.adapters.lease_shards import ShardedLeases

SHARDS = 4


class LeaseApi:
    """coordination.k8s.io Leases in memory: a write over a changed record is refused (409)."""

    def __init__(self) -> None:
        self.leases: dict[str, client.V1Lease] = {}
        self.version = 0
        self.down = False
        self.lists = 0

    def _stored(self, lease: client.V1Lease) -> client.V1Lease:
        self.version += 1
        kept = copy.deepcopy(lease)
        assert kept.metadata is not None and kept.metadata.name is not None
        kept.metadata.resource_version = str(self.version)
        self.leases[kept.metadata.name] = kept
        return copy.deepcopy(kept)

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        if self.down:
            raise OSError("connection refused")
        if name not in self.leases:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.leases[name])

    def list_namespaced_lease(self, namespace: str) -> client.V1LeaseList:
        self.lists += 1
        if self.down:
            raise OSError("connection refused")
        return client.V1LeaseList(items=[copy.deepcopy(lease) for lease in self.leases.values()])

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        assert body.metadata is not None
        if body.metadata.name in self.leases:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._stored(body)

    def replace_namespaced_lease(self, name: str, namespace: str,
                                 body: client.V1Lease) -> client.V1Lease:
        kept = self.leases[name].metadata
        assert kept is not None and body.metadata is not None
        if kept.resource_version != body.metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        return self._stored(body)

    def holders(self) -> list[str]:
        return [self.holder(f"op-shard-{i}") for i in range(SHARDS)]

    def holder(self, name: str) -> str:
        spec = self.leases[name].spec if name in self.leases else None
        return (spec.holder_identity or "") if spec is not None else ""


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
    assert health.STATE["shards"] in {",".join(map(str, a.held())), ",".join(map(str, b.held()))}


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


def test_keep_runs_rounds_until_stopped() -> None:
    api, clock = LeaseApi(), [1000.0]
    a = replica(api, "a", clock)
    stop = threading.Event()
    stop.set()
    a.keep(stop)  # one round, then it sees the stop
    assert a.held() == (0, 1, 2, 3)




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
