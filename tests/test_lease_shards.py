"""Services shared out over K shard Leases: the stable hash, the fair share, and each round's
plan of what a replica keeps, takes and gives up (pure; the clock is a parameter)."""

from __future__ import annotations

import binascii

import pytest

from adaptive_operator.cli import build_parser
from adaptive_operator.domain.common.leadership import LeaseState, Observation
from adaptive_operator.domain.common.lease_shards import (
    MAX_LEASE_SHARDS,
    fair_share,
    live_replicas,
    member_step,
    plan,
    preference,
    shard_of,
)

ME, OTHER = "pod-a", "pod-b"
NOW = 1000.0


def lease(holder: str | None, since: float = NOW - 1.0, version: str = "1") -> Observation:
    return Observation(LeaseState(holder, version, 15.0), since)


def test_an_objects_shard_is_the_shard_sets_crc16_of_its_key_and_stable() -> None:
    assert shard_of("prod", "web", 8) == binascii.crc_hqx(b"prod/web", 0) % 8
    assert shard_of("prod", "web", 8) == shard_of("prod", "web", 8)
    assert shard_of("prod", "web", 1) == 0


def test_services_spread_over_every_shard() -> None:
    counts = [0] * 8
    for index in range(800):
        counts[shard_of(f"team-{index % 7}", f"svc-{index}", 8)] += 1
    assert min(counts) > 60 and max(counts) < 140  # 100 each on average


@pytest.mark.parametrize(("shards", "replicas", "share"), [
    (8, 1, 8), (8, 2, 4), (8, 3, 3), (5, 2, 3), (4, 8, 1), (4, 0, 4)])
def test_fair_share_is_the_ceiling(shards: int, replicas: int, share: int) -> None:
    assert fair_share(shards, replicas) == share


def test_a_lone_member_takes_every_free_lease() -> None:
    moves = plan(ME, [None, lease(""), lease(OTHER, NOW - 16.0), lease(OTHER, NOW - 16.0)],
                 replicas=1, member=True, now=NOW)
    assert sorted(moves.take) == [0, 1, 2, 3] and moves.give_up == () and moves.keep == ()


def test_a_lease_another_live_replica_holds_is_never_taken() -> None:
    moves = plan(ME, [lease(OTHER), lease(OTHER), None, None], replicas=1, member=True, now=NOW)
    assert sorted(moves.take) == [2, 3]


def test_a_holder_above_its_share_gives_up_one_lease_a_round() -> None:
    mine = [lease(ME) for _ in range(8)]
    moves = plan(ME, mine, replicas=2, member=True, now=NOW)
    assert len(moves.give_up) == 1 and len(moves.keep) == 7 and moves.take == ()
    assert moves.give_up[0] == preference(ME, list(range(8)))[-1]  # its least preferred


def test_at_its_share_a_replica_keeps_what_it_holds_and_takes_nothing() -> None:
    shards = [lease(ME), lease(ME), lease(OTHER), None, None]
    moves = plan(ME, shards, replicas=2, member=True, now=NOW)  # share: ceil(5 / 2) = 3
    assert sorted(moves.keep) == [0, 1] and len(moves.take) == 1 and moves.give_up == ()


def test_a_replica_that_is_not_a_member_takes_none_and_gives_back_gradually() -> None:
    moves = plan(ME, [lease(ME), lease(ME), None], replicas=3, member=False, now=NOW)
    assert moves.take == () and len(moves.give_up) == 1 and len(moves.keep) == 1


def plan_round(holders: list[str | None], who: str) -> None:
    """`who`'s planner over the table of holders, each of its writes applied to it."""
    seen = [lease(holder) if holder else lease("") for holder in holders]
    moves = plan(who, seen, replicas=2, member=True, now=NOW)
    for shard in moves.take:
        holders[shard] = who
    for shard in moves.give_up:
        holders[shard] = ""


def stale_leases(holders: list[str | None], dead: str) -> list[Observation]:
    """The table's leases, the dead holder's last renewed 20 s ago."""
    return [lease(holder, since=NOW - 20.0) if holder == dead else lease(holder)
            for holder in holders]


def test_two_replicas_converge_to_half_each_and_a_dead_ones_share_moves() -> None:
    """Rounds of both planners over one table of holders (each write succeeds): a newcomer
    gets its share while the first gives up its excess, and none is ever held twice."""
    holders: list[str | None] = [ME] * 8
    for _ in range(8):
        for who in (OTHER, ME):
            plan_round(holders, who)
    assert holders.count(ME) == 4 and holders.count(OTHER) == 4
    moves = plan(ME, stale_leases(holders, OTHER), replicas=1, member=True, now=NOW)
    assert sorted(moves.take) == [i for i, holder in enumerate(holders) if holder == OTHER]


def test_live_replicas_are_distinct_holders_of_live_member_leases() -> None:
    members = [lease(OTHER), lease(OTHER, version="2"), lease("pod-c", NOW - 16.0), None]
    assert live_replicas(ME, members, NOW, member=True) == 2
    assert live_replicas(ME, members, NOW, member=False) == 1


def test_a_replica_renews_its_member_lease_else_takes_a_free_one() -> None:
    assert member_step(ME, [lease(OTHER), lease(ME)], NOW) == 1
    assert member_step(ME, [lease(OTHER), None], NOW) == 1
    assert member_step(ME, [lease(OTHER), lease(OTHER)], NOW) is None


@pytest.mark.parametrize("value", ["0", str(MAX_LEASE_SHARDS + 1)])
def test_the_number_of_shards_is_bounded(value: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--lease-shards", value])
    assert build_parser().parse_args(
        ["run", "--lease-shards", str(MAX_LEASE_SHARDS)]).lease_shards == MAX_LEASE_SHARDS
