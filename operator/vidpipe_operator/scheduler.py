"""The per-namespace concurrency limit, decided from a kopf index of all VideoJobs.

kopf keeps the index current from its watch stream and fills it completely before any handler
runs, so after a restart the count of running jobs is right before the first decision.
"""

from __future__ import annotations

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
    return QueueEntry(str(meta.get("creationTimestamp") or ""), meta["name"], slot)


@dataclass(frozen=True)
class Admission:
    admitted: bool
    holding: int  # slots in use by other VideoJobs
    position: int  # 1-based place among the waiting, in creation order


def admit(entries: Iterable[QueueEntry], name: str, limit: int) -> Admission:
    """May VideoJob `name` start now? Waiting jobs start strictly in creation order.

    A job that has just been given a Job still shows as waiting until its status write comes back
    through the watch; it keeps its place at the head of the queue meanwhile, so the same slot is
    never handed out twice.
    """
    entries = list(entries)
    mine = next((e for e in entries if e.name == name), None)
    holding = sum(1 for e in entries if e.slot is Slot.HOLDING and e.name != name)
    if mine is not None and mine.slot is Slot.HOLDING:
        return Admission(True, holding, 0)
    waiting = sorted(e for e in entries if e.slot is Slot.WAITING)
    names = [e.name for e in waiting]
    position = names.index(name) if name in names else len(names)
    return Admission(position < limit - holding, holding, position + 1)


def next_in_line(entries: Iterable[QueueEntry], limit: int) -> list[str]:
    """The waiting VideoJobs that fit in the free slots, oldest first."""
    entries = list(entries)
    holding = sum(1 for e in entries if e.slot is Slot.HOLDING)
    waiting = sorted(e for e in entries if e.slot is Slot.WAITING)
    return [e.name for e in waiting[: max(0, limit - holding)]]
