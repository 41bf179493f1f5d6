"""Operator-wide kopf settings, the namespace filter and the worker threads."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import Any, cast

import kopf

from adaptive_operator.adapters import health, workers
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.common.namespaces import in_scope
from adaptive_operator.handlers import runtime

# A metric value may be this share of the service's sync period old when another service's
# query already fetched it (Prometheus scrapes every 15-30 s in most clusters anyway).
ANSWER_AGE_FRACTION = 1.0 / 3.0
# Threads for blocking calls (API server, Prometheus, model fitting). Python's default (cores +
# 4: 6 here) left hundreds of services queueing for a thread while calls waited on the network;
# 32 still queued status writes for seconds at 1,000 services on a busy API server (a waiting
# thread costs memory, not CPU).
WORKER_THREADS = 64
# The loop or a pool silent this long fails /healthz (a model fit takes seconds, not this).
STUCK_SECONDS = 120.0


def served(namespace: str | None, memo: Any, **_: Any) -> bool:
    """kopf `when=` filter of every handler: is this object's namespace one we serve?"""
    return in_scope(namespace, runtime.of(memo).settings.namespace_patterns)


def answer_age(spec: AdaptiveServiceSpec) -> float:
    """How old a shared Prometheus answer this service accepts."""
    return float(spec.sync_period_seconds) * ANSWER_AGE_FRACTION


class StatuslessDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's essence of an object (what its change detection compares, on every watch
    event), built without first deep-copying what kopf then drops anyway: the status, and the
    metadata but its labels and annotations. Our status changes every sync, and the metadata's
    managedFields grow with it (3.0 of a live service's 6.4 KB, its status 2.2 KB): those copies
    were most of kopf's CPU per watch event with 1,000 services
    (`benchmarks/results/scale_hotspots.md`)."""

    def build(self, *, body: kopf.Body,
              extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        fields = list(extra_fields or [])
        return super().build(body=_essential(body, fields), extra_fields=fields)


KEPT_METADATA = ("labels", "annotations")  # what kopf's essence keeps of the metadata


def _essential(body: kopf.Body, fields: list[Any]) -> kopf.Body:
    if fields:  # a handler on a field kopf would drop (in status, say) needs it: keep all
        return body
    metadata = body.get("metadata") or {}
    kept: dict[str, Any] = dict(body)
    kept.pop("status", None)
    kept["metadata"] = {k: metadata[k] for k in KEPT_METADATA if k in metadata}
    return kopf.Body(cast(kopf.RawBody, kept))


@kopf.on.startup()
def configure_kopf(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress and the last-handled spec live in annotations of our group, not in status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="adaptive.dev")
    settings.persistence.diffbase_storage = StatuslessDiffBase(
        prefix="adaptive.dev", key="last-handled-configuration")
    # kopf's own log lines become Events from warnings up only (our decisions are posted by
    # the handlers, through the fenced client).
    settings.posting.level = logging.WARNING
    # A watch that breaks or hangs is restarted well before a proxy or the API server drops it.
    settings.watching.server_timeout = 240
    settings.watching.client_timeout = 270
    settings.networking.request_timeout = 30


@kopf.on.startup()
async def follow_stop(memo: kopf.Memo, logger: Any, **_: Any) -> None:
    """The daemons learn that the operator exits as soon as a stop signal arrives, or kopf's
    stop begins (`runtime.carries_on`), not when kopf tells each of them, one by one. The
    signal handlers installed here wrap asyncio's, so they must come after kopf adds those (else
    kopf's replace them, and a stop goes through kopf's signal alone, as before): kopf adds them
    as its tasks start, before its startup handlers get this far (the benchmark's logs show our
    flag raised: `Stop-flag is set`)."""
    for problem in runtime.follow_exit(runtime.of(memo).lifecycle):
        logger.warning(problem)


@kopf.on.startup()
async def fair_thread_pool(memo: kopf.Memo, **_: Any) -> None:
    """Worker threads shared fairly between namespaces, and heartbeats of the loop and the
    pools for /healthz (a stuck liveness probe restarts the process)."""
    pool = memo["workers"] = workers.FairExecutor(WORKER_THREADS, "adaptive")
    asyncio.get_running_loop().set_default_executor(pool)
    heartbeat = workers.LoopHeartbeat()
    memo["heartbeat"] = asyncio.create_task(heartbeat.run())  # kept, or it may be collected
    health.watch("eventLoop", lambda: "no beat" if heartbeat.stuck(STUCK_SECONDS) else None)
    pools = {"workers": pool, "prometheusWorkers": runtime.of(memo).prometheus_pool}
    for name, executor in pools.items():
        if executor is not None:
            health.watch(name, functools.partial(_pool_check, executor))


@kopf.on.cleanup()
async def stop_workers(memo: kopf.Memo, **_: Any) -> None:
    """At stop, once kopf has stopped every handler and daemon. The heartbeat ends: kopf gives
    any task still running after its own have stopped 5 s to end before it cancels it, and the
    heartbeat never ends by itself, so every stop took 5 s longer. The calls still queued for
    a worker thread are dropped (a backfill's fit, a read for a sync that will not happen: the
    next start does them again); those already running, a status write among them, finish
    while asyncio joins the pool as the loop closes (`workers.STOP_GRACE_SECONDS` at most)."""
    beating = memo.get("heartbeat")
    if isinstance(beating, asyncio.Task):
        beating.cancel()
    for pool in (memo.get("workers"), runtime.of(memo).prometheus_pool):
        if isinstance(pool, workers.FairExecutor):
            pool.stop()


def _pool_check(executor: workers.FairExecutor) -> str | None:
    if executor.stuck(STUCK_SECONDS):
        return f"calls waited {executor.oldest_wait():.0f} s and none finished"
    return None
