"""IOPool: urgent calls overtake queued ones, equal ones keep their order, no slot leaks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from vidpipe_operator.offload import IOPool, Urgency, urgency

pytestmark = pytest.mark.unit


async def _queued(pool: IOPool, order: list[str], label: str, level: Urgency | bool) -> None:
    def call() -> None:
        order.append(label)

    with urgency(level if isinstance(level, Urgency) else Urgency(level)):
        await pool.run(call)


def test_urgent_calls_overtake_queued_ones_and_equals_keep_arrival_order() -> None:
    asyncio.run(_urgent_calls_overtake_queued_ones_and_equals_keep_arrival_order())


async def _urgent_calls_overtake_queued_ones_and_equals_keep_arrival_order() -> None:
    # Fails if the waiting calls were served first-come (the executor's own FIFO queue) or if
    # urgency leaked out of its block.
    pool = IOPool(1, "test")
    gate = threading.Event()
    order: list[str] = []
    try:
        blocker = asyncio.ensure_future(pool.run(gate.wait))
        await asyncio.sleep(0.05)  # the blocker holds the only thread
        tasks = [asyncio.ensure_future(_queued(pool, order, f"n{i}", False)) for i in range(3)]
        tasks += [asyncio.ensure_future(_queued(pool, order, f"u{i}", True)) for i in range(2)]
        tasks.append(asyncio.ensure_future(_queued(pool, order, "n3", False)))
        await asyncio.sleep(0.05)
        assert order == []  # all of them wait for the blocker
        gate.set()
        await asyncio.wait_for(asyncio.gather(blocker, *tasks), 5)
    finally:
        gate.set()
        pool.shutdown()
    assert order == ["u0", "u1", "n0", "n1", "n2", "n3"]


def test_a_waiter_cancelled_as_its_slot_arrives_hands_the_slot_on() -> None:
    asyncio.run(_a_waiter_cancelled_as_its_slot_arrives_hands_the_slot_on())


async def _a_waiter_cancelled_as_its_slot_arrives_hands_the_slot_on() -> None:
    # Fails (the last call never runs) if a slot handed to a waiter that is cancelled before it
    # resumes were lost: the pool would shrink by one thread per such cancel.
    pool = IOPool(1, "test")
    try:
        await pool._acquire()  # hold the only slot without a thread
        waiter = asyncio.ensure_future(pool.run(lambda: "never"))
        await asyncio.sleep(0)  # the waiter queues
        pool._release()  # hands the slot to the waiter...
        waiter.cancel()  # ...which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await waiter
        answer: Callable[[], int] = lambda: 42  # noqa: E731
        assert await asyncio.wait_for(pool.run(answer), 2) == 42
    finally:
        pool.shutdown()


def test_a_waiter_cancelled_in_the_queue_is_skipped() -> None:
    asyncio.run(_a_waiter_cancelled_in_the_queue_is_skipped())


async def _a_waiter_cancelled_in_the_queue_is_skipped() -> None:
    # Fails (the later call hangs) if a release handed its slot to a cancelled waiter.
    pool = IOPool(1, "test")
    gate = threading.Event()
    try:
        blocker = asyncio.ensure_future(pool.run(gate.wait))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(pool.run(lambda: "never"))
        later = asyncio.ensure_future(pool.run(lambda: "ran"))
        await asyncio.sleep(0)
        gone.cancel()
        gate.set()
        assert await asyncio.wait_for(later, 2) == "ran"
        await blocker
    finally:
        gate.set()
        pool.shutdown()


def test_an_escalated_run_moves_its_waiting_calls_ahead() -> None:
    asyncio.run(_an_escalated_run_moves_its_waiting_calls_ahead())


async def _an_escalated_run_moves_its_waiting_calls_ahead() -> None:
    # Fails if escalating a run left its calls already waiting at their old place (a finished
    # Job recorded only after every queued start), or moved only one of two concurrent calls.
    pool = IOPool(1, "test")
    gate = threading.Event()
    order: list[str] = []
    level = Urgency()
    try:
        blocker = asyncio.ensure_future(pool.run(gate.wait))
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(_queued(pool, order, f"n{i}", False)) for i in range(3)]
        tasks += [asyncio.ensure_future(_queued(pool, order, f"e{i}", level)) for i in range(2)]
        await asyncio.sleep(0.05)
        level.escalate()
        gate.set()
        await asyncio.wait_for(asyncio.gather(blocker, *tasks), 5)
    finally:
        gate.set()
        pool.shutdown()
    assert order == ["e0", "e1", "n0", "n1", "n2"]
