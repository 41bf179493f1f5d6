"""AdaptiveService: one daemon per object runs observe -> plan -> apply every sync period.

A daemon (not a timer) because the period is per object and changes with the spec; kopf stops it
when the object is deleted. Nothing is returned to kopf (it would store it in status).
"""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from adaptive_operator import logs
from adaptive_operator.adapters import kube, telemetry, workers
from adaptive_operator.api.adaptive_service import PLURAL
from adaptive_operator.api.base import GROUP, VERSION
from adaptive_operator.domain.scaling import sync
from adaptive_operator.handlers import forecast_report, runtime, settings, specs
from adaptive_operator.handlers.scaling_apply import apply
from adaptive_operator.handlers.scaling_observe import Memory, observe

log = logs.get(__name__)
MAX_BACKOFF_SECONDS = 300.0


@kopf.daemon(GROUP, VERSION, PLURAL, when=settings.served, cancellation_timeout=10.0)
async def scaling_daemon(name: str, namespace: str | None, body: kopf.Body,
                         stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    assert namespace is not None  # the resource is namespaced
    workers.TENANT.set(namespace)  # its blocking calls queue with its namespace's (fair share)
    logs.about(namespace, name)  # and what it logs, its warm-ups' too, names the service
    rt = runtime.of(memo).for_object(namespace, name)
    failures = 0
    # In the object's own memo, so kopf drops it with the object; each daemon starts afresh.
    memory = memo.scaling = Memory()
    try:
        while runtime.carries_on(stopped, rt):
            started = rt.clock.monotonic()
            period, ok = await guarded_sync(namespace, name, body, memory, rt)
            elapsed = rt.clock.monotonic() - started
            telemetry.RECONCILE_SECONDS.observe(elapsed)
            failures = 0 if ok else failures + 1
            await runtime.pause(stopped, backoff(period, failures, elapsed))
    finally:
        forget(namespace, name, body, memory)


def forget(namespace: str, name: str, body: kopf.Body, memory: Memory) -> None:
    """The service is gone (or this daemon stops): its histories and gauges go too."""
    memory.forget()
    spec = body.get("spec", {}) or {}
    quantile = float((spec.get("predictive") or {}).get("quantile", 0.8))
    forecast_report.unpublish(namespace, name,
                              [str(m.get("name")) for m in spec.get("metrics", [])], quantile)


def backoff(period: float, failures: int, elapsed: float = 0.0) -> float:
    """The wait until the next sync: syncs start every period (the forecast's history is one row
    per period, so a slow sync must not push every later row back); after failures the period
    doubles per consecutive failure, capped at five minutes."""
    if failures == 0:
        return max(0.0, period - elapsed)
    return min(period * 2.0 ** min(failures, 10), max(period, MAX_BACKOFF_SECONDS))


async def guarded_sync(namespace: str, name: str, body: kopf.Body, memory: Memory,
                       rt: runtime.Runtime) -> tuple[float, bool]:
    """A sync that the API server going away (a restart, a broken connection) fails, not ends:
    the daemon backs off and carries on, instead of kopf restarting it a minute later."""
    period = float((body.get("spec") or {}).get("syncPeriodSeconds") or 15)
    if not rt.may_act():  # a paused leader may have been replaced: do nothing
        memory.forget()
        return period, True
    try:
        with rt.syncs.running(namespace, name):  # a coupled downstream reads after it
            return await sync_once(namespace, name, body, memory, rt)
    except kube.API_ERRORS as err:  # a refused write is no failure: no back-off
        return period, not runtime.sync_failed("sync", namespace, name, err)


async def sync_once(namespace: str, name: str, body: kopf.Body, memory: Memory,
                    rt: runtime.Runtime) -> tuple[float, bool]:
    """Observe, plan, apply; returns the period to wait and whether it fully succeeded."""
    try:
        spec, memory.spec = specs.validated(body, memory.spec)
    except ValidationError as err:
        # The CRD schema refuses most of this; what slips through is reported, never acted on.
        patch = sync.invalid_spec(dict(body.get("status", {}) or {}),
                                  body.meta.get("generation"), str(err), rt.clock.now())
        if patch is not None:
            await rt.status.patch_status(PLURAL, namespace, name, patch)
        return 60.0, False
    snapshot = await observe(namespace, name, spec, body, memory, rt)
    planned = sync.plan(spec, snapshot, memory.kept, rt.clock.now())
    await apply(namespace, name, body, spec, snapshot, planned, memory, rt)
    return float(spec.sync_period_seconds), planned.ok
