"""The per-namespace concurrency limit, decided from a kopf index of all VideoJobs.

kopf keeps the index current from its watch stream and fills it completely before any handler
runs, so after a restart the count of running jobs is right before the first decision.

Fairness between owners: free slots go round-robin between the owners that have jobs waiting,
fewest slots held first (`fair_order`), so one tenant's burst of hour-long jobs cannot hold every
slot while another tenant waits; within one owner, jobs start in creation order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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
    return QueueEntry(created, meta["name"], slot, str(spec.get("owner") or ""))


@dataclass(frozen=True)
class Admission:
    admitted: bool
    holding: int  # slots in use by other VideoJobs
    position: int  # 1-based place among the waiting, in the order slots are handed out


def fair_order(entries: Iterable[QueueEntry]) -> list[QueueEntry]:
    """The waiting entries in the order they get slots: round-robin between owners.

    Each next slot goes to the owner holding (or already given) the fewest slots; ties go to the
    owner whose oldest waiting job is oldest. A pure function of the index, so every caller (and
    every operator replica) computes the same order.
    """
    entries = list(entries)
    held = Counter(e.owner for e in entries if e.slot is Slot.HOLDING)
    queues: dict[str, list[QueueEntry]] = {}
    for e in sorted(e for e in entries if e.slot is Slot.WAITING):
        queues.setdefault(e.owner, []).append(e)
    order: list[QueueEntry] = []
    while queues:
        owner = min(queues, key=lambda o: (held[o], queues[o][0]))
        order.append(queues[owner].pop(0))
        held[owner] += 1
        if not queues[owner]:
            del queues[owner]
    return order


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
    names = [e.name for e in fair_order(entries)]
    position = names.index(name) if name in names else len(names)
    return Admission(position < limit - holding, holding, position + 1)


def next_in_line(entries: Iterable[QueueEntry], limit: int) -> list[str]:
    """The waiting VideoJobs that fit in the free slots, in `fair_order`."""
    entries = list(entries)
    holding = sum(1 for e in entries if e.slot is Slot.HOLDING)
    return [e.name for e in fair_order(entries)[: max(0, limit - holding)]]
