"""Fixed-window rate limits per owner and globally, per minute and per day.

A window with limit N has N numbered slots; a request claims one by inserting the slot's
document (`_id` = window + number), so the database's unique key arbitrates concurrent requests
and exactly N of them get a slot, with no read-then-write race (see `Database.take_slot` for why
not `$inc`). A request refused by any of its limits gives back the slots it took. Attempts
count, not successes: a rejected (bad) upload still used its slot, as an abuse limit should.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vidpipe_api.db import Database
from vidpipe_api.errors import RateLimited
from vidpipe_api.settings import Settings

WINDOWS = {"minute": 60, "day": 86_400}


@dataclass(frozen=True)
class Limit:
    scope: str  # "owner" or "global"
    subject: str
    window: str
    limit: int

    @property
    def seconds(self) -> int:
        return WINDOWS[self.window]


@dataclass(frozen=True)
class WindowSlot:
    counter_id: str
    retry_after: int
    expire_at: datetime


def limits_for(owner: str, settings: Settings) -> list[Limit]:
    configured = [
        Limit("owner", owner, "minute", settings.rate_owner_per_minute),
        Limit("owner", owner, "day", settings.rate_owner_per_day),
        Limit("global", "*", "minute", settings.rate_global_per_minute),
        Limit("global", "*", "day", settings.rate_global_per_day),
    ]
    return [limit for limit in configured if limit.limit > 0]


def slot(limit: Limit, at: float) -> WindowSlot:
    """The counter for the window containing `at` (epoch seconds) and when that window ends."""
    index = math.floor(at / limit.seconds)
    end = (index + 1) * limit.seconds
    return WindowSlot(
        counter_id=f"{limit.scope}:{limit.subject}:{limit.window}:{index}",
        retry_after=max(1, math.ceil(end - at)),
        # Keep the document a little past its window so a TTL sweep never races a late request.
        expire_at=datetime.fromtimestamp(end, UTC) + timedelta(seconds=limit.seconds),
    )


def take(db: Database, owner: str, settings: Settings, at: float) -> None:
    """Consume one slot in every window or none (sync: runs in a worker thread)."""
    taken: list[str] = []
    try:
        for limit in limits_for(owner, settings):
            s = slot(limit, at)
            slot_id = db.take_slot(s.counter_id, limit.limit, s.expire_at)
            if slot_id is None:
                raise RateLimited(limit.scope, limit.window, limit.limit, s.retry_after)
            taken.append(slot_id)
    except BaseException:
        for slot_id in taken:
            db.release_slot(slot_id)
        raise


async def acquire(db: Database, owner: str, settings: Settings) -> None:
    at = datetime.now(UTC).timestamp()
    await db.run(take, db, owner, settings, at)
