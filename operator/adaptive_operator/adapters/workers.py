"""Worker threads shared fairly, so that one object cannot hold them all, and their heartbeats.

Blocking calls (the API server, Prometheus, model fitting) run in worker threads. Each call is
queued under the namespace it works for (`TENANT`, a context variable the handlers set; it
travels with `asyncio.to_thread`), and a free thread takes the queues in turn, one call each: a
namespace with a thousand slow calls queued delays another namespace's next call by at most one
call per thread, not by its whole backlog. Prometheus has a pool of its own (`run` builds it),
so a slow Prometheus fills only those threads.

Each pool records when it last finished a call; `stuck` says when calls have waited longer than
a limit while none finished (every thread hung), which fails /healthz.

At stop (`handlers/settings.py`'s cleanup) the calls still queued are cancelled and never run;
those already running finish, within `STOP_GRACE_SECONDS`: asyncio joins its default pool as
its loop closes, and a call that waits (a request to an API server gone away, for up to its
30-s read timeout) must not hold the process past Kubernetes' grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, TypeVar

from adaptive_operator.adapters.telemetry import WORKER_QUEUE_SECONDS, WORKER_RUN_SECONDS

T = TypeVar("T")
TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("adaptive_tenant", default="")
PROMETHEUS_THREADS = 16
# How long a stop waits for the calls already running. A status write takes a second or two on a
# busy API server; one still running after this is abandoned with the process (the next start
# observes and writes again), so that the stop fits in Kubernetes' default grace period (30 s)
# with room for kopf's own stop and the lease's release.
STOP_GRACE_SECONDS = 10.0


def _tenant_of(fn: Callable[..., Any]) -> str:
    """The tenant of a call handed over by `asyncio.to_thread` (its context rides along as
    `partial(context.run, ...)`), else of the submitting thread."""
    runner = getattr(fn, "func", None)
    context = getattr(runner, "__self__", None)
    if isinstance(context, contextvars.Context):
        return context.get(TENANT, "")
    return TENANT.get()


def call_name(fn: Callable[..., Any]) -> str:
    """The name of the function a submitted call runs, through the partials and the context's
    `run` that `asyncio.to_thread` and `on_pool` wrap it in (a label of the worker metric:
    which blocking calls the threads spend their time on)."""
    while isinstance(fn, functools.partial):
        inner = fn.func
        if isinstance(getattr(inner, "__self__", None), contextvars.Context) and fn.args:
            fn = fn.args[0]  # Context.run(fn, *args)
        else:
            fn = inner
    return str(getattr(fn, "__name__", type(fn).__name__))


class _Call:
    def __init__(self, future: Future[Any], call: Callable[[], Any], queued: float) -> None:
        self.future, self.call, self.queued = future, call, queued
        self.name = call_name(call)


class FairExecutor(ThreadPoolExecutor):
    """A thread pool with one FIFO queue per tenant, served round-robin. (A ThreadPoolExecutor
    only because asyncio's default executor must be one; it runs its own threads.)"""

    def __init__(self, workers: int, name: str,
                 clock: Callable[[], float] = time.monotonic) -> None:  # no super(): own threads
        self._clock = clock
        self.name = name
        self._queues: OrderedDict[str, deque[_Call]] = OrderedDict()
        self._ready = threading.Condition()
        self._closed = False
        self._stopping = False  # `stop`: calls are cancelled instead of queued
        self.finished_at = clock()  # the heartbeat: when a call last finished
        self._workers = [threading.Thread(target=self._work, daemon=True, name=f"{name}-{i}")
                         for i in range(workers)]
        for thread in self._workers:
            thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        call = _Call(future, functools.partial(fn, *args, **kwargs), self._clock())
        with self._ready:
            if self._closed:
                raise RuntimeError("cannot schedule new calls after shutdown")
            if self._stopping:
                future.cancel()
                return future
            self._queues.setdefault(_tenant_of(fn), deque()).append(call)
            self._ready.notify()
        return future

    def _next(self) -> _Call | None:
        with self._ready:
            while not self._queues and not self._closed:
                self._ready.wait()
            if not self._queues:
                return None
            tenant, queue = self._queues.popitem(last=False)
            call = queue.popleft()
            if queue:  # to the back of the line: the next call goes to another tenant
                self._queues[tenant] = queue
            return call

    def _work(self) -> None:
        while (call := self._next()) is not None:
            if not call.future.set_running_or_notify_cancel():
                continue
            started = self._clock()
            WORKER_QUEUE_SECONDS.observe(started - call.queued)
            try:
                call.future.set_result(call.call())
            except BaseException as err:
                call.future.set_exception(err)
            finally:
                self.finished_at = self._clock()
                WORKER_RUN_SECONDS.labels(self.name, call.name).observe(
                    self.finished_at - started)

    def oldest_wait(self) -> float:
        """Seconds the oldest queued call has waited (0 with none queued)."""
        with self._ready:
            oldest = min((q[0].queued for q in self._queues.values()), default=None)
        return 0.0 if oldest is None else self._clock() - oldest

    def stuck(self, limit: float) -> bool:
        """Calls waited over `limit` seconds and none finished for as long."""
        return self.oldest_wait() > limit and self._clock() - self.finished_at > limit

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False,
                 grace: float = STOP_GRACE_SECONDS) -> None:
        """No new calls; with `cancel_futures` the queued ones are cancelled (never run); with
        `wait`, until every thread is done or `grace` seconds have passed (the threads are
        daemons: one still busy then does not keep the process alive)."""
        with self._ready:
            self._closed = True
            if cancel_futures:
                self._cancel_queued()
            self._ready.notify_all()
        if wait:
            self._join(grace)

    def stop(self) -> None:
        """The process is stopping: the calls queued, and any submitted from now on, are
        cancelled and never run (their callers see a cancellation, as when their task is
        cancelled, not an error: a late call is no fault); the running ones finish. Unlike
        `shutdown`, nothing raises for a caller still about."""
        with self._ready:
            self._stopping = True
            self._cancel_queued()

    def _cancel_queued(self) -> None:
        for queue in self._queues.values():
            for call in queue:
                call.future.cancel()
        self._queues.clear()

    def _join(self, grace: float) -> None:
        deadline = time.monotonic() + grace  # real time: a thread's join cannot take a fake clock
        for thread in self._workers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


