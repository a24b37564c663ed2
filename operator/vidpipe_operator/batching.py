"""Group writes that arrive while one is in flight into the next batch.

The operator's MongoDB writes come in bursts (many Jobs finishing or starting together). One
bulk write per burst costs the database one round trip and one commit instead of one per job,
which is what keeps the finish-to-MongoDB tail short. There is no timer: an idle batcher sends
a lone write at once, so batching adds latency only when writes are already queueing.

A batch that fails as a whole because it was too slow (`shrink_on`: a timeout, not a refused
connection) halves the cap for the next one; each batch that succeeds doubles it back up to
`max_batch`. Without the halving, a database slower than the burst (FerretDB on SQLite under
load) times out on a big batch, every write in it is retried together with the ones queued
meanwhile, the next batch is bigger still, and the mirror never catches up (seen with
bench/operator_scale.py). A database that is down keeps the cap: a queue built up during an
outage fails, and is retried, a full batch per attempt rather than one write per timeout.

Writes that state a document's whole state (`enqueue(whole=True)`: the operator's mirror of a
VideoJob status) supersede one still queued for the same document (`document`) when nothing
else for it was queued after it: the newer write takes the older one's place and both callers
are answered when it is applied. A database that lags the burst then writes each document once
per batch instead of once per state it passed through, so the backlog shrinks. A write that is
not whole (a progress report) is never replaced and is never overtaken by a later whole write.

Writes made by an urgent task (`urgent`, read when a write is queued: the operator's reconcile
of a VideoJob holding a Job, see offload.py) go out first. A burst of new VideoJobs queues one
write each; a finished job's record waited behind all of them (bench/operator_scale.py, p99
Job finished -> MongoDB). A write still never goes ahead of an earlier one of its document.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Op = TypeVar("Op")

# Sends one batch, in order. Raises BatchFailed(n) when the first n ops were applied and the
# rest were not; any other exception means none may be assumed applied.
Flush = Callable[[list[Op]], Awaitable[None]]
# Told of every batch sent: how many writes, the seconds it took, and whether all were applied.
Observe = Callable[[int, float, bool], None]


class BatchFailed(Exception):
    def __init__(self, applied: int, cause: BaseException):
        super().__init__(str(cause))
        self.applied, self.cause = applied, cause


@dataclass
class _Queued(Generic[Op]):
    op: Op
    whole: bool
    urgent: bool
    # Every caller whose write this one answers (more than one once it superseded others).
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


def _nothing(op: object) -> Hashable | None:
    return None


def _calm() -> bool:
    return False


def _unobserved(writes: int, seconds: float, ok: bool) -> None:
    pass


class Batcher(Generic[Op]):
    def __init__(
        self,
        flush: Flush[Op],
        max_batch: int = 500,
        shrink_on: Callable[[Exception], bool] = lambda exc: isinstance(exc, TimeoutError),
        document: Callable[[Op], Hashable | None] = _nothing,
        urgent: Callable[[], bool] = _calm,
        observe: Observe = _unobserved,
    ):
        self._flush = flush
        self._observe = observe
        self._max_batch = max_batch
        self._shrink_on = shrink_on
        self._document, self._urgent = document, urgent
        self.cap = max_batch  # the current cap: max_batch, halved by each batch that was too slow
        self._pending: list[_Queued[Op]] = []
        # The last write queued (not yet sent) per document.
        self._last: dict[Hashable, _Queued[Op]] = {}
        self._urgent_queued = 0
        self._drainer: asyncio.Task[None] | None = None

    def enqueue(self, op: Op, *, whole: bool = False) -> asyncio.Future[None]:
        """Queue `op` now (its place in the order is taken before this returns); the future is
        done once it is applied, or carries what the batch raised if it was not. `whole`: `op`
        states its document's whole state, so it may replace a queued one that does too."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        doc, urgent = self._document(op), self._urgent()
        last = self._last.get(doc) if doc is not None else None
        if whole and last is not None and last.whole:
            last.op = op
            last.waiters.append(done)
            if urgent and not last.urgent:
                last.urgent = True
                self._urgent_queued += 1
        else:
            queued = _Queued(op, whole, urgent, [done])
            self._pending.append(queued)
            self._urgent_queued += urgent
            if doc is not None:
                self._last[doc] = queued
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return done

    async def submit(self, op: Op) -> None:
        """Returns once `op` is applied; raises what the batch raised if it was not."""
        await self.enqueue(op)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._take()
            for queued in batch:  # sent: no later write may change it any more
                doc = self._document(queued.op)
                if doc is not None and self._last.get(doc) is queued:
                    del self._last[doc]
            started = time.monotonic()
            try:
                await self._flush([queued.op for queued in batch])
            except BatchFailed as exc:  # a write error: the batch's size was not the problem
                self._observe(len(batch), time.monotonic() - started, False)
                _settle(batch[: exc.applied], None)
                _settle(batch[exc.applied :], exc.cause)
            except Exception as exc:
                self._observe(len(batch), time.monotonic() - started, False)
                if self._shrink_on(exc):
                    self.cap = max(1, len(batch) // 2)
                _settle(batch, exc)
            else:
                self._observe(len(batch), time.monotonic() - started, True)
                self.cap = min(self._max_batch, self.cap * 2)
                _settle(batch, None)

    def _take(self) -> list[_Queued[Op]]:
        """The next batch: up to `cap` writes, the urgent ones first, each kind oldest first;
        never a write ahead of an earlier one of the same document."""
        batch: list[_Queued[Op]] = []
        if not self._urgent_queued:
            batch, self._pending = self._pending[: self.cap], self._pending[self.cap :]
            return batch
        held: set[Hashable] = set()  # documents with an earlier write not taken
        for queued in self._pending:
            if len(batch) == self.cap:
                break
            doc = self._document(queued.op)
            if queued.urgent and (doc is None or doc not in held):
                batch.append(queued)
            elif doc is not None:
                held.add(doc)
        taken = {id(queued) for queued in batch}
        rest = [queued for queued in self._pending if id(queued) not in taken]
        room = self.cap - len(batch)
        batch += rest[:room]
        self._pending = rest[room:]
        self._urgent_queued -= sum(queued.urgent for queued in batch)
        return batch


def _settle(batch: Sequence[_Queued[Op]], error: BaseException | None) -> None:
    for queued in batch:
        for done in queued.waiters:
            if done.done():  # the caller gave up waiting (cancelled)
                continue
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
