"""The AdaptiveService syncs running in this process, so that a coupled downstream reads its
upstreams' status once their syncs of the same moment have written it.

A downstream reads each upstream's published forecast from the upstream's status (a fresh GET),
and every service syncs on its own phase. When the downstream's sync reaches that read while
its upstream's sync is still deciding or writing, the read returns the forecast of a period
before, and on a step the downstream scales a period after its upstream instead of with it
(`e2e/test_real_coupling.py` failed so once: api read frontend's status 0.1 s after frontend
decided, before frontend had written it). So the downstream first waits for any sync of its
upstreams in progress to end, for at most half its period (its own readings must not grow old
waiting) and 30 s.

A sync never waits for one that waits, however indirectly, for it: two services coupled to each
other (a cycle, which the coupling refuses anyway) do not wait on each other. Only this
process's syncs are known: an upstream synced by another replica is not waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from adaptive_operator.adapters import telemetry

Key = tuple[str, str]  # namespace, name
# The longest wait, whatever the period: a sync that takes longer is stuck on a slow server,
# and readings of an hour's period must not wait half an hour.
MAX_WAIT_SECONDS = 30.0


@dataclass
class _Sync:
    done: asyncio.Event = field(default_factory=asyncio.Event)
    waiting_for: tuple[Key, ...] = ()


class RunningSyncs:
    def __init__(self) -> None:
        self._running: dict[Key, _Sync] = {}

    def is_running(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._running

    @contextmanager
    def running(self, namespace: str, name: str) -> Iterator[None]:
        """Marks the service's sync as running for the duration of the block."""
        key, sync = (namespace, name), _Sync()
        self._running[key] = sync
        try:
            yield
        finally:
            if self._running.get(key) is sync:
                del self._running[key]
            sync.done.set()

    async def after(self, namespace: str, name: str, upstreams: Sequence[str],
                    bound: float) -> None:
        """Returns once no sync of `upstreams` (same namespace) is running, or after `bound`
        seconds (at most MAX_WAIT_SECONDS); at once when none is."""
        key = (namespace, name)
        awaited = self._awaited(key, [(namespace, u) for u in upstreams])
        if not awaited:
            return
        own = self._running.get(key) or _Sync()  # a sync not marked running waits all the same
        own.waiting_for = tuple(awaited)
        waits = [asyncio.ensure_future(self._running[k].done.wait()) for k in awaited]
        started = asyncio.get_running_loop().time()
        try:
            await asyncio.wait(waits, timeout=min(bound, MAX_WAIT_SECONDS))
        finally:
            for wait in waits:
                wait.cancel()
            own.waiting_for = ()
            telemetry.COUPLING_WAIT_SECONDS.observe(asyncio.get_running_loop().time() - started)

    def _awaited(self, key: Key, upstreams: list[Key]) -> list[Key]:
        """The upstreams whose sync runs and does not wait, however indirectly, for `key`'s."""
        return [u for u in upstreams if u in self._running and not self._waits_for(u, key)]

    def _waits_for(self, start: Key, target: Key) -> bool:
        """Whether the sync of `start` waits, directly or through others, for `target`."""
        seen: set[Key] = set()
        stack = [start]
        while stack:
            key = stack.pop()
            if key == target:
                return True
            sync = self._running.get(key)
            if key in seen or sync is None:
                continue
            seen.add(key)
            stack.extend(sync.waiting_for)
        return False