class LoopHeartbeat:
    """Beats on the event loop every `period` seconds; `stuck` when it has not for `limit`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.beat = clock()

    async def run(self, period: float = 1.0) -> None:
        while True:
            self.beat = self._clock()
            await asyncio.sleep(period)

    def stuck(self, limit: float) -> bool:
        return self._clock() - self.beat > limit


def prometheus_pool() -> FairExecutor:
    """Prometheus's own threads (`run` builds one and hands it to what queries Prometheus)."""
    return FairExecutor(PROMETHEUS_THREADS, "prometheus")


async def on_pool(pool: Executor | None, fn: Callable[..., T], /, *args: Any) -> T:
    """`asyncio.to_thread`, on `pool`'s threads (None: the loop's default pool); the tenant
    rides along."""
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(pool, call)


class FairGate:
    """At most `size` holders at once; the waiters queue per tenant (`TENANT`) and are let in
    round-robin, one from each tenant in turn, as `FairExecutor` serves its calls: a tenant
    with a thousand waiting delays another tenant's next one by one turn, not its backlog."""

    def __init__(self, size: int = 1) -> None:
        self._free = size
        self._queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        await self._enter(TENANT.get())
        try:
            yield
        finally:
            self._leave()

    async def _enter(self, tenant: str) -> None:
        if self._free > 0:  # free places only while nobody waits (`_leave` hands them on)
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(tenant, deque())
        queue.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._leave()  # let in, then cancelled before it ran: the place goes on
            else:
                self._drop(tenant, turn)
            raise

    def _drop(self, tenant: str, turn: asyncio.Future[None]) -> None:
        queue = self._queues.get(tenant)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._queues[tenant]

    def _leave(self) -> None:
        """The place to the next tenant's first waiter, that tenant to the back of the line.
        A cancelled waiter drops itself from its queue when it next runs; until then its
        future is already cancelled, and is passed over here (a holder may leave first)."""
        while self._queues:
            tenant, queue = self._queues.popitem(last=False)
            turn = queue.popleft()
            if queue:
                self._queues[tenant] = queue
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1

    def waiting(self) -> dict[str, int]:
        """How many wait, by tenant."""
        return {tenant: len(queue) for tenant, queue in self._queues.items()}
