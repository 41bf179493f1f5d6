"""Healing: a second daemon per AdaptiveService (only with `spec.healing.enabled`).

Each sync takes three steps. Observe (`healing_observe`): health metrics from Prometheus into a
bounded in-memory history, backfilled by range queries when the daemon starts; the target's pods
and rollout. Plan (`domain.healing.plan.decide`, pure): the ladder on the ledger of past actions
in the `adaptive.dev/healing-ledger` annotation, read fresh from the API server before anything is
written. Apply (`healing_apply`): the ledger first, then the action, then Events and status.
The pause annotation stops every action at once.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from adaptive_operator import logs
from adaptive_operator.adapters import kube, telemetry, workers
from adaptive_operator.api.adaptive_service import PLURAL, AdaptiveServiceSpec
from adaptive_operator.api.base import GROUP, VERSION
from adaptive_operator.api.healing import HealingSpec
from adaptive_operator.domain.healing.ladder import HealingPlan, LedgerEntry, Observation
from adaptive_operator.domain.healing.plan import annotations_of, decide, writes_ledger
from adaptive_operator.domain.healing.watch import Watcher, watches
from adaptive_operator.handlers import runtime, settings, specs
from adaptive_operator.handlers.healing_apply import apply
from adaptive_operator.handlers.healing_observe import backfill_watcher, observe, start_watcher
from adaptive_operator.handlers.ports import WorkloadReader

log = logs.get(__name__)


def healing_enabled(spec: kopf.Spec, namespace: str | None, memo: Any, **_: Any) -> bool:
    return settings.served(namespace, memo) and bool((spec.get("healing") or {}).get("enabled"))


@kopf.daemon(GROUP, VERSION, PLURAL, id="healing", when=healing_enabled,
             cancellation_timeout=10.0)
async def healing_daemon(name: str, namespace: str | None, body: kopf.Body,
                         stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    workers.TENANT.set(namespace or "")  # its blocking calls queue with its namespace's
    assert namespace is not None  # the resource is namespaced
    logs.about(namespace, name)  # and what it logs, its backfill's and fits' too, names it
    try:
        await heal_every_period(namespace, name, body, stopped, memo)
    finally:  # deleted, or healing switched off: no score left behind
        telemetry.forget(telemetry.ANOMALY_SCORE, namespace, name)


async def heal_every_period(namespace: str, name: str, body: kopf.Body,
                            stopped: kopf.DaemonStopped, memo: kopf.Memo) -> None:
    rt = runtime.of(memo).for_object(namespace, name)
    # In the object's own memo, so kopf drops it with the object.
    watching = memo.healing = Watching()
    try:
        while runtime.carries_on(stopped, rt):
            await heal_period(namespace, name, body, stopped, watching, rt)
    finally:
        watching.stop()


@dataclass
class Watching:
    """One service's healing memory: its watcher, the spec validated at a generation, and the
    history's backfill running in the background."""

    watcher: Watcher | None = None
    kept: specs.Parsed | None = None
    warming: asyncio.Task[None] | None = None

    def watch(self, namespace: str, spec: AdaptiveServiceSpec, healing: HealingSpec,
              rt: runtime.Runtime) -> Watcher:
        """The watcher of these metrics: a new one, backfilled in the background, when they
        changed."""
        if self.watcher is not None and watches(self.watcher, healing):
            return self.watcher
        self.stop()
        self.watcher = start_watcher(healing)
        self.warming = rt.warmups.start(functools.partial(
            backfill_watcher, namespace, spec, healing, self.watcher, rt.clock.now(), rt))
        return self.watcher

    def stop(self) -> None:
        """The backfill and the refit under way are dropped."""
        for task in (self.warming, self.watcher.fitting if self.watcher else None):
            if isinstance(task, asyncio.Task):
                task.cancel()

    def forget(self) -> None:
        """Drop the watcher and its backfill: with the services shared out over lease shards,
        another replica heals this one, and a stale history must not come back with the shard."""
        self.stop()
        self.watcher = None


async def heal_period(namespace: str, name: str, body: kopf.Body, stopped: kopf.DaemonStopped,
                      watching: Watching, rt: runtime.Runtime) -> None:
    """One sync, then the wait until the next period starts."""
    try:
        spec, watching.kept = specs.validated(body, watching.kept)
    except ValidationError:
        await runtime.pause(stopped, 60.0)  # the scaling daemon reports the invalid spec
        return
    if not rt.may_act():  # not this replica's to heal: no history read nor kept for it
        watching.forget()
        await runtime.pause(stopped, float(spec.sync_period_seconds))
        return
    watcher = watching.watch(namespace, spec, spec.healing or HealingSpec(), rt)
    started = rt.clock.monotonic()
    await guarded_heal(namespace, name, body, spec, watcher, rt)
    # Syncs start every period (the detector's history is one row per period): waiting a whole
    # period after a sync made the period the sync's time longer.
    elapsed = rt.clock.monotonic() - started
    await runtime.pause(stopped, max(0.0, float(spec.sync_period_seconds) - elapsed))


async def guarded_heal(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                       watcher: Watcher, rt: runtime.Runtime) -> None:
    """A healing sync that the API server going away fails, not ends: the next period tries
    again (kopf would restart the daemon, and its history backfill, only after a while)."""
    try:
        await heal_once(namespace, name, body, spec, watcher, rt)
    except kube.API_ERRORS as err:
        runtime.sync_failed("healing sync", namespace, name, err)


async def heal_once(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                    watcher: Watcher, rt: runtime.Runtime) -> None:
    """Observe, plan, apply."""
    now = rt.clock.now()
    if not rt.may_act():  # a paused leader may have been replaced: act never
        watcher.status = None
        return
    observation = await observe(namespace, spec, watcher, now, rt)
    await plan_and_apply(namespace, name, body, spec, watcher, observation, now, rt)


async def plan_and_apply(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
                         watcher: Watcher, observation: Observation, now: float,
                         rt: runtime.Runtime) -> None:
    """The plan on what was observed, carried out, reported and shown in status."""
    if observation.verdict is not None:
        telemetry.ANOMALY_SCORE.labels(namespace, name).set(observation.verdict.score)
    planned = await plan(namespace, name, body, spec, observation, now, rt.workloads)
    if planned is None:
        return
    decided = planned[0]
    log.info("healing decision", namespace=namespace, name=name, action=decided.action,
             reason=decided.reason, message=decided.message, dry_run=decided.dry_run,
             score=observation.verdict.score if observation.verdict else None)
    telemetry.HEALING_DECISIONS.labels(namespace, name, decided.reason).inc()
    await apply(namespace, name, body, spec, watcher, observation.verdict, planned, now, rt)


async def plan(namespace: str, name: str, body: kopf.Body, spec: AdaptiveServiceSpec,
               observation: Observation, now: float,
               reads: WorkloadReader) -> tuple[HealingPlan, list[LedgerEntry]] | None:
    """The plan on the watched ledger; when it writes or acts, again on the ledger read fresh
    from the API server (the watched body may not show this process's last entry yet).
    None when the service is gone: nothing is done this sync (a read that fails raises, and
    the next period tries again)."""
    healing = spec.healing or HealingSpec()
    decided, ledger = decide(healing, observation, annotations_of(body), now)
    if not writes_ledger(decided):
        return decided, ledger
    fresh = await reads.read_service(PLURAL, namespace, name)
    if fresh is None:
        log.warning("healing skipped", namespace=namespace, name=name,
                    error=f"{PLURAL} {name} no longer exists")
        return None
    return decide(healing, observation, annotations_of(fresh), now)
