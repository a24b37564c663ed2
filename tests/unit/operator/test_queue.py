"""The per-namespace concurrency limit: who may start, in which order."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.unit.operator.conftest import videojob
from vidpipe.models import Priority
from vidpipe_operator.queue import (
    QueueEntry,
    Slot,
    admit,
    fair_order,
    next_in_line,
    queue_entry,
)

pytestmark = pytest.mark.unit


def entry(name: str, slot: Slot, minute: int) -> QueueEntry:
    return QueueEntry(f"2026-01-01T00:{minute:02d}:00Z", name, slot)


def _body(status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    body = videojob("j")
    body["metadata"].update(meta)
    if status is not None:
        body["status"] = status
    return body


@pytest.mark.parametrize(
    ("body", "slot"),
    [
        (_body(), Slot.WAITING),
        (_body({"phase": "Pending"}), Slot.WAITING),
        (_body({"phase": "Pending", "jobName": "vj-j"}), Slot.HOLDING),
        (_body({"phase": "Running", "jobName": "vj-j"}), Slot.HOLDING),
        (_body({"phase": "Succeeded", "jobName": "vj-j"}), Slot.RELEASED),
        (_body({"phase": "Cancelled"}), Slot.RELEASED),
        (_body({"phase": "Running"}, deletionTimestamp="2026-01-01T00:00:00Z"), Slot.RELEASED),
    ],
)
def test_queue_entry(body: dict[str, Any], slot: Slot) -> None:
    assert queue_entry(body).slot is slot


def test_cancel_releases_the_slot() -> None:
    body = _body({"phase": "Running", "jobName": "vj-j"})
    body["spec"]["cancel"] = True
    assert queue_entry(body).slot is Slot.RELEASED


def test_oldest_waiting_start_first() -> None:
    entries = [
        entry("running", Slot.HOLDING, 0),
        entry("c", Slot.WAITING, 3),
        entry("a", Slot.WAITING, 1),
        entry("b", Slot.WAITING, 2),
        entry("done", Slot.RELEASED, 0),
    ]
    assert admit(entries, "a", 2).admitted
    assert not admit(entries, "b", 2).admitted
    assert admit(entries, "b", 2).position == 2 and admit(entries, "b", 2).holding == 1
    assert admit(entries, "b", 3).admitted and not admit(entries, "c", 3).admitted
    assert next_in_line(entries, 3) == ["a", "b"]
    assert next_in_line(entries, 1) == []


def test_a_job_holding_a_slot_is_always_admitted() -> None:
    entries = [entry("x", Slot.HOLDING, 0), entry("y", Slot.HOLDING, 1)]
    assert admit(entries, "x", 1).admitted


def test_same_second_ties_break_by_name() -> None:
    entries = [entry("b", Slot.WAITING, 0), entry("a", Slot.WAITING, 0)]
    assert admit(entries, "a", 1).admitted and not admit(entries, "b", 1).admitted


def test_unknown_job_queues_last() -> None:
    entries = [entry("a", Slot.WAITING, 0)]
    assert not admit(entries, "new", 1).admitted
    assert admit(entries, "new", 2).admitted


# -- fairness between owners (issue 11) -------------------------------------------------------


def owned(name: str, owner: str, slot: Slot, minute: int) -> QueueEntry:
    return QueueEntry(f"2026-01-01T00:{minute:02d}:00Z", name, slot, owner)


def test_one_owners_burst_does_not_hold_every_slot() -> None:
    # Alice uploaded four long jobs first; Bob one a minute later. Two slots.
    entries = [owned(f"a{i}", "alice", Slot.WAITING, i) for i in range(4)]
    entries.append(owned("b0", "bob", Slot.WAITING, 9))
    # Fails with strict creation order, which would start a0 and a1 and leave Bob waiting.
    assert next_in_line(entries, 2) == ["a0", "b0"]
    assert admit(entries, "b0", 2).admitted and admit(entries, "b0", 2).position == 2
    assert not admit(entries, "a1", 2).admitted


def test_slots_already_held_count_against_their_owner() -> None:
    entries = [
        owned("a-running", "alice", Slot.HOLDING, 0),
        owned("a1", "alice", Slot.WAITING, 1),
        owned("b1", "bob", Slot.WAITING, 5),
        owned("b2", "bob", Slot.WAITING, 6),
        owned("c1", "carol", Slot.WAITING, 7),
    ]
    # Bob and Carol hold nothing, so they come before Alice's second job; Bob's oldest is older.
    assert [e.name for e in fair_order(entries)] == ["b1", "c1", "a1", "b2"]
    assert next_in_line(entries, 3) == ["b1", "c1"]


def test_within_one_owner_jobs_start_in_creation_order() -> None:
    entries = [owned("late", "alice", Slot.WAITING, 5), owned("early", "alice", Slot.WAITING, 1)]
    assert [e.name for e in fair_order(entries)] == ["early", "late"]


def test_owner_is_read_from_the_spec() -> None:
    body = _body()
    body["spec"]["owner"] = "tenant-7"
    assert queue_entry(body).owner == "tenant-7"


def _reference_order(entries: list[QueueEntry]) -> list[QueueEntry]:
    """fair_order's rule spelt out the slow, obvious way: each step scans every owner."""
    held = {e.owner: 0 for e in entries}
    for e in entries:
        held[e.owner] += e.slot is Slot.HOLDING
    waiting = sorted(
        (e for e in entries if e.slot is Slot.WAITING), key=lambda e: (e.created, e.name)
    )
    order: list[QueueEntry] = []
    while waiting:
        oldest: dict[str, QueueEntry] = {}
        for e in waiting:
            oldest.setdefault(e.owner, e)
        owner = min(oldest, key=lambda o: (held[o], oldest[o].created, oldest[o].name))
        # The owner's highest priority; among those, the first in creation order.
        top = max(e.rank for e in waiting if e.owner == owner)
        chosen = next(e for e in waiting if e.owner == owner and e.rank == top)
        order.append(chosen)
        waiting.remove(chosen)
        held[owner] += 1
    return order


