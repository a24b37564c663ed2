"""Server-Sent Events of the caller's job changes (issue 15): the console's live list, and
`curl -N` for scripts.

MongoDB here is FerretDB, which has no change streams, so each stream polls the jobs collection
by `updated_at` (every writer of a job record sets it: vidpipe.record and the API's updates),
through the `(owner, updated_at)` index. A poll reads at most `stream_poll_batch` documents, so a
connection costs one bounded, indexed query per `stream_poll_seconds` however busy the owner is;
a burst larger than one batch is sent over the following polls, oldest first.

Every event is a snapshot of one job as `GET /v1/jobs/{id}` shows it (without download links),
so a repeat is harmless and the last one received is the job's state. The event id is
`<updated_at ms>_<job id>`; a client that reconnects with `Last-Event-ID` gets every job changed
since then. The writers' clocks may differ a little (API and operator), so each poll reaches
`stream_overlap_seconds` behind the newest change it has seen: a record written late with an
older timestamp is still sent, and a version already sent on this connection is not sent again.
A resumed stream may repeat the newest versions from that overlap, never skip one.

Caps (settings): streams open at once per API key and per process (429
`too_many_event_streams`), and a stream's life (`stream_max_seconds`): it then ends with an
`end` event and the client reconnects with `Last-Event-ID`, so no connection is held forever
and a revoked key stops receiving within that time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from pymongo import ASCENDING
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from vidpipe.record import JobRecord
from vidpipe_api.db import Database, to_ms
from vidpipe_api.errors import DatabaseUnavailable, TooManyEventStreams
from vidpipe_api.jobs import job_view
from vidpipe_api.settings import Settings

Doc = dict[str, Any]

# Tells EventSource how long to wait before reconnecting after the stream ends.
RETRY_MS = 2000
# Last-Event-ID is `<ms>_<job id>`: 13 digits, "_" and a 63-character id.
MAX_EVENT_ID = 80


@dataclass(frozen=True, order=True)
class Position:
    """Where a stream is: the newest (updated_at, job id) it has sent."""

    ms: int
    job_id: str = ""

    def event_id(self) -> str:
        return f"{self.ms}_{self.job_id}"


def parse_event_id(value: str | None) -> Position | None:
    """The position a `Last-Event-ID` names; None for a missing or foreign value (start fresh)."""
    if not value or len(value) > MAX_EVENT_ID:
        return None
    ms, sep, job_id = value.partition("_")
    # 13 digits: milliseconds until the year 2286; more would overflow datetime (a crash after
    # the headers, which EventSource would retry with the same id forever).
    # ASCII: str.isdigit() also takes "²", which int() refuses.
    if not sep or not (ms.isascii() and ms.isdigit()) or len(ms) > 13:
        return None
    return Position(int(ms), job_id)


def frame(event: str, data: Doc, event_id: str | None = None) -> bytes:
    """One SSE message; `data` is one line of JSON, so no payload can forge a field."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


HEARTBEAT = b": keep-alive\n\n"


