"""Fakes of the runtime's ports for handler tests (instead of patching module functions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kopf

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


def memo_of(runtime: Runtime) -> kopf.Memo:
    return kopf.Memo(runtime=runtime)
