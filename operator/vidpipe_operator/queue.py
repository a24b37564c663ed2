"""The per-namespace concurrency limit, decided from a kopf index of all VideoJobs.

kopf keeps the index current from its watch stream and fills it completely before any handler
runs, so after a restart the count of running jobs is right before the first decision.

Fairness between owners: free slots go round-robin between the owners that have jobs waiting,
fewest slots held first (`fair_order`), so one tenant's burst of hour-long jobs cannot hold every
slot while another tenant waits; within one owner, jobs start by `spec.priority` (high first),
then in creation order. Priority never moves a job past another owner's: it only reorders the
owner's own turn.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vidpipe.models import Priority
from vidpipe.phases import Phase


class Slot(StrEnum):
    WAITING = "waiting"  # wants a slot: not finished, no Job recorded yet
    HOLDING = "holding"  # has a Job and is not finished
    RELEASED = "released"  # finished, cancelled or being deleted


@dataclass(frozen=True, order=True)
class QueueEntry:
    created: str  # RFC 3339 sorts lexicographically
    name: str
    slot: Slot
    owner: str = ""
    rank: int = Priority.NORMAL.rank  # spec.priority; higher starts first within the owner


def queue_entry(body: dict[str, Any]) -> QueueEntry:
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    phase = status.get("phase", Phase.PENDING.value)
    if (
        meta.get("deletionTimestamp")
        or spec.get("cancel")
        or phase in {p.value for p in Phase if p.terminal}
    ):
        slot = Slot.RELEASED
    elif status.get("jobName"):
        slot = Slot.HOLDING
    else:
        slot = Slot.WAITING
    created = str(meta.get("creationTimestamp") or "")
    rank = _RANKS.get(str(spec.get("priority")), Priority.NORMAL.rank)
    return QueueEntry(created, meta["name"], slot, str(spec.get("owner") or ""), rank)


# The CRD's enum admits only these; anything else (a VideoJob from before priorities) is normal.
_RANKS = {p.value: p.rank for p in Priority}


@dataclass(frozen=True)
class Admission:
    admitted: bool
    holding: int  # slots in use by other VideoJobs
    position: int  # 1-based place among the waiting, in the order slots are handed out


def _age(entry: QueueEntry) -> tuple[str, str]:
    return entry.created, entry.name


def _turn(entry: QueueEntry) -> tuple[int, str, str]:
    """Within one owner: higher priority first, then oldest."""
    return -entry.rank, entry.created, entry.name


@dataclass
class _OwnerQueue:
    """One owner's waiting jobs: `turns` in the order they start (next last, for O(1) pops)
    and `ages` oldest last, trimmed lazily of jobs already given a slot."""

    turns: list[QueueEntry]
    ages: list[QueueEntry]
    given: set[str]

    def pop(self) -> QueueEntry:
        entry = self.turns.pop()
        self.given.add(entry.name)
        while self.ages and self.ages[-1].name in self.given:
            self.ages.pop()
        return entry

    def oldest(self) -> tuple[str, str]:
        return _age(self.ages[-1])


def fair_order(entries: Iterable[QueueEntry]) -> Iterator[QueueEntry]:
    """The waiting entries in the order they get slots: round-robin between owners.

    Each next slot goes to the owner holding (or already given) the fewest slots; ties go to the
    owner whose oldest waiting job is oldest. That owner's slot goes to its highest-priority job,
    the oldest of those first. A pure function of the index, so every caller (and every operator
    replica) computes the same order.

    Lazy: callers that need the first few (free slots) or one job's place stop early. A heap of
    owners keyed by (slots held or given, oldest waiting job) makes each
    step O(log owners); the 10,000-VideoJob bench spent 12 % of the operator's time in the
    earlier version (a scan of every owner and a list.pop(0) per step, all steps every time)."""
    held: Counter[str] = Counter()
    waiting: dict[str, list[QueueEntry]] = {}
    for e in entries:
        if e.slot is Slot.HOLDING:
            held[e.owner] += 1
        elif e.slot is Slot.WAITING:
            waiting.setdefault(e.owner, []).append(e)
    queues: dict[str, _OwnerQueue] = {}
    heap: list[tuple[int, tuple[str, str], str]] = []
    for owner, jobs in waiting.items():
        queue = _OwnerQueue(
            sorted(jobs, key=_turn, reverse=True), sorted(jobs, key=_age, reverse=True), set()
        )
        queues[owner] = queue
        heap.append((held[owner], queue.oldest(), owner))
    heapq.heapify(heap)
    while heap:
        given, _, owner = heapq.heappop(heap)
        queue = queues[owner]
        yield queue.pop()
        if queue.turns:
            heapq.heappush(heap, (given + 1, queue.oldest(), owner))


def admit(entries: Iterable[QueueEntry], name: str, limit: int) -> Admission:
    """May VideoJob `name` start now? Waiting jobs start in `fair_order`.

    A job that has just been given a Job still shows as waiting until its status write comes back
    through the watch; it keeps its place at the head of the queue meanwhile, so the same slot is
    never handed out twice.
    """
    entries = list(entries)
    mine = next((e for e in entries if e.name == name), None)
    holding = sum(1 for e in entries if e.slot is Slot.HOLDING and e.name != name)
    if mine is not None and mine.slot is Slot.HOLDING:
        return Admission(True, holding, 0)
    position = 0  # not waiting: its place would be after every waiting job
    for e in fair_order(entries):
        if e.name == name:
            break
        position += 1
    return Admission(position < limit - holding, holding, position + 1)


def next_in_line(entries: Iterable[QueueEntry], limit: int) -> list[str]:
    """The waiting VideoJobs that fit in the free slots, in `fair_order`."""
    entries = list(entries)
    holding = sum(1 for e in entries if e.slot is Slot.HOLDING)
    return [e.name for e in itertools.islice(fair_order(entries), max(0, limit - holding))]
