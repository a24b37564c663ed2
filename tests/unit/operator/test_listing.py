"""The namespace listing shared by every waiting job's reconcile (Kueue mode positions)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from vidpipe_operator.listing import SharedListing

pytestmark = pytest.mark.unit
Body = dict[str, Any]


class Lister:
    """Stands in for the API server: counts the listings asked of it; each takes a moment, so
    askers can arrive while one is being read."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail = False

    async def __call__(self, namespace: str) -> list[Body]:
        self.calls.append(namespace)
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("API server unreachable")
        return [{"metadata": {"name": f"w-{len(self.calls)}"}}]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_thousand_waiting_jobs_resynced_at_once_read_one_listing() -> None:
    # Fails if each reconcile lists the namespace itself (the resync round of N queued jobs read
    # N listings of N Workloads), or if askers that arrive during a read start their own.
    lister, clock = Lister(), Clock()
    shared = SharedListing(lister, max_age=5.0, clock=clock)

    async def go() -> list[list[Body]]:
        return await asyncio.gather(*(shared.get("media") for _ in range(1000)))

    results = asyncio.run(go())
    assert lister.calls == ["media"]
    assert all(r == results[0] for r in results)


def test_the_listing_is_read_again_once_older_than_max_age_and_per_namespace() -> None:
    # Fails if a listing is served for longer than max_age (positions would freeze), or if one
    # namespace's listing answers for another's.
    lister, clock = Lister(), Clock()
    shared = SharedListing(lister, max_age=5.0, clock=clock)

    async def go() -> None:
        first = await shared.get("media")
        clock.now = 4.9
        assert await shared.get("media") == first
        assert await shared.get("other") != first
        clock.now = 5.0
        assert await shared.get("media") != first

    asyncio.run(go())
    assert lister.calls == ["media", "other", "media"]


def test_a_failed_read_fails_every_asker_and_is_not_kept() -> None:
    # Fails if an error is cached as an empty listing (every job would lose its position for
    # max_age), or if the askers waiting on the failed read hang instead of failing.
    lister, clock = Lister(), Clock()
    shared = SharedListing(lister, max_age=5.0, clock=clock)

    async def go() -> list[object]:
        lister.fail = True
        failed = await asyncio.gather(
            *(shared.get("media") for _ in range(3)), return_exceptions=True
        )
        lister.fail = False
        return [*failed, await shared.get("media")]

    *failed, recovered = asyncio.run(go())
    assert all(isinstance(f, ConnectionError) for f in failed)
    assert recovered == [{"metadata": {"name": "w-2"}}]
    assert lister.calls == ["media", "media"]


def test_an_asker_cancelled_mid_read_does_not_cancel_the_others() -> None:
    # Fails if the shared read is cancelled with the first asker (its reconcile stopped): the
    # other askers would get CancelledError instead of the listing.
    lister, clock = Lister(), Clock()
    shared = SharedListing(lister, max_age=5.0, clock=clock)

    async def go() -> list[Body]:
        first = asyncio.ensure_future(shared.get("media"))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(shared.get("media"))
        await asyncio.sleep(0)
        first.cancel()
        return await second

    assert asyncio.run(go()) == [{"metadata": {"name": "w-1"}}]
    assert lister.calls == ["media"]


def test_an_asker_whose_item_the_listing_lacks_gets_a_listing_read_after_it() -> None:
    # Fails if a job whose Workload was created after the shared listing was read is placed
    # from that listing (in a burst, every new job would show position 1 for max_age), or if
    # asking for an item costs a read when the fresh listing already holds it.
    lister, clock = Lister(), Clock()
    shared = SharedListing(lister, max_age=5.0, clock=clock)

    def holds(name: str) -> Callable[[list[Body]], bool]:
        return lambda items: any(w["metadata"]["name"] == name for w in items)

    async def go() -> None:
        assert await shared.get("media") == [{"metadata": {"name": "w-1"}}]
        assert await shared.get("media", holds("w-1")) == [{"metadata": {"name": "w-1"}}]
        assert lister.calls == ["media"]
        # w-2 exists now (the lister names each read's listing after its count).
        assert await shared.get("media", holds("w-2")) == [{"metadata": {"name": "w-2"}}]
        assert lister.calls == ["media", "media"]

    asyncio.run(go())
