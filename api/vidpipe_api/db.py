"""MongoDB access (sync pymongo, always in worker threads): jobs, API keys, sessions, counters.

The jobs document is the API's read model, shared with the operator, which mirrors VideoJob
status into it: its shape and both writers' updates are `vidpipe.record`. Jobs are parsed into
`JobRecord` here, once, as they are read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import anyio
from pydantic import ValidationError
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from vidpipe.constants import JOBS_COLLECTION
from vidpipe.events import EVENTS_COLLECTION, JobEvent, outbox_insert
from vidpipe.phases import Phase
from vidpipe.record import JobRecord, insert_document
from vidpipe_api.errors import DatabaseUnavailable
from vidpipe_api.pagination import Cursor
from vidpipe_api.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
Doc = dict[str, Any]

KEYS_COLLECTION = "api_keys"
UPLOADS_COLLECTION = "upload_sessions"
COUNTERS_COLLECTION = "rate_slots"
LOCKS_COLLECTION = "locks"


def now() -> datetime:
    # BSON dates have millisecond precision; truncate so cursors round-trip exactly.
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def to_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.client: MongoClient[Doc] = MongoClient(
            settings.mongo_url.get_secret_value(),
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=settings.mongo_timeout_ms,
            connectTimeoutMS=settings.mongo_timeout_ms,
            socketTimeoutMS=max(settings.mongo_timeout_ms * 5, 10_000),
            appname="vidpipe-api",
        )
        db = self.client[settings.mongo_database]
        self.jobs: Collection[Doc] = db[JOBS_COLLECTION]
        self.keys: Collection[Doc] = db[KEYS_COLLECTION]
        self.uploads: Collection[Doc] = db[UPLOADS_COLLECTION]
        self.counters: Collection[Doc] = db[COUNTERS_COLLECTION]
        self.locks: Collection[Doc] = db[LOCKS_COLLECTION]
        self.events: Collection[Doc] = db[EVENTS_COLLECTION]

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one pymongo call in a worker thread; an outage becomes `DatabaseUnavailable`."""
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
        except DuplicateKeyError:
            raise
        except PyMongoError as exc:
            log.warning("mongodb error", extra={"error": type(exc).__name__})
            raise DatabaseUnavailable() from exc

    def close(self) -> None:
        self.client.close()

    def ensure_indexes(self) -> None:
        self.jobs.create_index(
            [("owner", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
        )
        self.jobs.create_index([("cr_created", ASCENDING), ("created_at", ASCENDING)])
        # The event streams' poll (vidpipe_api.streams): an owner's jobs changed since a time.
        self.jobs.create_index(
            [("owner", ASCENDING), ("updated_at", ASCENDING), ("_id", ASCENDING)]
        )
        self.uploads.create_index([("owner", ASCENDING)])
        self.keys.create_index([("owner", ASCENDING)])
        self.counters.create_index([("counter", ASCENDING)])
        try:
            # Slot documents of past windows expire on their own where TTL is supported.
            self.counters.create_index("expire_at", expireAfterSeconds=0)
        except PyMongoError:
            log.info("TTL index unsupported; slot documents are small and per window")

    async def ping(self) -> None:
        await self.run(self.client.admin.command, "ping")

    # -- jobs ------------------------------------------------------------------------------

    async def insert_job(self, record: JobRecord) -> None:
        await self.run(self.jobs.insert_one, insert_document(record))

    async def record_event(self, event: JobEvent) -> None:
        """Add `event` to the event log (the webhook outbox); a repeat adds nothing."""
        query, update = outbox_insert(event)
        await self.run(self.events.update_one, query, update, upsert=True)

    async def get_job(self, owner: str, job_id: str) -> JobRecord | None:
        doc = await self.run(
            self.jobs.find_one, {"_id": job_id, "owner": owner, "deleted": {"$ne": True}}
        )
        return None if doc is None else JobRecord.model_validate(doc)

    async def list_jobs(
        self, owner: str, phase: Phase | None, cursor: Cursor | None, limit: int
    ) -> list[JobRecord]:
        query: Doc = {"owner": owner, "deleted": {"$ne": True}}
        if phase is not None:
            query["phase"] = phase.value
        if cursor is not None:
            at = datetime.fromtimestamp(cursor.created_ms / 1000, UTC)
            query["$or"] = [
                {"created_at": {"$lt": at}},
                {"created_at": at, "_id": {"$lt": cursor.job_id}},
            ]

        def _find() -> list[JobRecord]:
            found = self.jobs.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            return [JobRecord.model_validate(d) for d in found.limit(limit)]

        return await self.run(_find)

    async def update_job(self, job_id: str, fields: Doc) -> None:
        await self.run(
            self.jobs.update_one, {"_id": job_id}, {"$set": {**fields, "updated_at": now()}}
        )

    async def flag_submitted(self, job_id: str) -> JobRecord | None:
        """Record that the job's VideoJob exists; returns the record as it is now."""
        doc = await self.run(
            self.jobs.find_one_and_update,
            {"_id": job_id},
            {"$set": {"cr_created": True, "updated_at": now()}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else JobRecord.model_validate(doc)

    async def jobs_missing_cr(self, older_than: datetime, limit: int = 100) -> list[JobRecord]:
        def _find() -> list[JobRecord]:
            query = {
                "cr_created": False,
                "deleted": {"$ne": True},
                "phase": Phase.PENDING.value,
                "created_at": {"$lt": older_than},
            }
            found = self.jobs.find(query).sort("created_at", ASCENDING).limit(limit)
            records: list[JobRecord] = []
            for doc in found:
                try:
                    records.append(JobRecord.model_validate(doc))
                except ValidationError:
                    # One unreadable document must not stop every job queued behind it.
                    log.error("job record unreadable", extra={"job_id": str(doc.get("_id"))})
            return records

        return await self.run(_find)

    async def count_by_phase(self, owner: str | None) -> dict[str, int]:
        def _count() -> dict[str, int]:
            base: Doc = {"deleted": {"$ne": True}}
            if owner is not None:
                base["owner"] = owner
            return {p.value: self.jobs.count_documents({**base, "phase": p.value}) for p in Phase}

        return await self.run(_count)

    # -- API keys --------------------------------------------------------------------------

    async def find_key(self, key_id: str) -> Doc | None:
        return await self.run(self.keys.find_one, {"_id": key_id, "revoked_at": None})

    # -- upload sessions -------------------------------------------------------------------

    async def insert_upload(self, doc: Doc) -> None:
        await self.run(self.uploads.insert_one, doc)

    async def get_upload(self, owner: str, upload_id: str) -> Doc | None:
        return await self.run(self.uploads.find_one, {"_id": upload_id, "owner": owner})

    async def release_upload(self, upload_id: str) -> None:
        await self.unlock(f"upload:{upload_id}")

    async def delete_upload(self, upload_id: str) -> None:
        await self.run(self.uploads.delete_one, {"_id": upload_id})
        await self.unlock(f"upload:{upload_id}")

    # -- rate-limit slots ------------------------------------------------------------------

    def take_slot(self, counter_id: str, limit: int, expire_at: datetime) -> str | None:
        """Claim one of the `limit` numbered slots of a window; None if all are taken (sync).

        Each slot is a document whose `_id` names the window and the slot number, so the
        server's unique `_id` is the only thing that decides who gets a slot: atomic on MongoDB
        and on FerretDB alike (FerretDB v1 loses concurrent `$inc` updates and conditional
        updates; we measured 7 of 30 concurrent increments surviving).
        """
        used = self.counters.count_documents({"counter": counter_id})
        if used >= limit:
            return None
        candidates = list(range(used + 1, limit + 1))
        for attempt in range(2):
            for number in candidates:
                slot_id = f"{counter_id}#{number}"
                try:
                    self.counters.insert_one(
                        {"_id": slot_id, "counter": counter_id, "expire_at": expire_at}
                    )
                    return slot_id
                except DuplicateKeyError:
                    continue
            if attempt == 0:
                # Slots given back by rejected requests leave holes below the count.
                taken = {d["_id"] for d in self.counters.find({"counter": counter_id}, {"_id": 1})}
                candidates = [n for n in range(1, limit + 1) if f"{counter_id}#{n}" not in taken]
        return None

    def release_slot(self, slot_id: str) -> None:
        self.counters.delete_one({"_id": slot_id})

    # -- locks -------------------------------------------------------------------------------

    async def lock(self, name: str) -> bool:
        """A lock is a unique document: the one insert that succeeds holds it."""
        try:
            await self.run(self.locks.insert_one, {"_id": name, "at": now()})
        except DuplicateKeyError:
            return False
        return True

    async def unlock(self, name: str) -> None:
        await self.run(self.locks.delete_one, {"_id": name})
