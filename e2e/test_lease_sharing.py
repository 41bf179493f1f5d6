"""Services shared out over shard Leases (`run --lease-shards K`) by two operator processes:
every service is decided by exactly one replica, the one holding its shard, and once a replica
is killed its services are decided by the other after the shard Leases expire (measured)."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from adaptive_operator.domain.common.lease_shards import shard_of
from operator_process import OperatorProcess
from test_adaptive_service import service_yaml

from conftest import Cluster, module_tag
from support import deployment_yaml, wait_until

SHARDS = 6
SERVICES = 12
LEASE_SECONDS = 15  # the elector's lease duration


def held(process: OperatorProcess) -> frozenset[int] | None:
    """The shards the replica's /healthz says it holds (None: it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.health_port}/healthz",
                                    timeout=2) as response:
            text = str(json.load(response).get("shards", ""))
    except OSError:
        return None
    return frozenset(int(shard) for shard in text.split(",") if shard)


def decisions(process: OperatorProcess, ns: str, names: list[str]) -> dict[str, float]:
    """Each service's decisions so far on this replica (every reason summed)."""
    found = dict.fromkeys(names, 0.0)
    for line in process.metrics().splitlines():
        if line.startswith("adaptive_decisions_total{") and f'namespace="{ns}"' in line:
            head, value = line.rsplit(" ", 1)
            name = head.split('name="', 1)[1].split('"', 1)[0]
            if name in found:
                found[name] += float(value)
    return found


@pytest.fixture
def replicas(cluster: Cluster, crds: Cluster) -> Iterator[list[OperatorProcess]]:
    lease = f"e2e-shards-{uuid.uuid4().hex[:6]}"
    args = ("--namespace", f"e2e-{module_tag(__name__)}-*", "--lease-shards", str(SHARDS))
    made = [OperatorProcess(f"lease-shards-{which}", args=args, lease_name=lease)
            for which in ("a", "b")]
    try:
        for process in made:
            process.start(wait_for="active")
        yield made
    finally:
        for process in made:
            process.stop()


def split_evenly(a: OperatorProcess, b: OperatorProcess) -> tuple[frozenset[int], frozenset[int]]:
    def settled() -> tuple[frozenset[int], frozenset[int]] | None:
        mine, theirs = held(a), held(b)
        if mine is None or theirs is None or mine & theirs or len(mine | theirs) != SHARDS:
            return None
        return (mine, theirs) if len(mine) == len(theirs) == SHARDS // 2 else None

    return wait_until(settled, 120, "the two replicas to hold half the shards each")


def apply_services(cluster: Cluster, namespace: str, names: list[str]) -> None:
    for name in names:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=deployment_yaml(cluster, name))
        cluster.kubectl("apply", "-n", namespace, "-f", "-",
                        stdin=service_yaml(name, "vector(1)", mode="DryRun"))


def check_each_decided_by_its_shards_replica(
        a: OperatorProcess, b: OperatorProcess, namespace: str, names: list[str],
        shards_a: frozenset[int], shards_b: frozenset[int]) -> None:
    before = (decisions(a, namespace, names), decisions(b, namespace, names))

    def every_service_decided() -> tuple[dict[str, float], dict[str, float]] | None:
        now = (decisions(a, namespace, names), decisions(b, namespace, names))
        grew = [sum(after[name] > earlier[name] for after, earlier in zip(now, before,
                                                                           strict=True))
                for name in names]
        return now if all(grew) else None

    after = wait_until(every_service_decided, 120, "every service decided")
    assert (held(a), held(b)) == (shards_a, shards_b), "the shards moved during the window"
    for name in names:
        by_a = after[0][name] > before[0][name]
        by_b = after[1][name] > before[1][name]
        assert by_a != by_b, f"{name} decided by both replicas or by none"
        assert by_a == (shard_of(namespace, name, SHARDS) in shards_a), name


def check_failover(a: OperatorProcess, b: OperatorProcess, namespace: str, names: list[str],
                   shards_b: frozenset[int]) -> None:
    """b killed: a takes its shards once their leases expire, then decides its services."""
    theirs = [name for name in names if shard_of(namespace, name, SHARDS) in shards_b]
    assert theirs
    killed_at = time.monotonic()
    b.kill()
    wait_until(lambda: held(a) == frozenset(range(SHARDS)), 60, "a to take b's shards")
    took = time.monotonic() - killed_at
    start = decisions(a, namespace, theirs)
    wait_until(lambda: all(count > start[name] for name, count in
                           decisions(a, namespace, theirs).items()), 60,
               "a to decide b's services")
    decided = time.monotonic() - killed_at
    print(f"failover: shards taken {took:.1f} s, every service decided {decided:.1f} s after "
          f"the kill (lease {LEASE_SECONDS} s)")
    # A lease expires a whole duration after its last renewal was first seen: never sooner.
    assert took > LEASE_SECONDS - 2 * 2.0


def test_each_service_is_decided_by_the_replica_of_its_shard_and_moves_when_it_dies(
        cluster: Cluster, namespace: str, replicas: list[OperatorProcess]) -> None:
    a, b = replicas
    names = [f"svc-{index}" for index in range(SERVICES)]
    apply_services(cluster, namespace, names)
    shards_a, shards_b = split_evenly(a, b)
    check_each_decided_by_its_shards_replica(a, b, namespace, names, shards_a, shards_b)
    check_failover(a, b, namespace, names, shards_b)
