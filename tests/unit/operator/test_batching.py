"""Writes queued while one is in flight go out together, in order, each told its own outcome."""

from __future__ import annotations

import asyncio

import pytest

from vidpipe_operator.batching import Batcher, BatchFailed

pytestmark = pytest.mark.unit


class FakeStore:
    """Records each batch; holds the first one open until released, to let writes queue up."""

    def __init__(
        self,
        fail_at: dict[int, int] | None = None,
        broken: set[int] | None = None,
        error: type[Exception] = ConnectionError,
    ):
        self.error = error
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.fail_at = fail_at or {}  # batch number -> ops applied before the failure
        self.broken = broken or set()  # batch numbers that fail as a whole (e.g. connection)

    async def flush(self, ops: list[str]) -> None:
        number = len(self.batches)
        self.batches.append(ops)
        if number == 0:
            await self.release.wait()
        if number in self.broken:
            raise self.error("database unreachable or too slow")
        if number in self.fail_at:
            raise BatchFailed(self.fail_at[number], ValueError("write error"))


async def _submit_all(batcher: Batcher[str], ops: list[str]) -> list[BaseException | None]:
    return await asyncio.gather(*(batcher.submit(op) for op in ops), return_exceptions=True)


def test_lone_write_goes_out_at_once() -> None:
    async def go() -> list[list[str]]:
        store = FakeStore()
        store.release.set()
        await asyncio.wait_for(Batcher(store.flush).submit("a"), 1)
        return store.batches

    assert asyncio.run(go()) == [["a"]]


def test_writes_queued_during_a_flush_share_the_next_batch_in_order() -> None:
    async def go() -> tuple[list[list[str]], list[BaseException | None]]:
        store = FakeStore()
        batcher: Batcher[str] = Batcher(store.flush)
        first = asyncio.create_task(batcher.submit("a"))
        await asyncio.sleep(0)  # "a" is in flight, held open
        rest = asyncio.create_task(_submit_all(batcher, ["b", "c", "d"]))
        await asyncio.sleep(0)
        store.release.set()
        await first
        return store.batches, await rest

    batches, results = asyncio.run(go())
    assert batches == [["a"], ["b", "c", "d"]]
    assert results == [None, None, None]


def test_batches_are_capped() -> None:
    async def go() -> list[list[str]]:
        store = FakeStore()
        batcher: Batcher[str] = Batcher(store.flush, max_batch=2)
        first = asyncio.create_task(batcher.submit("a"))
        await asyncio.sleep(0)
        rest = asyncio.create_task(_submit_all(batcher, ["b", "c", "d", "e", "f"]))
        await asyncio.sleep(0)
        store.release.set()
        await first
        await rest
        return store.batches

    assert asyncio.run(go()) == [["a"], ["b", "c"], ["d", "e"], ["f"]]


def test_a_partial_failure_fails_only_the_writes_not_applied() -> None:
    async def go() -> list[BaseException | None]:
        store = FakeStore(fail_at={1: 1})  # batch 1 applies its first op, then fails
        batcher: Batcher[str] = Batcher(store.flush)
        first = asyncio.create_task(batcher.submit("a"))
        await asyncio.sleep(0)
        rest = asyncio.create_task(_submit_all(batcher, ["b", "c", "d"]))
        await asyncio.sleep(0)
        store.release.set()
        await first
        return await rest

    b, c, d = asyncio.run(go())
    assert b is None
    assert isinstance(c, ValueError) and isinstance(d, ValueError)


def test_a_failed_batch_fails_every_write_in_it_and_the_next_batch_still_runs() -> None:
    async def go() -> tuple[list[BaseException | None], list[list[str]]]:
        store = FakeStore(broken={0})
        batcher: Batcher[str] = Batcher(store.flush)
        first = asyncio.create_task(_submit_all(batcher, ["a", "b"]))
        await asyncio.sleep(0)
        store.release.set()
        failed = await first
        await asyncio.wait_for(batcher.submit("c"), 1)  # raises if it failed
        return failed, store.batches

    failed, batches = asyncio.run(go())
    assert all(isinstance(e, ConnectionError) for e in failed)
    assert batches == [["a", "b"], ["c"]]


def test_a_batch_failing_whole_halves_the_cap_and_successes_restore_it() -> None:
    # Fails if a timed-out batch is retried at full size (the mirror then never catches up).
    async def go() -> tuple[list[int], list[int]]:
        store = FakeStore(broken={1, 2}, error=TimeoutError)
        batcher: Batcher[str] = Batcher(store.flush, max_batch=8)
        first = asyncio.create_task(batcher.submit("a"))
        await asyncio.sleep(0)
        queued = asyncio.create_task(_submit_all(batcher, [f"q{i}" for i in range(8)]))
        await asyncio.sleep(0)
        store.release.set()
        await first
        await queued  # one batch of 8, failed whole: the cap is now 4
        caps = [batcher.cap]
        await _submit_all(batcher, [f"r{i}" for i in range(8)])  # 4 (fail), 2, 2
        caps.append(batcher.cap)
        return [len(b) for b in store.batches], caps

    sizes, caps = asyncio.run(go())
    assert sizes == [1, 8, 4, 2, 2]
    assert caps == [4, 8]


def test_a_database_that_is_down_keeps_the_cap() -> None:
    # Fails if an unreachable database shrank batches: a queue built up during an outage would
    # then fail one write per timeout instead of a batch per attempt.
    async def go() -> int:
        store = FakeStore(broken={1})  # ConnectionError: down, not slow
        batcher: Batcher[str] = Batcher(store.flush, max_batch=8)
        first = asyncio.create_task(batcher.submit("a"))
        await asyncio.sleep(0)
        queued = asyncio.create_task(_submit_all(batcher, [f"q{i}" for i in range(8)]))
        await asyncio.sleep(0)
        store.release.set()
        await first
        await queued
        return batcher.cap

    assert asyncio.run(go()) == 8


