"""The operator's process-wide state and its ports, built once by `adaptive-operator run`.

kopf hands it to every handler in its memo (`memo.runtime`); a test builds one from fakes instead
of patching module functions. What belongs to one object (a service's scaling memory, its
healing watcher) lives in that object's own memo, a copy kopf makes per object and drops with it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from kopf import DaemonStopped, DaemonStoppingReason

from adaptive_operator import logs
from adaptive_operator.adapters import prometheus, telemetry
from adaptive_operator.adapters.kube import HpaLists, NotLeading
from adaptive_operator.adapters.prometheus import Sample, Target
from adaptive_operator.adapters.prometheus_access import PrometheusAccess
from adaptive_operator.adapters.prometheus_http import IoLoop
from adaptive_operator.adapters.query_batch import QueryBatcher
from adaptive_operator.adapters.shard_cluster import ShardSetObjects
from adaptive_operator.adapters.workers import FairExecutor
from adaptive_operator.domain.common.lease_shards import shard_of
from adaptive_operator.handlers.ports import (
    ClusterWorkloads,
    EventPoster,
    OwnRecords,
    StatusWriter,
    Workloads,
)
from adaptive_operator.handlers.running_syncs import RunningSyncs
from adaptive_operator.handlers.warmup import WarmUps

log = logs.get(__name__)


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds: what is written to status, ledgers and records."""

    def monotonic(self) -> float:
        """Seconds for measuring durations (never goes back)."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ShardStore(Protocol):
    """The ShardSet's owned objects (adapters.shard_cluster.ShardCluster; blocking calls)."""

    def observe(self, namespace: str, name: str, config_map: str) -> ShardSetObjects: ...

    def write_routing(self, namespace: str, manifest: Any, version: str | None) -> str: ...

    def create(self, namespace: str, manifest: Any) -> None: ...

    def delete(self, namespace: str, kind: str, name: str) -> None: ...

    def delete_owned(self, namespace: str, kind: str, name: str, owner_uid: str) -> bool: ...

    def patch_stateful_set(self, namespace: str, name: str, json_patch: list[Any]) -> None: ...


class Totals(Protocol):
    """A metric's value now (adapters.query_batch.QueryBatcher shares one query between the
    services that send it)."""

    async def total(self, url: Target, query: str, max_age: float) -> Sample: ...