class StreamSlots:
    """Streams open in this process, per API key and in all: the concurrency caps."""

    def __init__(self, per_key: int, total: int) -> None:
        self.per_key = per_key
        self.total = total
        self.open: dict[str, int] = {}

    def take(self, key_id: str) -> Callable[[], None]:
        """A slot for `key_id`, or TooManyEventStreams; returns its release (idempotent)."""
        if sum(self.open.values()) >= self.total:
            raise TooManyEventStreams("instance", self.total)
        if self.open.get(key_id, 0) >= self.per_key:
            raise TooManyEventStreams("key", self.per_key)
        self.open[key_id] = self.open.get(key_id, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self.open.get(key_id, 1) - 1
            if left > 0:
                self.open[key_id] = left
            else:
                self.open.pop(key_id, None)

        return release


class SlotResponse(StreamingResponse):
    """A stream that gives its slot back however it ends: finished, client gone, cancelled, or
    never started (a generator that never ran would not run its own `finally`)."""

    def __init__(self, body: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(
            body,
            media_type="text/event-stream",
            headers={
                "Cache-Control": "no-store",
                # Proxies (nginx) must pass each event on at once, not buffer the stream.
                "X-Accel-Buffering": "no",
            },
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


@dataclass
class JobPoller:
    """Reads the caller's changed jobs after a position, a bounded batch per call."""

    db: Database
    owner: str
    batch: int
    overlap_ms: int
    job_id: str | None = None
    position: Position = field(default_factory=lambda: Position(0))
    # Versions already sent whose time is inside the overlap window: (job id) -> updated ms.
    sent: dict[str, int] = field(default_factory=dict)
    # After a full batch, the next poll reads strictly after its last document.
    resume_after: Position | None = None

    def _find(self, since: Position) -> list[Doc]:
        """Strictly after `since` in (updated_at, _id) order (an empty id: from that ms on)."""
        at = datetime.fromtimestamp(since.ms / 1000, UTC)
        query: Doc = {
            "owner": self.owner,
            "$or": [{"updated_at": {"$gt": at}}, {"updated_at": at, "_id": {"$gt": since.job_id}}],
        }
        if self.job_id is not None:
            query["_id"] = self.job_id
        cursor = self.db.jobs.find(query).sort([("updated_at", ASCENDING), ("_id", ASCENDING)])
        return list(cursor.limit(self.batch))

    async def changes(self) -> list[tuple[Position, JobRecord]]:
        """Jobs changed since the position (less the overlap), oldest first, not yet sent."""
        low = Position(max(0, self.position.ms - self.overlap_ms))
        if self.resume_after is not None and self.resume_after > low:
            low = self.resume_after
        docs = await self.db.run(self._find, low)
        found: list[tuple[Position, JobRecord]] = []
        for doc in docs:
            try:
                record = JobRecord.model_validate(doc)
            except ValidationError:
                continue  # one unreadable record must not stop the stream (the list skips it too)
            if record.updated_at is None:
                continue
            at = Position(to_ms(record.updated_at), record.id)
            if self.sent.get(record.id, -1) >= at.ms:
                continue
            found.append((at, record))
        # A full batch: the rest is read from its end on the next poll, even when the whole
        # batch was already sent (else a burst inside the overlap could be read forever).
        last = docs[-1] if len(docs) == self.batch and docs else None
        self.resume_after = (
            None if last is None else Position(to_ms(last["updated_at"]), str(last["_id"]))
        )
        return found

    def mark(self, at: Position) -> None:
        self.sent[at.job_id] = max(self.sent.get(at.job_id, -1), at.ms)
        self.position = max(self.position, at)
        floor = self.position.ms - self.overlap_ms
        if len(self.sent) > 4 * self.batch:
            # Keep only what the overlap can still return: bounded memory per connection.
            self.sent = {k: v for k, v in self.sent.items() if v >= floor}


def job_event(record: JobRecord) -> tuple[str, Doc]:
    if record.deleted:
        return "deleted", {"id": record.id}
    return "job", job_view(record)


async def job_stream(
    poller: JobPoller,
    settings: Settings,
    is_disconnected: Callable[[], Any],
    *,
    until_finished: bool = False,
) -> AsyncIterator[bytes]:
    """The SSE body: job snapshots as they change, heartbeats between, an `end` at the end."""
    started = time.monotonic()
    deadline = started + settings.stream_max_seconds
    last_write = started
    yield f"retry: {RETRY_MS}\n\n".encode()
    while True:
        try:
            changed = await poller.changes()
        except DatabaseUnavailable:
            # MongoDB away for a moment: keep the stream (heartbeats go on) and poll again;
            # nothing is lost, the next poll starts from the same position.
            changed = []
        for at, record in changed:
            event, data = job_event(record)
            yield frame(event, data, at.event_id())
            poller.mark(at)
            last_write = time.monotonic()
            if until_finished and (record.phase.terminal or record.deleted):
                yield frame("end", {"reason": "finished"})
                return
        now = time.monotonic()
        if now >= deadline:
            yield frame("end", {"reason": "max_age", "lastEventId": poller.position.event_id()})
            return
        if now - last_write >= settings.stream_heartbeat_seconds:
            yield HEARTBEAT
            last_write = now
        await asyncio.sleep(min(settings.stream_poll_seconds, max(0.0, deadline - now)))
        if await is_disconnected():
            return


def start_position(last_event_id: str | None, settings: Settings, fresh: datetime) -> Position:
    """Where a new stream begins: after `Last-Event-ID`, else at `fresh` (less the overlap,
    so a change made while the client was reading the list is not missed)."""
    resumed = parse_event_id(last_event_id)
    if resumed is not None:
        return resumed
    return Position(to_ms(fresh - timedelta(seconds=settings.stream_overlap_seconds)))
