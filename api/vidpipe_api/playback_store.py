"""Playback ids in MongoDB (collection `playbacks`) and the short cache `/play` reads them from.

A playback id is what a token's `sub` names and what its owner revokes. `/play` needs, per
request, whether the id is revoked and which outputs its job has; reading MongoDB for that on
every segment would make each a database round trip, so one process keeps what it read for
`playback_state_cache_seconds` (default 5 s). That is the staleness bound of a revocation made
through another replica; one made through this process takes effect at once (its entry is
dropped). The token's signature and expiry need no I/O at all.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pymongo import ASCENDING, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from vidpipe.record import JobRecord
from vidpipe_api.db import Database, now

log = logging.getLogger(__name__)
Doc = dict[str, Any]
K = TypeVar("K")
V = TypeVar("V")

PLAYBACKS_COLLECTION = "playbacks"
# Entries one process caches; past it the oldest go first (a few hundred bytes each).
CACHE_ENTRIES = 10_000


def new_playback_id() -> str:
    return "pb_" + secrets.token_hex(12)


class TtlCache(Generic[K, V]):
    """At most `size` entries, each trusted for `seconds` (0: nothing is cached)."""

    def __init__(self, seconds: float, size: int = CACHE_ENTRIES) -> None:
        self.seconds = seconds
        self.size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] >= self.seconds:
            return False, None
        return True, entry[1]

    def put(self, key: K, value: V) -> None:
        if self.seconds <= 0:
            return
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, key: K) -> None:
        self._entries.pop(key, None)


@dataclass(frozen=True)
class PlaybackState:
    """What `/play` needs to know of a playback id beyond its token."""

    playback_id: str
    owner: str
    job_id: str
    revoked: bool
    # The job's outputs (its record's list, from the manifest); empty once the job is deleted.
    outputs: frozenset[str]


class PlaybackStore:
    def __init__(self, db: Database, cache_seconds: float) -> None:
        self.db = db
        self.playbacks: Collection[Doc] = db.client[db.jobs.database.name][PLAYBACKS_COLLECTION]
        self.cache: TtlCache[str, PlaybackState | None] = TtlCache(cache_seconds)

    def ensure_indexes(self) -> None:
        self.playbacks.create_index([("owner", ASCENDING), ("job_id", ASCENDING)])
        try:
            # An id whose last token has expired needs no record: nothing can play it.
            self.playbacks.create_index("expires_at", expireAfterSeconds=0)
        except PyMongoError:
            log.info("TTL index unsupported; playback records stay until their job is deleted")

    async def create(
        self, owner: str, job_id: str, expires_at: datetime, max_resolution: str | None
    ) -> Doc:
        doc: Doc = {
            "_id": new_playback_id(),
            "owner": owner,
            "job_id": job_id,
            "created_at": now(),
            "expires_at": expires_at,
            "max_resolution": max_resolution,
            "revoked_at": None,
        }
        await self.db.run(self.playbacks.insert_one, doc)
        return doc

    async def revoke(self, owner: str, playback_id: str) -> Doc | None:
        """Mark the id revoked (a repeat keeps the first time); None if it is not the owner's."""
        doc = await self.db.run(
            self.playbacks.find_one_and_update,
            {"_id": playback_id, "owner": owner, "revoked_at": None},
            {"$set": {"revoked_at": now()}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # already revoked, or not this owner's
            doc = await self.db.run(self.playbacks.find_one, {"_id": playback_id, "owner": owner})
        self.cache.drop(playback_id)
        return doc

    async def state(self, playback_id: str) -> PlaybackState | None:
        """The id's state, from the cache when fresh enough; None if there is no such id."""
        hit, cached = self.cache.get(playback_id)
        if hit:
            return cached
        doc = await self.db.run(self.playbacks.find_one, {"_id": playback_id})
        state: PlaybackState | None = None
        if doc is not None:
            job: JobRecord | None = await self.db.get_job(str(doc["owner"]), str(doc["job_id"]))
            state = PlaybackState(
                playback_id=playback_id,
                owner=str(doc["owner"]),
                job_id=str(doc["job_id"]),
                revoked=doc.get("revoked_at") is not None,
                outputs=frozenset(job.outputs if job is not None and job.succeeded else ()),
            )
        self.cache.put(playback_id, state)
        return state
