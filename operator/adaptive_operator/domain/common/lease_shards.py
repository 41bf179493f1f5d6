"""Services shared out across operator replicas over K Leases: which shard an object is in, and
which shard leases this replica should take or give up. No I/O; the clock is a parameter.

An object's shard is the CRC16/XMODEM of "namespace/name" (the checksum a ShardSet hashes keys
with) modulo K: stable across replicas, restarts and versions. Each replica holds a fair share of
the K shard leases, ceil(K / live replicas). A replica is live while it holds one of K member
leases (the same rules as a shard lease), so a newcomer that holds no shard yet is counted, and
the replicas that hold too many give up one lease a round until it gets its share. Only a lease
that is absent, released or expired (judged as `leadership.next_action` does) is ever taken.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from adaptive_operator.domain.common.leadership import LeaseAction, Observation, next_action

# Each replica reads 2K Leases every retry: 16 keeps that at 16 reads a second, and 16 replicas
# of 5,000 services each are more than one namespace's API server should be asked to carry.
MAX_LEASE_SHARDS = 16


def shard_of(namespace: str, name: str, shards: int) -> int:
    """The shard of object namespace/name among `shards` (CRC16/XMODEM, as ShardSets hash)."""
    return binascii.crc_hqx(f"{namespace}/{name}".encode(), 0) % shards


def fair_share(shards: int, replicas: int) -> int:
    """How many shard leases one of `replicas` live replicas should hold."""
    return -(-shards // max(replicas, 1))


def preference(identity: str, leases: Sequence[int]) -> list[int]:
    """The leases in this replica's own order (rendezvous hashing): replicas racing for free
    leases mostly ask for different ones, and a replica gives up its least preferred first."""
    return sorted(leases, key=lambda lease: (binascii.crc_hqx(f"{identity}/{lease}".encode(), 0),
                                             lease))


def held(identity: str, seen: Sequence[Observation | None], now: float) -> list[int]:
    """The leases whose record names this replica as the holder."""
    return [i for i, lease in enumerate(seen) if next_action(lease, identity, now)
            is LeaseAction.RENEW]


def free(identity: str, seen: Sequence[Observation | None], now: float) -> list[int]:
    """The leases nobody holds for sure: absent, released, or unchanged for a whole duration."""
    return [i for i, lease in enumerate(seen) if next_action(lease, identity, now)
            in (LeaseAction.CREATE, LeaseAction.TAKE_OVER)]


def live_replicas(identity: str, members: Sequence[Observation | None], now: float,
                  member: bool) -> int:
    """The live replicas: the distinct others that hold a member lease, and this one when it
    is a `member` (its own lease's record may not show it yet: it was taken this round)."""
    others = {lease.lease.holder for lease in members if lease is not None
              and next_action(lease, identity, now) is LeaseAction.WAIT}
    return len(others) + (1 if member else 0)


@dataclass(frozen=True)
class LeasePlan:
    keep: tuple[int, ...]  # held, renewed this round
    take: tuple[int, ...]  # free, asked for this round
    give_up: tuple[int, ...]  # held, released this round


def plan(identity: str, shards: Sequence[Observation | None], replicas: int,
         member: bool, now: float) -> LeasePlan:
    """This round's moves. A member takes free leases up to its fair share among `replicas`,
    and gives up one lease a round above it (gradually, so the others can take them in turn); a
    replica that is not a member (more replicas than leases) takes none and gives up one a
    round."""
    mine = preference(identity, held(identity, shards, now))
    share = fair_share(len(shards), replicas) if member else 0
    excess = mine[share:]
    give_up = tuple(excess[-1:])
    wanted = max(0, share - len(mine))
    take = tuple(preference(identity, free(identity, shards, now))[:wanted])
    return LeasePlan(tuple(lease for lease in mine if lease not in give_up), take, give_up)


def member_step(identity: str, members: Sequence[Observation | None],
                now: float) -> int | None:
    """The member lease to renew or take this round: the one held, else the first free one in
    this replica's order; None when every one is held by another live replica."""
    mine = held(identity, members, now)
    if mine:
        return mine[0]
    found = preference(identity, free(identity, members, now))
    return found[0] if found else None