async def _until_sent(store: FakeStore) -> None:
    for _ in range(10):  # the submitting task, then the drainer, each take a loop turn
        if store.batches:
            return
        await asyncio.sleep(0)
    raise AssertionError("the first write was never sent")


def _doc(op: str) -> str:
    return op.split(":")[0]  # "x:whole-2" -> document "x"


def _is_whole(op: str) -> bool:
    return "whole" in op


def test_a_whole_write_supersedes_the_queued_one_of_its_document_and_answers_both() -> None:
    """Fails if a newer whole-state write is sent behind the older one (the backlog then grows
    with every state a document passes through), or if the superseded caller is never told."""

    async def go() -> tuple[list[list[str]], list[BaseException | None]]:
        store = FakeStore()
        batcher: Batcher[str] = Batcher(store.flush, document=_doc)
        first = asyncio.create_task(batcher.submit("z:whole-1"))
        await _until_sent(store)  # in flight, held open: never superseded
        queued = [
            batcher.enqueue(op, whole=_is_whole(op))
            for op in ["x:whole-1", "y:whole-1", "x:whole-2", "z:whole-2", "x:whole-3"]
        ]
        store.release.set()
        await first
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        return store.batches, outcomes

    batches, outcomes = asyncio.run(go())
    assert batches == [["z:whole-1"], ["x:whole-3", "y:whole-1", "z:whole-2"]]
    assert outcomes == [None] * 5


def test_a_partial_write_is_never_overtaken_nor_replaced() -> None:
    """Fails if a whole write replaces one queued before a progress report of the same document
    (the report would then land after the newer state and undo it), or replaces the report."""

    async def go() -> list[list[str]]:
        store = FakeStore()
        batcher: Batcher[str] = Batcher(store.flush, document=_doc)
        first = asyncio.create_task(batcher.submit("x:whole-0"))
        await _until_sent(store)
        queued = [
            batcher.enqueue(op, whole=_is_whole(op))
            for op in ["x:whole-1", "x:progress", "x:whole-2"]
        ]
        queued.append(
            batcher.enqueue("x:whole-3", whole=True)
        )  # may replace whole-2, queued after the report
        store.release.set()
        await first
        await asyncio.gather(*queued)
        return store.batches

    assert asyncio.run(go()) == [["x:whole-0"], ["x:whole-1", "x:progress", "x:whole-3"]]


def test_a_superseded_write_shares_the_failure_of_the_write_that_replaced_it() -> None:
    """Fails if a caller whose write was superseded is told it was applied when it was not."""

    async def go() -> list[BaseException | None]:
        store = FakeStore(broken={1})
        batcher: Batcher[str] = Batcher(store.flush, document=_doc)
        first = asyncio.create_task(batcher.submit("x:whole-0"))
        await _until_sent(store)
        queued = [
            batcher.enqueue("x:whole-1", whole=True),
            batcher.enqueue("x:whole-2", whole=True),
        ]
        store.release.set()
        await first
        return await asyncio.gather(*queued, return_exceptions=True)

    outcomes = asyncio.run(go())
    assert [type(o) for o in outcomes] == [ConnectionError, ConnectionError]


def test_urgent_writes_go_first_but_never_ahead_of_an_earlier_write_of_their_document() -> None:
    """Fails if a finished job's record waits behind a burst of new ones (urgent writes sent in
    arrival order), or if an urgent write overtakes an earlier write of the same document."""

    async def go() -> list[list[str]]:
        store = FakeStore()
        urgent = False
        batcher: Batcher[str] = Batcher(
            store.flush, max_batch=3, document=_doc, urgent=lambda: urgent
        )
        first = asyncio.create_task(batcher.submit("q:whole"))
        await _until_sent(store)
        queued = [
            batcher.enqueue(op, whole=_is_whole(op))
            for op in ["a:whole", "b:whole", "c:progress", "d:whole"]
        ]
        urgent = True
        queued += [
            batcher.enqueue(op, whole=_is_whole(op)) for op in ["e:whole", "c:whole", "f:whole"]
        ]
        store.release.set()
        await first
        await asyncio.gather(*queued)
        return store.batches

    assert asyncio.run(go()) == [
        ["q:whole"],
        ["e:whole", "f:whole", "a:whole"],  # c's urgent write waits for its earlier report
        ["b:whole", "c:progress", "d:whole"],
        ["c:whole"],
    ]


def test_every_batch_is_observed_with_its_size_and_outcome() -> None:
    # Fails if a batch goes unreported to the metrics (vidpipe_operator_mongo_batch_*), is
    # reported with another size, or a failed one counts as applied: on-call reads a mirror
    # falling behind from these.
    seen: list[tuple[int, bool]] = []

    async def go() -> None:
        store = FakeStore(broken={1})
        batcher: Batcher[str] = Batcher(
            store.flush, observe=lambda writes, seconds, ok: seen.append((writes, ok))
        )
        first = asyncio.create_task(batcher.submit("a"))
        await asyncio.sleep(0)
        rest = asyncio.create_task(_submit_all(batcher, ["b", "c"]))
        await asyncio.sleep(0)
        store.release.set()
        await first
        await rest
        await batcher.submit("d")

    asyncio.run(go())
    assert seen == [(1, True), (2, False), (1, True)]
