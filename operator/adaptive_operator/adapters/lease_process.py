"""The Leases' rounds in a process of their own: the leader's one Lease (`run
--leader-election true`) or the shard Leases (`--lease-shards K`).

Why: in a thread of the operator, a round (one list and up to K + 1 writes) waits for the
interpreter lock behind the event loop and the worker threads, and under a CPU limit it starves:
with 1,000 services at 0.10 of a core one round took 16 s, past the 10-s renewal deadline, and
the replica lost shards while it was alive and well (`benchmarks/results/scale_replicas.md`). The
leader's renewals, in a thread, were lost the same way 13 s after winning, while 5,000 services
started. A process of its own competes with the operator for the CPU only, not for its lock.

The child renews, the parent acts. They share one number per lease (the leader's: one): when it
was last renewed for sure (NaN: not held). The child's electors keep it there
(`LeaderElector(renewals=...)`), so a lease given up is cleared before its release is sent; the
parent's fences read it before every write, on the same machine clock. At exit the parent tells
the child to stop, and the child gives every lease back; a child whose parent died stops
renewing, and its leases expire.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass
from typing import Any, Protocol

from adaptive_operator import logs
from adaptive_operator.adapters import health, kube
from adaptive_operator.adapters.leader import (
    DURATION_SECONDS,
    LeaderElector,
    LeaderRounds,
    renew_deadline,
    renewal_in,
    renewed_within,
)
from adaptive_operator.adapters.lease_shards import ShardedLeases
from adaptive_operator.adapters.telemetry import (
    LEADER,
    LEASE_ROUND_SECONDS,
    LEASE_SHARD_HELD,
    LEASE_SHARDS_LAPSED,
)

log = logs.get(__name__)
ROUNDS, TOOK, LAPSED, BEAT = range(4)  # the child's figures, and the parent's last sign of life
# A parent silent this long is stopped (SIGSTOP, a debugger) or hung: the child renews nothing
# until it speaks again, so that its leases lapse and another replica acts, as they would if the
# renewals ran in the parent. It speaks every second (`PUBLISH_SECONDS`) from a thread, one write
# that needs the interpreter lock once; a round, which needs it for seconds, starved 16 s.
PARENT_SILENT_SECONDS = 15.0
PUBLISH_SECONDS = 1.0  # how often the parent says what it holds (metrics, /healthz)
STOP_SECONDS = 30.0  # how long the parent waits for the child to give its leases back
WAIT_SECONDS = 0.2  # how often a standby looks whether the child won the leader's lease


@dataclass(frozen=True)
class LeaseSpec:
    """What the child builds its leases from (sent to a new process, so plain values)."""

    namespace: str
    name: str
    identity: str
    shards: int
    log_level: str = "info"
    json_logs: bool = True
    duration_seconds: int = DURATION_SECONDS
    leader: bool = False  # one Lease, `name`, for one active replica (`shards` is then 1)


class Waits(Protocol):
    def wait(self, timeout: float | None = None) -> bool: ...


class Rounds(Protocol):
    retry: float
    took: float
    lapsed: int

    def step(self) -> None: ...

    def release(self) -> None: ...


def never() -> bool:
    return False


def rounds(leases: Rounds, stop: Waits, orphaned: Callable[[], bool],
           stats: MutableSequence[float], silent: Callable[[], bool] = never) -> None:
    """The child's work: a round every retry until `stop`, then every lease given back. Once
    the parent is gone nothing acts on the leases, so they are left to expire, as the parent's
    own would be: the child never outlives it for long. While the parent is `silent`, no
    round."""
    was_silent = False
    while True:
        is_silent = silent()
        if is_silent and not was_silent:  # said once, when it falls silent
            log.error("the operator process is not answering: its leases are left to lapse",
                      silent_seconds=PARENT_SILENT_SECONDS)
        if not is_silent:
            leases.step()
            stats[ROUNDS], stats[TOOK] = stats[ROUNDS] + 1, leases.took
            stats[LAPSED] = leases.lapsed
        was_silent = is_silent
        if orphaned():
            log.error("the operator process is gone: its leases are left to expire")
            return
        if stop.wait(leases.retry):
            leases.release()
            return


def serve(spec: LeaseSpec, renewals: MutableSequence[float], stats: MutableSequence[float],
          stop: Waits, parent: int) -> None:
    """The child's entry point."""
    # A terminal's Ctrl-C reaches the whole process group: the parent stops first, then us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure(spec.log_level, json_output=spec.json_logs)
    kube.load_config()
    rounds(leases_of(spec, renewals), stop, lambda: os.getppid() != parent, stats,
           lambda: time.monotonic() - stats[BEAT] > PARENT_SILENT_SECONDS)


