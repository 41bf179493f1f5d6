"""Operator-wide settings, set once by `adaptive-operator run` before kopf starts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import kopf

from adaptive_operator.adapters.telemetry import TimedExecutor
from adaptive_operator.api.adaptive_service import AdaptiveServiceSpec
from adaptive_operator.domain.common.namespaces import in_scope

# A metric value may be this share of the service's sync period old when another service's
# query already fetched it (Prometheus scrapes every 15-30 s in most clusters anyway).
ANSWER_AGE_FRACTION = 1.0 / 3.0
# Threads for blocking calls (API server, Prometheus, model fitting). Python's default (cores +
# 4: 6 here) left hundreds of services queueing for a thread while calls waited on the network;
# 32 still queued status writes for seconds at 1,000 services on a busy API server (a waiting
# thread costs memory, not CPU).
WORKER_THREADS = 64


@dataclass(frozen=True)
class OperatorSettings:
    prometheus_url: str = "http://127.0.0.1:9090"
    # Namespace patterns the handlers filter by (kopf then watches cluster-wide): see
    # domain/common/namespaces.py for why kopf's own pattern support is not used.
    namespace_patterns: tuple[str, ...] = ()


_current = OperatorSettings()


def configure(settings: OperatorSettings) -> None:
    global _current
    _current = settings


def current() -> OperatorSettings:
    return _current


def served(namespace: str | None, **_: Any) -> bool:
    """kopf `when=` filter of every handler: is this object's namespace one we serve?"""
    return in_scope(namespace, _current.namespace_patterns)


def answer_age(spec: AdaptiveServiceSpec) -> float:
    """How old a shared Prometheus answer this service accepts."""
    return float(spec.sync_period_seconds) * ANSWER_AGE_FRACTION


class StatuslessDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's essence of an object (what its change detection compares), built without first
    deep-copying the status, which kopf then drops anyway. Our status (history, forecast,
    healing) is most of the object and changes every sync, so that copy was most of kopf's CPU
    per watch event with 1,000 services."""

    def build(self, *, body: kopf.Body,
              extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        fields = list(extra_fields or [])
        if "status" in body and not fields:  # a handler on a status field needs it: keep it
            body = kopf.Body(cast(kopf.RawBody, {k: v for k, v in body.items() if k != "status"}))
        return super().build(body=body, extra_fields=fields)


@kopf.on.startup()
def configure_kopf(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Progress and the last-handled spec live in annotations of our group, not in status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="adaptive.dev")
    settings.persistence.diffbase_storage = StatuslessDiffBase(
        prefix="adaptive.dev", key="last-handled-configuration")
    # Only warnings become Events: the Events users see are our decisions, not debug lines.
    settings.posting.level = logging.WARNING
    # A watch that breaks or hangs is restarted well before a proxy or the API server drops it.
    settings.watching.server_timeout = 240
    settings.watching.client_timeout = 270
    settings.networking.request_timeout = 30


@kopf.on.startup()
async def widen_thread_pool(**_: Any) -> None:
    asyncio.get_running_loop().set_default_executor(
        TimedExecutor(max_workers=WORKER_THREADS, thread_name_prefix="adaptive"))
