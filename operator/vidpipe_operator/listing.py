"""One listing per namespace, shared by every reconcile that asks within `max_age` seconds.

Kueue mode estimates a waiting job's place from every Workload of its namespace. Listed per job,
a resync round with N queued jobs read N listings of N Workloads each (quadratic, megabytes per
job at a few thousand). Shared, the round reads one listing per namespace every `max_age`
seconds, and the askers that arrive while it is being read wait for that same read.

An asker that knows of an item the listing must hold (a waiting job its own, just-created
Workload) gets a listing read after it: in a burst, a listing taken a moment before would place
every new job first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Body = dict[str, Any]


class SharedListing:
    def __init__(
        self,
        fetch: Callable[[str], Awaitable[list[Body]]],
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.max_age = max_age
        self.clock = clock
        self._listed: dict[str, tuple[float, list[Body]]] = {}
        self._reading: dict[str, asyncio.Future[list[Body]]] = {}

    async def get(
        self, namespace: str, holds: Callable[[list[Body]], bool] | None = None
    ) -> list[Body]:
        """The namespace's listing, at most max_age old; with `holds`, one for which it is true
        (read again if need be: a read that began before the item existed cannot hold it)."""
        listed = self._listed.get(namespace)
        fresh = listed is not None and self.clock() - listed[0] < self.max_age
        if listed is not None and fresh and (holds is None or holds(listed[1])):
            return listed[1]
        items = await self._shared_read(namespace)
        if holds is None or holds(items):
            return items
        # The read joined began before the item existed; a read begun now holds it.
        return await self._shared_read(namespace)

    async def _shared_read(self, namespace: str) -> list[Body]:
        reading = self._reading.get(namespace)
        if reading is None:
            reading = self._reading[namespace] = asyncio.ensure_future(self._read(namespace))
        # Shielded: one asker giving up (its reconcile cancelled) does not cancel the others'.
        return await asyncio.shield(reading)

    async def _read(self, namespace: str) -> list[Body]:
        # Aged from when the read began: the listing is at least that old.
        began = self.clock()
        try:
            items = await self.fetch(namespace)
        finally:
            del self._reading[namespace]
        self._listed[namespace] = (began, items)  # a failed read keeps nothing
        return items
