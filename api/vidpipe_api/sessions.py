"""Queries on presigned upload sessions (`upload_sessions`) for the open-session cap and the reaper.

They run through `Database.run` (pymongo in a worker thread, outages mapped to 503) on the
collections `Database` already opens; the session documents are written by `routers/uploads.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vidpipe_api.db import Database, now

Doc = dict[str, Any]


async def count_open(db: Database, owner: str) -> int:
    """Sessions of `owner` that have not expired (completed and aborted ones are deleted)."""
    return await db.run(db.uploads.count_documents, {"owner": owner, "expires_at": {"$gt": now()}})


async def expired(db: Database, before: datetime, limit: int = 500) -> list[Doc]:
    """Sessions whose expiry is older than `before`, oldest first."""

    def _find() -> list[Doc]:
        query = {"expires_at": {"$lt": before}}
        return list(db.uploads.find(query).sort("expires_at", 1).limit(limit))

    return await db.run(_find)


async def existing_ids(db: Database, collection: str, ids: list[str]) -> set[str]:
    """Which of `ids` have a document in `collection` (one `$in` query)."""
    if not ids:
        return set()

    def _find() -> set[str]:
        found = db.client[db.jobs.database.name][collection].find({"_id": {"$in": ids}}, {"_id": 1})
        return {str(d["_id"]) for d in found}

    return await db.run(_find)


async def acquire(db: Database, name: str, stale_before: datetime) -> datetime | None:
    """Take the lock `name`; None once held, else when its live holder took it.

    A lock taken before `stale_before` belongs to a holder that crashed, and is taken over. Only
    that very lock document is deleted (matched on its time), so of requests taking it over at
    once exactly one succeeds and the others see it held.
    """
    for _ in range(3):
        if await db.lock(name):
            return None
        doc = await db.run(db.locks.find_one, {"_id": name})
        if doc is None:
            continue  # given back meanwhile
        at = doc.get("at")
        if isinstance(at, datetime) and at >= stale_before:
            return at
        await db.run(db.locks.delete_one, {"_id": name, "at": at})
    return now()  # taken over by another request just now