def leases_of(spec: LeaseSpec, renewals: MutableSequence[float]) -> Rounds:
    if spec.leader:
        return LeaderRounds(LeaderElector(spec.namespace, spec.name, spec.identity,
                                          spec.duration_seconds, renewals=renewals))
    return ShardedLeases(spec.namespace, spec.name, spec.identity, spec.shards,
                         spec.duration_seconds, renewals=renewals)


class LeaseProcess:
    """The parent's side: the fences, what it holds, and the child's start and stop."""

    def __init__(self, spec: LeaseSpec, clock: Callable[[], float] = time.time,
                 target: Callable[..., None] = serve) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: the operator has threads
        self.renewals: MutableSequence[float] = context.Array(
            "d", [math.nan] * spec.shards, lock=False)
        self.stats: MutableSequence[float] = context.Array("d", 4, lock=False)
        self._stop = context.Event()
        self.duration, self.clock, self.leader = spec.duration_seconds, clock, spec.leader
        self.process: Any = context.Process(
            target=target, name="adaptive-leases", daemon=True,
            args=(spec, self.renewals, self.stats, self._stop, os.getpid()))
        self._lapsed = 0.0

    def may_write(self, shard: int) -> Callable[[], bool]:
        """May this replica act on shard `shard` now (the fence of that shard's client)?"""
        def renewed_recently() -> bool:  # as `LeaderElector.renewed_recently`, on the slot
            return renewed_within(renewal_in(self.renewals, shard), self.clock(), self.duration)

        return renewed_recently

    def held(self) -> tuple[int, ...]:
        return tuple(shard for shard in range(len(self.renewals)) if self.may_write(shard)())

    def start(self) -> None:
        self.beat()
        self.process.start()

    def beat(self) -> None:
        """Tell the child this process still runs (machine-wide monotonic seconds)."""
        self.stats[BEAT] = time.monotonic()

    def wait_held(self, stop: Waits) -> bool:
        """Wait until the child holds a lease (the leader's: this replica leads); False when
        `stop` is set or the child ended first."""
        while not self.held():
            self.beat()
            if not self.process.is_alive():
                log.error("the lease process ended", exitcode=self.process.exitcode)
                return False
            if stop.wait(WAIT_SECONDS):
                return False
        return True

    def keep(self, stop: threading.Event, on_lost: Callable[[], None]) -> None:
        """Say what is held every second until `stop`; if the child ends before, nothing
        renews this replica's leases any more, and the leader's lease is lost once its
        renewal deadline passed: `on_lost` (the operator stops)."""
        while not stop.wait(PUBLISH_SECONDS):
            held = self.publish()
            if not self.process.is_alive():
                log.error("the lease process ended", exitcode=self.process.exitcode)
                on_lost()
                return
            if self.leader and not held:
                log.error("lost the leadership", lease_round_seconds=round(self.stats[TOOK], 3),
                          renew_deadline_seconds=renew_deadline(self.duration))
                on_lost()
                return

    def publish(self) -> tuple[int, ...]:
        """Say what is held (metrics, /healthz), and return it."""
        self.beat()
        held = self.held()
        LEADER.set(1 if held else 0)
        if self.leader:
            health.set_role("leader" if held else "standby")
        else:
            for shard in range(len(self.renewals)):
                LEASE_SHARD_HELD.labels(str(shard)).set(1 if shard in held else 0)
            health.set_shards(held)
            health.set_role("active" if held else "standby")
        LEASE_ROUND_SECONDS.set(self.stats[TOOK])
        LEASE_SHARDS_LAPSED.inc(self.stats[LAPSED] - self._lapsed)
        self._lapsed = self.stats[LAPSED]
        return held

    def release(self) -> None:
        """Stop the child, which gives every lease back (waited for, up to STOP_SECONDS)."""
        self._stop.set()
        if self.process.pid is None:  # never started
            return
        self.process.join(STOP_SECONDS)
        if self.process.is_alive():
            log.warning("the lease process did not stop: killed, its leases will expire")
            self.process.kill()
            self.process.join()
