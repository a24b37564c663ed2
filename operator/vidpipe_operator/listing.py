"""One listing per namespace, shared by every reconcile that asks within `max_age` seconds.

Kueue mode estimates a waiting job's place from every Workload of its namespace. Listed per job,
a resync round with N queued jobs read N listings of N Workloads each (quadratic, megabytes per
job at a few thousand). Shared, the round reads one listing per namespace every `max_age`
seconds, and the askers that arrive while it is being read wait for that same read.
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

    async def get(self, namespace: str) -> list[Body]:
        listed = self._listed.get(namespace)
        if listed is not None and self.clock() - listed[0] < self.max_age:
            return listed[1]
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
