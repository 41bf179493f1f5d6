"""The services shared out across replicas over K shard Leases (`run --lease-shards K`, K > 1).

Each replica holds one of K member Leases (so the others count it) and its fair share of the K
shard Leases; `domain/common/lease_shards.py` decides which, from what was read this round (one
list of the namespace's Leases a round, whatever K). Every
Lease follows the elector's rules (`leader.LeaderElector`): resourceVersion-conditional writes,
expiry judged by our own clock from first sight. Shard i's writes go through a client fenced by
`may_write(i)`: true only while shard i was renewed within the renewal deadline, so a write
computed while holding shard i is refused once it is lost, whatever other shards are held.
Losing a shard never ends the process: its services wait until a replica takes it. The rounds
run in a process of their own (`lease_process`), which shares the shards' renewal times.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adaptive_operator import logs
from adaptive_operator.adapters.kube import API_ERRORS
from adaptive_operator.adapters.leader import (
    DURATION_SECONDS,
    LeaderElector,
    give_up,
    lease_api,
)
from adaptive_operator.domain.common import lease_shards
from adaptive_operator.domain.common.leadership import LeaseAction, next_action

log = logs.get(__name__)
Read = tuple[bool, client.V1Lease | None]  # (read this round, the lease)


def _list(api: client.CoordinationV1Api, namespace: str) -> dict[str, client.V1Lease] | None:
    """Every Lease of the namespace by name, in one request (not 2K reads a round); None when
    the list failed: nothing is known this round (the deadlines still run)."""
    try:
        found: client.V1LeaseList = api.list_namespaced_lease(namespace)
    except API_ERRORS as err:
        log.warning("lease list failed", namespace=namespace, error=logs.error_text(err))
        return None
    return {lease.metadata.name: lease for lease in found.items
            if lease.metadata is not None and lease.metadata.name}


def _look(elector: LeaderElector, listed: dict[str, client.V1Lease] | None, now: float) -> Read:
    if listed is None:
        return False, None
    return True, elector.saw(listed.get(elector.name), now)


def _write(elector: LeaderElector, read: Read, now: float) -> bool:
    """Renew, create or take over one lease as read; False when it was not read or the write
    lost a race (409) or failed."""
    found, lease = read
    if not found:
        return False
    try:
        elector.write(lease, next_action(elector.seen, elector.identity, now), now)
    except ApiException as err:
        log.info("lease attempt lost", lease=elector.name, status=err.status)
        return False
    except API_ERRORS as err:
        log.warning("lease attempt failed", lease=elector.name, error=logs.error_text(err))
        return False
    return True


class ShardedLeases:
    def __init__(self, namespace: str, name: str, identity: str, shards: int,
                 duration_seconds: int = DURATION_SECONDS, retry_seconds: float = 2.0,
                 clock: Callable[[], float] | None = None,
                 api: client.CoordinationV1Api | None = None,
                 renewals: MutableSequence[float] | None = None) -> None:
        """`renewals`: where shard i's last renewal is kept (slot i), when it is shared with
        another process (`lease_process`); else each shard keeps its own."""
        import time

        self.identity, self.retry, self.namespace = identity, retry_seconds, namespace
        self.clock = clock or time.time
        self.api = coordination = api or lease_api()

        def elector(lease: str, slot: int | None = None) -> LeaderElector:
            kept = (renewals, slot) if renewals is not None and slot is not None else (None, 0)
            return LeaderElector(namespace, lease, identity, duration_seconds, retry_seconds,
                                 self.clock, coordination, *kept)

        self.shards = tuple(elector(f"{name}-shard-{i}", i) for i in range(shards))
        self.members = tuple(elector(f"{name}-member-{i}") for i in range(shards))
        self.kept: frozenset[int] = frozenset()  # held after the last round
        self.last_round: float | None = None  # when the last round began
        self.took = 0.0  # seconds the last round took
        self.lapsed = 0  # shards lost so far without being given up

    def may_write(self, shard: int) -> Callable[[], bool]:
        """May this replica act on shard `shard` now (the fence of that shard's client)?"""
        return self.shards[shard].renewed_recently

    def held(self) -> tuple[int, ...]:
        return tuple(i for i, elector in enumerate(self.shards) if elector.renewed_recently())

    def _membership(self, listed: dict[str, client.V1Lease] | None, now: float) -> bool:
        """Renew or take a member lease; whether this replica is a member after this round (a
        renewal that failed this round leaves it one until the renewal deadline)."""
        reads = [_look(elector, listed, now) for elector in self.members]
        chosen = lease_shards.member_step(self.identity, [m.seen for m in self.members], now)
        if chosen is None:
            return False
        elector = self.members[chosen]
        return _write(elector, reads[chosen], now) or elector.renewed_recently()

    def step(self) -> None:
        """One round: read every lease, renew what is kept, take and give up as planned."""
        start, since, expired = self._begin()
        listed = _list(self.api, self.namespace)
        # What was listed is seen now, not when the round began: another replica's record
        # written while the list was on its way must not count as seen before it was written
        # (its expiry would be judged early). A renewal written from here counts from here too,
        # before it is sent.
        now = self.clock()
        reads = [_look(elector, listed, now) for elector in self.shards]
        for elector in self.shards:  # another replica's record: not ours, whatever we think
            if next_action(elector.seen, self.identity, now) is LeaseAction.WAIT:
                elector.renewed = None
        member = self._membership(listed, now)
        replicas = lease_shards.live_replicas(self.identity, [m.seen for m in self.members],
                                              now, member)
        plan = lease_shards.plan(self.identity, [e.seen for e in self.shards], replicas,
                                 member, now)
        for shard in (*plan.keep, *plan.take):
            _write(self.shards[shard], reads[shard], now)
        for shard in plan.give_up:
            give_up(self.shards[shard])
        self.took = self.clock() - start
        self._lapses(expired, set(plan.give_up), since)
        if self.took > self.shards[0].renew_deadline / 2:  # two such rounds and shards lapse
            log.warning("lease round slow", round_seconds=round(self.took, 3),
                        renew_deadline_seconds=self.shards[0].renew_deadline)

    def _begin(self) -> tuple[float, float | None, set[int]]:
        """When this round begins, how long after the last one, and which shards kept by the
        last one are already past their renewal deadline."""
        start = self.clock()
        since = None if self.last_round is None else start - self.last_round
        self.last_round = start
        return start, since, {shard for shard in self.kept
                              if not self.shards[shard].renewed_recently()}

    def _lapses(self, expired: set[int], given_up: set[int], since: float | None) -> None:
        """Say which shards were lost without being given up: the ones whose renewal deadline
        passed before this round began (their fences shut meanwhile, even if renewed again
        now), and the ones lost in it (taken by another replica, or writes refused)."""
        held = frozenset(self.held())
        lapsed = sorted(expired | (self.kept - held - given_up))
        self.kept = held
        if lapsed:
            self.lapsed += len(lapsed)
            log.warning("lease shards lapsed", shards=lapsed, round_seconds=round(self.took, 3),
                        since_last_round=None if since is None else round(since, 3))

    def release(self) -> None:
        """Give every lease back on purpose, so the other replicas take them over at once. All
        together: each is a read and a write, and up to K + 1 of them one after another took
        seconds of a stop while the API server was busy with the other replica's services."""
        held = [elector for elector in (*self.shards, *self.members) if elector.renewed is not None]
        if not held:
            return
        with ThreadPoolExecutor(len(held), thread_name_prefix="lease-release") as pool:
            list(pool.map(give_up, held))