LoadReader = Callable[[str], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class OperatorLoad:
    """Per-shard load: a PromQL instant vector from the operator-wide Prometheus (a LoadReader),
    read on `pool`'s threads (None: the loop's default pool)."""

    access: PrometheusAccess = field(default_factory=PrometheusAccess)
    pool: Executor | None = None
    io: IoLoop | None = None  # Prometheus's connection pool (None: one per read)

    async def __call__(self, query: str) -> list[dict[str, Any]]:
        endpoint = await asyncio.to_thread(self.access.operator_endpoint)
        return await prometheus.query_vector(endpoint, query, self.pool, self.io)


def always() -> bool:
    return True


def never() -> bool:
    return False


@dataclass
class Lifecycle:
    """What every object's daemons share about the process: whether it is exiting; and kopf's
    stop flag (`kopf.run(stop_flag=...)`), which a stop signal sets (`follow_signals`)."""

    exiting: bool = False
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    # kopf SIGKILLs a process whose stop by signal hangs, 10 minutes in, but not a stop by its
    # stop flag, which our signal handler raises: the same last resort, armed by that handler.
    last_resort_seconds: float | None = 600.0
    last_resort: threading.Timer | None = None

    def kill_if_hung(self) -> None:
        """Arm (once) the SIGKILL of this process, `last_resort_seconds` from now."""
        if self.last_resort_seconds is None or self.last_resort is not None:
            return
        self.last_resort = threading.Timer(self.last_resort_seconds, os.kill,
                                           (os.getpid(), signal.SIGKILL))
        self.last_resort.daemon = True  # a process that exits in time is not held by it
        self.last_resort.start()


# kopf's task that ends when a stop is asked for (a signal, or its stop flag): its end is the
# first sign that the operator exits, tens of seconds before kopf tells the daemons under load.
KOPF_STOP_TASK = "stop-flag checker"


def follow_stop(lifecycle: Lifecycle) -> bool:
    """`lifecycle` says exiting as soon as kopf's stop begins; whether kopf's task was found
    (if a kopf release renames it, the daemons still stop as kopf tells them, only later)."""
    found = [t for t in asyncio.all_tasks() if t.get_name() == KOPF_STOP_TASK]
    for task in found:
        task.add_done_callback(lambda _: setattr(lifecycle, "exiting", True))
    return bool(found)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def follow_signals(lifecycle: Lifecycle,
                   signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> bool:
    """On a stop signal, `lifecycle` says exiting at once, and kopf's stop flag is raised.
    asyncio hands a signal to kopf's loop through a byte its C handler writes to the loop's
    self-pipe, the same pipe every worker thread's finished call writes a byte to: a loop busy
    for seconds (a CPU limit, thousands of services) finds it full, the signal's byte is
    dropped, and kopf never learns of it (the process was killed 60 s after SIGTERM, its daemons
    deciding on; `benchmarks/results/scale_replicas.md`). Python runs a signal's own handler in
    the main thread, whatever the pipe: this one says exiting there and queues the raising of
    kopf's stop flag on the loop, then calls the handler it replaced. Whether it could be
    installed (only from the main thread, in the loop kopf runs). A stop that hangs is ended by
    SIGKILL (`Lifecycle.kill_if_hung`)."""
    loop = asyncio.get_running_loop()
    previous = {each: signal.getsignal(each) for each in signals}
    if not all(callable(handler) for handler in previous.values()):
        return False  # no handler of asyncio's to wrap yet: kopf's would replace ours
    try:
        for each, handler in previous.items():
            signal.signal(each, _exiting_then(lifecycle, loop, handler))
    except ValueError:  # not the main thread: the daemons stop as kopf tells them
        return False
    return True


def _exiting_then(lifecycle: Lifecycle, loop: asyncio.AbstractEventLoop,
                  previous: Any) -> Callable[[int, Any], None]:
    def on_signal(signum: int, frame: Any) -> None:
        lifecycle.exiting = True
        # Queued even when the pipe is full (its byte only wakes an idle loop).
        loop.call_soon_threadsafe(lifecycle.stop.set)
        lifecycle.kill_if_hung()
        previous(signum, frame)

    return on_signal


def follow_exit(lifecycle: Lifecycle) -> list[str]:
    """Follow the stop signals and kopf's stop; what could not be followed, for the log."""
    problems = []
    if not follow_stop(lifecycle):
        problems.append("kopf's stop cannot be followed: the daemons stop as kopf tells them")
    if not follow_signals(lifecycle):
        problems.append("stop signals cannot be followed (not the main thread, or kopf has "
                        "not added its signal handlers yet): the daemons stop once kopf's stop "
                        "begins")
    return problems


async def pause(stopped: DaemonStopped, seconds: float) -> None:
    """A daemon's wait until its next period. Not kopf's `await stopped.wait(seconds)`: each
    call makes a task and a `wait_for` whose timeout, a period later (by then old enough for
    the collector's oldest generation), leaves a cycle of some 26 objects (the task, its
    TimeoutError, the traceback's frames) that only a full collection frees. Every replica paid
    that for every service twice a period, its own or not: on each of two replicas sharing
    2,000 services, 157,000 tracebacks and 31,000 TimeoutErrors among 2.2 million objects, and
    full collections of 2.3-2.5 s per period under 0.2 of a core
    (benchmarks/results/scale_replicas.md). kopf cancels a daemon at once when its object goes
    or the operator stops (a cancellation timeout and no back-off), so a sleep ends then too."""
    if not stopped:
        await asyncio.sleep(seconds)


def carries_on(stopped: DaemonStopped, rt: Runtime) -> bool:
    """Whether a daemon's loop goes on: it is not stopped, and the operator is not exiting.
    kopf stops the daemons of an exiting operator one by one: for a thousand services, on a
    loop kept busy by the others' syncs, that took over 50 s under a CPU limit, and the daemons
    not yet told went on deciding and writing meanwhile (benchmarks/results/scale_replicas.md).
    So the first daemon told that the operator exits tells the others, at their next period."""
    reason = stopped.reason
    if reason is not None and reason & DaemonStoppingReason.OPERATOR_EXITING:
        rt.lifecycle.exiting = True
    return not stopped and not rt.lifecycle.exiting


@dataclass(frozen=True)
class OperatorSettings:
    # Namespace patterns the handlers filter by (kopf then watches cluster-wide): see
    # domain/common/namespaces.py for why kopf's own pattern support is not used.
    namespace_patterns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Runtime:
    shards: ShardStore
    settings: OperatorSettings = OperatorSettings()
    clock: Clock = field(default_factory=SystemClock)
    # Which Prometheus a service may query, its credentials, and how its queries are scoped.
    prometheus: PrometheusAccess = field(default_factory=PrometheusAccess)
    # May this process act now? Without an election always; with one, only while its lease was
    # renewed within the deadline (a paused leader may have been replaced).
    may_act: Callable[[], bool] = always
    read_load: LoadReader = field(default_factory=OperatorLoad)
    totals: Totals = field(default_factory=QueryBatcher)
    hpas: HpaLists = field(default_factory=HpaLists)  # listed when the watch cache cannot say
    # History backfills and first fits, in the background and one at a time.
    warmups: WarmUps = field(default_factory=WarmUps)
    # Prometheus's own threads, which the readers above were given (watched by /healthz).
    prometheus_pool: FairExecutor | None = None
    # The AdaptiveServices' targets and pods; our objects' status, annotations and Events.
    workloads: Workloads = field(default_factory=ClusterWorkloads)
    status: StatusWriter = field(default_factory=OwnRecords)
    events: EventPoster = field(default_factory=OwnRecords)
    # With the services shared out over K shard Leases (`run --lease-shards K`, K > 1): one
    # runtime per shard, whose `may_act` and ports are fenced on that shard's Lease.
    lease_shards: tuple[Runtime, ...] = ()
    # Shared with the shards' runtimes (`replace` keeps the same object).
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    # The services' syncs in progress, for a coupled downstream to read its upstreams after
    # theirs (shared with the shards' runtimes too).
    syncs: RunningSyncs = field(default_factory=RunningSyncs)

    def for_object(self, namespace: str, name: str) -> Runtime:
        """The runtime that acts on object namespace/name: its shard's when the services are
        shared out over shard Leases (every write for it fenced on that Lease), else this."""
        if not self.lease_shards:
            return self
        return self.lease_shards[shard_of(namespace, name, len(self.lease_shards))]


def sync_failed(what: str, namespace: str, name: str, err: Exception) -> bool:
    """Logs and counts a sync that an error from the API server's client ended (`what`: "sync"
    or "healing sync"); whether it failed. A write the fencing refused (`NotLeading`: this
    replica's lease on the service, or its shard, lapsed) is no failure: the lease's new holder
    carries on, and this replica stops acting on the service at its next period."""
    if isinstance(err, NotLeading):
        telemetry.ERRORS.labels(namespace, name, "NotLeading").inc()
        log.info(f"{what} stopped: this replica no longer holds the service's lease",
                 namespace=namespace, name=name)
        return False
    telemetry.ERRORS.labels(namespace, name, "ApiUnavailable").inc()
    log.warning(f"{what} failed: the API server did not answer", namespace=namespace,
                name=name, error=logs.error_text(err))
    return True


def of(memo: Any) -> Runtime:
    """The runtime in kopf's memo (the operator's, or an object's copy of it)."""
    found = memo.get("runtime") if memo is not None else None
    if not isinstance(found, Runtime):
        raise RuntimeError("no runtime in kopf's memo: start the operator with "
                           "`adaptive-operator run`")
    return found