@pytest.mark.parametrize("seed", range(20))
def test_fair_order_admit_and_next_in_line_agree_with_the_rule(seed: int) -> None:
    # Fails if the heap-based order differs from the rule (fewest slots held or given first,
    # ties to the oldest waiting job; within the owner the highest priority, then the oldest) on
    # random queues with several owners, priorities, equal creation times and held slots, or if
    # admit's position or next_in_line disagree with that order.
    rng = random.Random(seed)
    owners = [f"o{i}" for i in range(rng.randint(1, 5))]
    entries = [
        QueueEntry(
            f"2026-01-01T00:{rng.randint(0, 9):02d}:00Z",
            f"j{i:03d}",
            rng.choice([Slot.WAITING, Slot.WAITING, Slot.HOLDING, Slot.RELEASED]),
            rng.choice(owners),
            rng.choice([p.rank for p in Priority]),
        )
        for i in range(rng.randint(0, 60))
    ]
    rng.shuffle(entries)
    expected = _reference_order(entries)
    assert list(fair_order(entries)) == expected
    limit = rng.randint(0, 40)
    holding = sum(e.slot is Slot.HOLDING for e in entries)
    assert next_in_line(entries, limit) == [e.name for e in expected[: max(0, limit - holding)]]
    for place, e in enumerate(expected):
        assert admit(entries, e.name, limit).position == place + 1
    for e in entries:
        if e.slot is Slot.RELEASED:
            assert admit(entries, e.name, limit).position == len(expected) + 1


# -- priority within an owner (issue 16) ------------------------------------------------------

LOW, NORMAL, HIGH = (p.rank for p in (Priority.LOW, Priority.NORMAL, Priority.HIGH))


def ranked(name: str, owner: str, minute: int, rank: int) -> QueueEntry:
    return QueueEntry(f"2026-01-01T00:{minute:02d}:00Z", name, Slot.WAITING, owner, rank)


@pytest.mark.parametrize(("priority", "rank"), [("low", LOW), ("high", HIGH), (None, NORMAL)])
def test_priority_is_read_from_the_spec(priority: str | None, rank: int) -> None:
    # Fails if spec.priority is ignored, or a VideoJob without one is not normal.
    body = _body() if priority is None else videojob("j", priority=priority)
    assert queue_entry(body).rank == rank


def test_within_one_owner_higher_priority_starts_first_then_the_oldest() -> None:
    # Fails if an owner's later high-priority job waits behind its earlier low ones, or if
    # equal priorities stop starting in creation order.
    entries = [
        ranked("low-1", "alice", 1, LOW),
        ranked("normal-2", "alice", 2, NORMAL),
        ranked("high-5", "alice", 5, HIGH),
        ranked("high-4", "alice", 4, HIGH),
        ranked("low-0", "alice", 0, LOW),
    ]
    assert [e.name for e in fair_order(entries)] == [
        "high-4", "high-5", "normal-2", "low-0", "low-1"
    ]  # fmt: skip


def test_priority_never_moves_a_job_past_another_owners_turn() -> None:
    # Alice holds a slot and has a high-priority job waiting; Bob's low-priority job arrived
    # later. Fails if priority outranked fairness: Bob holds nothing, so his job goes first.
    entries = [
        owned("a-running", "alice", Slot.HOLDING, 0),
        ranked("a-high", "alice", 1, HIGH),
        ranked("b-low", "bob", 2, LOW),
    ]
    assert next_in_line(entries, 2) == ["b-low"]
    assert [e.name for e in fair_order(entries)] == ["b-low", "a-high"]


def test_owner_ties_go_to_the_longest_waiting_owner_whatever_its_next_job() -> None:
    # Alice's oldest waiting job (minute 0) is older than Bob's (minute 1), though her next
    # job (high, minute 9) is younger. Fails if the tie went by the next job's age instead.
    entries = [
        ranked("a-low", "alice", 0, LOW),
        ranked("a-high", "alice", 9, HIGH),
        ranked("b", "bob", 1, NORMAL),
    ]
    assert [e.name for e in fair_order(entries)] == ["a-high", "b", "a-low"]
