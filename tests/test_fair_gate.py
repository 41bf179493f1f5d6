"""The fit gate lets waiters in namespace by namespace in turn: one namespace's backlog does not
hold back another's next fit."""

from __future__ import annotations

import asyncio

from adaptive_operator.adapters import telemetry, workers
from adaptive_operator.handlers.warmup import WarmUps


async def _enter(gate: workers.FairGate, tenant: str, label: str, order: list[str],
                 leave: asyncio.Event) -> None:
    workers.TENANT.set(tenant)
    async with gate.held():
        order.append(label)
        await leave.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _queue(gate: workers.FairGate, entries: list[tuple[str, str]], order: list[str],
                 leave: asyncio.Event) -> list[asyncio.Task[None]]:
    tasks = []
    for tenant, label in entries:
        tasks.append(asyncio.create_task(_enter(gate, tenant, label, order, leave)))
        await _settle()
    return tasks


async def test_waiters_are_let_in_one_namespace_at_a_time_in_turn() -> None:
    gate, leave = workers.FairGate(1), asyncio.Event()
    order: list[str] = []
    leave.set()  # each holder leaves at once: the order they came in is the order let in
    hold = asyncio.Event()
    first = asyncio.create_task(_enter(gate, "a", "a0", order, hold))
    await _settle()
    tasks = await _queue(gate, [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"),
                                ("c", "c1"), ("b", "b2")], order, leave)
    assert gate.waiting() == {"a": 3, "b": 2, "c": 1}
    hold.set()
    await asyncio.gather(first, *tasks)
    assert order == ["a0", "a1", "b1", "c1", "a2", "b2", "a3"]
    assert gate.waiting() == {}


async def test_size_holders_at_once_and_the_rest_wait() -> None:
    gate, hold = workers.FairGate(2), asyncio.Event()
    order: list[str] = []
    tasks = await _queue(gate, [("a", "a1"), ("a", "a2"), ("a", "a3")], order, hold)
    assert order == ["a1", "a2"]
    assert gate.waiting() == {"a": 1}
    hold.set()
    await asyncio.gather(*tasks)
    assert order == ["a1", "a2", "a3"]


async def test_a_waiter_cancelled_in_the_queue_takes_no_place() -> None:
    gate, hold = workers.FairGate(1), asyncio.Event()
    order: list[str] = []
    holder, gone, after = await _queue(gate, [("a", "a1"), ("b", "b1"), ("c", "c1")], order, hold)
    gone.cancel()
    await _settle()
    assert gate.waiting() == {"c": 1}
    hold.set()
    await asyncio.gather(holder, after)
    assert order == ["a1", "c1"]
    assert gone.cancelled()


async def test_a_waiter_let_in_then_cancelled_before_it_ran_hands_its_place_on() -> None:
    gate, leave = workers.FairGate(1), asyncio.Event()
    order: list[str] = []
    leave.set()
    held = gate.held()
    await held.__aenter__()  # the place is taken here, in the test
    let_in, last = await _queue(gate, [("b", "b1"), ("c", "c1")], order, leave)
    await held.__aexit__(None, None, None)  # b1 is let in...
    let_in.cancel()  # ...and cancelled before it ran
    await asyncio.gather(let_in, last, return_exceptions=True)
    assert let_in.cancelled()
    assert order == ["c1"]
    assert gate.waiting() == {}
    async with gate.held():  # and the place is free again
        pass


async def test_the_fits_queue_at_the_fair_gate() -> None:
    warmups = WarmUps()
    order: list[str] = []

    async def fit(tenant: str, label: str) -> None:
        workers.TENANT.set(tenant)
        await warmups.fit(lambda: order.append(label))

    pending = telemetry.FITS_PENDING._value.get()
    async with warmups._fits.held():  # a fit running
        tasks = []
        for tenant, label in [("a", "a1"), ("a", "a2"), ("b", "b1")]:
            tasks.append(asyncio.create_task(fit(tenant, label)))
            await _settle()
        assert telemetry.FITS_PENDING._value.get() == pending + 3  # the backlog, on /metrics
    await asyncio.gather(*tasks)
    assert order == ["a1", "b1", "a2"]
    assert telemetry.FITS_PENDING._value.get() == pending


async def test_a_holder_leaving_as_the_next_waiter_is_cancelled_hands_the_place_on() -> None:
    # The holder wakes to leave before the cancelled waiter wakes to drop out of its queue: the
    # waiter's future is already cancelled but still queued (an operator shutting down, or a
    # namespace deleted while its fits wait). Once this raised InvalidStateError in the
    # holder's fit ("forecast refit failed") and lost the gate's place for good.
    gate, hold = workers.FairGate(1), asyncio.Event()
    order: list[str] = []
    holder, gone, after = await _queue(gate, [("a", "a1"), ("b", "b1"), ("c", "c1")], order, hold)
    hold.set()  # the holder's wake-up is queued first...
    gone.cancel()  # ...then the waiter's cancellation
    await asyncio.gather(holder, after)
    assert order == ["a1", "c1"]
    assert gone.cancelled() and gate.waiting() == {}
    again = await _queue(gate, [("d", "d1")], order, hold)  # the place is free again
    await asyncio.gather(*again)
    assert order == ["a1", "c1", "d1"]
