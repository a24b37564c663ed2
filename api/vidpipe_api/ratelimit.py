"""Fixed-window rate limits per owner and globally, per minute and per day.

Each window is one MongoDB counter document; a request increments every applicable counter
with `find_one_and_update($inc, upsert)` and reads back the post-increment count, so concurrent
requests serialize on the server and exactly `limit` of them see a count within the limit. A
request over any limit gives back every increment it made. Attempts count, not successes: a
rejected (bad) upload still used its slot, which is the point of an abuse limit.
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
    taken: list[WindowSlot] = []
    try:
        for limit in limits_for(owner, settings):
            s = slot(limit, at)
            count = db.add_to_counter(s.counter_id, 1, s.expire_at)
            taken.append(s)
            if count > limit.limit:
                raise RateLimited(limit.scope, limit.window, limit.limit, s.retry_after)
    except BaseException:
        for s in taken:
            db.add_to_counter(s.counter_id, -1, s.expire_at)
        raise


async def acquire(db: Database, owner: str, settings: Settings) -> None:
    at = datetime.now(UTC).timestamp()
    await db.run(take, db, owner, settings, at)
