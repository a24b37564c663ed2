"""Per-process abuse limits on streamed uploads: concurrent upload slots and body timeouts.

Each upload streaming through the API holds memory (a part buffer) and a connection until its
last byte arrives, so the number of them is what bounds the process's memory. The counts are
kept in this process, not in MongoDB: the resource being protected is this process's memory,
a crashed process takes its counts with it (no leaked slot to expire), and checking costs no
round trip. With R replicas an owner can therefore hold up to R x the per-owner cap in total.

The body timeouts make a stalled client give its slot and memory back: the idle timeout bounds
the wait for each chunk, the total timeout bounds the whole body.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated

import anyio
from fastapi import Depends, Request

from vidpipe_api.errors import TooManyConcurrentUploads, UploadTimeout
from vidpipe_api.settings import Settings

# `max_body_size` of the routes that stream an upload: they lift the app's JSON body limit
# (Settings.max_request_body_bytes) and enforce max_upload_bytes, the form limits and the body
# timeouts themselves as the bytes arrive, after the caller is authenticated.
STREAMED_BODY = sys.maxsize

# Sent as Retry-After with a 429 for a full slot table: uploads take seconds to minutes, so a
# short wait is a fair first guess; clients should back off further on repeated refusals.
SLOT_RETRY_AFTER_SECONDS = 5


class UploadSlots:
    """Counts uploads in progress in this process, in total and per owner.

    All access happens on the event loop thread and a check-and-take has no `await` in it, so no
    lock is needed and the caps are exact.
    """

    def __init__(self, total: int, per_owner: int) -> None:
        self.total = total
        self.per_owner = per_owner
        self.active = 0
        self.by_owner: Counter[str] = Counter()

    @contextmanager
    def hold(self, owner: str) -> Iterator[None]:
        """Take a slot for `owner` for the duration of the block, or raise 429."""
        if self.by_owner[owner] >= self.per_owner:
            raise TooManyConcurrentUploads("owner", self.per_owner, SLOT_RETRY_AFTER_SECONDS)
        if self.active >= self.total:
            raise TooManyConcurrentUploads("instance", self.total, SLOT_RETRY_AFTER_SECONDS)
        self.active += 1
        self.by_owner[owner] += 1
        try:
            yield
        finally:
            self.active -= 1
            self.by_owner[owner] -= 1
            if self.by_owner[owner] <= 0:
                del self.by_owner[owner]  # no entry per past owner: the table stays small


def get_upload_slots(request: Request) -> UploadSlots:
    """The app's slot table, made on first use from its settings (one per app instance)."""
    slots: UploadSlots | None = getattr(request.app.state, "upload_slots", None)
    if slots is None:
        settings: Settings = request.app.state.ctx.settings
        slots = UploadSlots(
            settings.max_concurrent_uploads, settings.max_concurrent_uploads_per_owner
        )
        request.app.state.upload_slots = slots
    return slots


UploadSlotsDep = Annotated[UploadSlots, Depends(get_upload_slots)]


async def guarded(
    stream: AsyncIterator[bytes], idle_seconds: float, total_seconds: float
) -> AsyncIterator[bytes]:
    """Yield the body's chunks; raise `UploadTimeout` when the client stalls or runs too long.

    Only the wait for the client counts towards the idle timeout; time the consumer spends
    storing a chunk (S3 backpressure) counts only towards the total.
    """
    deadline = time.monotonic() + total_seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UploadTimeout("total", total_seconds)
        kind = "idle" if idle_seconds <= remaining else "total"
        try:
            with anyio.fail_after(min(idle_seconds, remaining)):
                chunk = await anext(stream)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadTimeout(kind, idle_seconds if kind == "idle" else total_seconds) from None
        yield chunk
