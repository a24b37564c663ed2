"""The one way the operator calls a blocking client (kubernetes, boto3, pymongo, presigning).

kopf runs every handler on one event loop; a blocking call there would stall every watch. Each
adapter hands its calls to an `IOPool`, so which pool a call runs in is decided once, where the
adapter is built (startup.py).

A pool takes calls in order of urgency, then arrival. Under load the API server answers a write
in about 0.1 s, so a thousand free slots (start-up, a burst of uploads) queue thousands of
creates, and a finished Job's status write waited behind all of them for a thread (seen in
bench/operator_scale.py, docs/operator.md "Scale"). The calls of an urgent reconcile
(`Urgency`: a VideoJob holding a Job, a cancel, a deletion; escalated when a Job event arrives
while a run is under way) go first; starting waiting jobs only goes as fast as what remains.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")


class Urgency:
    """How urgent one task's calls are. A later trigger may raise it while the task runs: its
    call waiting for a thread then moves ahead at once, and so do its later calls."""

    def __init__(self, urgent: bool = False):
        self.urgent = urgent
        # Its calls waiting for a thread (several at once under asyncio.gather), in arrival
        # order (a dict keeps it), which an escalation keeps among them.
        self._waiting: dict[tuple[IOPool, asyncio.Future[None]], None] = {}

    def escalate(self) -> None:
        if self.urgent:
            return
        self.urgent = True
        for pool, fut in list(self._waiting):
            pool._enqueue(fut, urgent=True)  # the old place is skipped once `fut` is done


# Per task (each asyncio task runs in its own copy of the context), read by every call made
# inside an `urgency` block.
_URGENCY: ContextVar[Urgency | None] = ContextVar("vidpipe_urgency", default=None)


@contextmanager
def urgency(level: Urgency) -> Iterator[None]:
    """Inside the block, this task's calls wait for a thread with `level`'s urgency."""
    token = _URGENCY.set(level)
    try:
        yield
    finally:
        _URGENCY.reset(token)


def is_urgent() -> bool:
    """Whether the current task runs with urgency (see `urgency`)."""
    level = _URGENCY.get()
    return level is not None and level.urgent


class IOPool:
    """A thread pool with at most `threads` calls handed to it at once; the others wait here,
    urgent first (a heap by (not urgent, arrival)), instead of in the executor's FIFO queue."""

    def __init__(self, threads: int, name: str):
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._free = threads
        self._waiting: list[tuple[bool, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` in a thread and wait for it without blocking the event loop."""
        await self._acquire()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        finally:
            self._release()

    def _enqueue(self, fut: asyncio.Future[None], *, urgent: bool) -> None:
        if not fut.done():
            heapq.heappush(self._waiting, (not urgent, next(self._arrival), fut))

    async def _acquire(self) -> None:
        if self._free > 0:  # then no one waits: a release hands its slot to a waiter first
            self._free -= 1
            return
        level = _URGENCY.get()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(fut, urgent=is_urgent())
        if level is not None:
            level._waiting[(self, fut)] = None
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # the slot was handed over just as we were cancelled
            raise
        finally:
            if level is not None:
                level._waiting.pop((self, fut), None)

    def _release(self) -> None:
        while self._waiting:
            *_, fut = heapq.heappop(self._waiting)
            if not fut.done():  # skip waiters cancelled or escalated (an earlier place served)
                fut.set_result(None)  # the slot passes straight to the next waiter
                return
        self._free += 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
