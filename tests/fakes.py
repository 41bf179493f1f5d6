"""Fakes of the runtime's ports for handler tests (instead of patching module functions)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kopf

from adaptive_operator.adapters.discovery import Resource
from adaptive_operator.adapters.prometheus import RangeSeries
from adaptive_operator.handlers.runtime import Runtime


@dataclass
class FixedClock:
    """A clock that moves only when told."""

    at: float
    ticks: float = 0.0

    def now(self) -> float:
        return self.at

    def monotonic(self) -> float:
        return self.ticks


class NoShards:
    """For tests of handlers that own no ShardSet: any call is a bug."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected ShardSet call: {name}")


class Ranges:
    """Range queries (history backfills) answered by `answer`, as a RangeBatcher's `series`."""

    def __init__(self, answer: Callable[..., Awaitable[RangeSeries]]) -> None:
        self.answer = answer

    async def series(self, url: Any, query: str, start: float, end: float,
                     step: float) -> RangeSeries:
        return await self.answer(url, query, start, end, step)


def memo_of(runtime: Runtime) -> kopf.Memo:
    return kopf.Memo(runtime=runtime)


def unresolved(api_version: str, kind: str) -> Resource:
    """API discovery for code that must not ask it: any call is a bug."""
    raise AssertionError(f"unexpected discovery of {kind} ({api_version})")
