"""Mirror VideoJob status into the job's MongoDB document (the API's read model).

The updates come from the record's builders (`vidpipe.record`, shared with the API, which
reads the same document); `JobMirror` only sends them: pymongo runs in worker threads because
it is blocking and the kopf event loop must never wait on the network, and the writes of a
burst go out as one ordered `update` command (see batching.py).

Each write may carry the event of the state it records (`vidpipe.events`, the outbox the webhook
dispatcher reads). The event goes out with the write, as an insert keyed by its deterministic id,
and the write counts as done only when both are: a write retried or replayed after a crash (a
resume mirrors every VideoJob again) inserts nothing twice and misses no event.

A reconcile does not wait for its mirror under the VideoJob's lock (`deferred_writes`): the
write takes its place in the queue at once (so a VideoJob's writes land in the order made), and
the controller confirms it afterwards. Waiting under the lock made a finished Job's status wait
for the MongoDB write of the state before it (bench/operator_scale.py, issue 13).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import NetworkTimeout, OperationFailure, ServerSelectionTimeoutError

from vidpipe.constants import JOBS_COLLECTION
from vidpipe.events import EVENTS_COLLECTION, JobEvent, outbox_insert
from vidpipe.phases import TERMINAL_PHASES
from vidpipe.record import progress_update
from vidpipe_operator import metrics
from vidpipe_operator.batching import Batcher, BatchFailed
from vidpipe_operator.offload import IOPool, is_urgent

T = TypeVar("T")
Doc = dict[str, Any]


# The writes queued by the current reconcile, when its caller confirms them later.
_deferred: ContextVar[list[Awaitable[object]] | None] = ContextVar("deferred_writes", default=None)


@contextmanager
def deferred_writes() -> Iterator[list[Awaitable[object]]]:
    """Inside, `JobMirror.write` queues and returns at once; the list holds what to await."""
    writes: list[Awaitable[object]] = []
    token = _deferred.set(writes)
    try:
        yield writes
    finally:
        _deferred.reset(token)


def _document(op: Doc) -> Hashable:
    return str(op["q"]["_id"])


def _observe(collection: str, writes: int, seconds: float, ok: bool) -> None:
    outcome = "applied" if ok else "failed"
    metrics.MONGO_BATCH_SECONDS.labels(collection=collection, outcome=outcome).observe(seconds)
    metrics.MONGO_BATCH_WRITES.labels(collection=collection).observe(writes)


def _too_slow(exc: Exception) -> bool:
    """The server answered too late (smaller batches help), not that none could be reached."""
    return isinstance(exc, NetworkTimeout) and not isinstance(exc, ServerSelectionTimeoutError)


class JobMirror:
    def __init__(
        self,
        url: str,
        database: str,
        pool: IOPool,
        timeout_ms: int = 5000,
        batch_max: int = 100,
    ):
        self._client: MongoClient[Doc] = MongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms,
        )
        self._db = self._client[database]
        self._jobs: Collection[Doc] = self._db[JOBS_COLLECTION]
        self._pool = pool
        # Writes made while one batch is in flight go out together in the next one.
        self._writes: Batcher[Doc] = Batcher(
            partial(self._bulk, JOBS_COLLECTION),
            batch_max,
            shrink_on=_too_slow,
            document=_document,
            urgent=is_urgent,
            observe=partial(_observe, JOBS_COLLECTION),
        )
        self._events: Batcher[Doc] = Batcher(
            partial(self._bulk, EVENTS_COLLECTION),
            batch_max,
            shrink_on=_too_slow,
            urgent=is_urgent,
            observe=partial(_observe, EVENTS_COLLECTION),
        )

    async def _run(self, fn: Callable[[], T]) -> T:
        return await self._pool.run(fn)

    def _update_command(self, collection: str, ops: list[Doc]) -> None:
        # The `update` command itself rather than bulk_write: pymongo's bulk result merging
        # needs fields (nModified) that some wire-compatible servers (FerretDB) leave out.
        # Ordered: two writes to one document in a batch land in the order they were made.
        # pymongo does not retry a raw command; every caller retries a failed write instead
        # (each mirror write is idempotent).
        reply = self._db.command({"update": collection, "updates": ops, "ordered": True})
        errors = reply.get("writeErrors") or []
        if errors:
            first = min(errors, key=lambda e: int(e["index"]))
            cause = OperationFailure(str(first.get("errmsg")), first.get("code"), first)
            # Never claim more applied than the server counted (`n`; FerretDB reports index 0
            # whatever failed): a write wrongly reported failed is retried, and is idempotent.
            applied = min(int(first["index"]), int(reply.get("n") or 0))
            raise BatchFailed(applied, cause)

    async def _bulk(self, collection: str, ops: list[Doc]) -> None:
        await self._run(partial(self._update_command, collection, ops))

    def _with_events(
        self, op: Doc, events: Sequence[JobEvent], whole: bool = False
    ) -> Awaitable[object]:
        inserts = [outbox_insert(event) for event in events]
        return asyncio.gather(
            self._writes.enqueue(op, whole=whole),
            *(self._events.enqueue({"q": q, "u": u, "upsert": True}) for q, u in inserts),
        )

    async def write(self, job_id: str, update: Doc, *events: JobEvent, whole: bool = True) -> None:
        """Queue an upsert of the record (and its events); wait for it unless the caller defers
        (`deferred_writes`). `whole`: the update states the record's whole mirrored state
        (record.mirror_update), so it may replace one still queued; a partial one (the sweep's
        `deleted_update`) never is, nor replaces one."""
        done = self._with_events(
            {"q": {"_id": job_id}, "u": update, "upsert": True}, events, whole=whole
        )
        deferred = _deferred.get()
        if deferred is None:
            await done
        else:
            deferred.append(done)

    async def write_progress(
        self, job_id: str, progress: int, at: datetime, event: JobEvent | None = None
    ) -> None:
        query, update = progress_update(progress, at)
        op = {"q": {"_id": job_id, **query}, "u": update}
        await self._with_events(op, [event] if event is not None else [])

    async def unfinished(self, namespace: str | None) -> list[Doc]:
        """Documents the operator has mirrored (they name their VideoJob) that are not terminal;
        None: in every namespace."""
        query: Doc = {
            "phase": {"$nin": [p.value for p in TERMINAL_PHASES]},
            "videojob.name": {"$exists": True},
        }
        if namespace is not None:
            query["videojob.namespace"] = namespace
        fields = {"_id": 1, "videojob": 1, "conditions": 1, "owner": 1, "metadata": 1}
        return await self._run(lambda: list(self._jobs.find(query, fields)))

    async def get(self, job_id: str) -> Doc | None:
        return await self._run(partial(self._jobs.find_one, {"_id": job_id}))

    def close(self) -> None:
        self._client.close()
