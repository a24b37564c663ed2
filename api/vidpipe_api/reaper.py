"""Remove what abandoned uploads leave behind: expired sessions, orphaned multipart uploads, and
sources whose job never became durable (no MongoDB record).

It runs in the API, not the operator, because the API owns everything it removes: it creates the
sessions and their multipart uploads, streams uploads, and writes the job record that decides
whether a source is durable. The operator only ever sees jobs that already have a record and a
VideoJob, and it would need S3 list/abort rights and the session collection for this alone.

Every API replica runs it. Each action is idempotent (aborting a gone upload, deleting a gone
object or session is a no-op), and a round is claimed through a unique lock document, so
replicas split rounds rather than repeat them. Nothing younger than the grace period is
touched:
  - a session is reaped once it has expired (completion refuses it from then on), unless a
    completion started before expiry still holds its lock (a lock older than the grace period
    is a crashed completion and is taken over);
  - a multipart upload or source object with no session is reaped only when it is older than
    `upload_total_timeout_seconds + reaper_grace_seconds`: a streamed upload is received within
    the first, and stored, probed and recorded within the second.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta

from vidpipe.constants import JOBS_COLLECTION
from vidpipe.errors import VidpipeError
from vidpipe.keys import source_key
from vidpipe_api import sessions
from vidpipe_api.db import UPLOADS_COLLECTION, Database, now
from vidpipe_api.settings import Settings
from vidpipe_api.storage import Storage

log = logging.getLogger(__name__)

SOURCES_PREFIX = "sources/"
# Job ids looked up per MongoDB query when checking listed sources.
BATCH = 500
ROUND_LOCK_PREFIX = "reaper:"


@dataclass
class ReapReport:
    sessions: int = 0
    uploads: int = 0
    sources: int = 0


def job_id_of(key: str) -> str | None:
    """The job id of a source key, or None for a key the API would never have written."""
    parts = key.split("/")
    if len(parts) == 3 and parts[1] and source_key(parts[1]) == key:
        return parts[1]
    return None


async def reap_once(storage: Storage, db: Database, settings: Settings) -> ReapReport:
    """One pass over sessions, pending multipart uploads and sources; returns what it removed."""
    report = ReapReport()
    at = now()
    grace = timedelta(seconds=settings.reaper_grace_seconds)
    orphan_before = at - grace - timedelta(seconds=settings.upload_total_timeout_seconds)

    for session in await sessions.expired(db, at):
        upload_id = str(session["_id"])
        # A completion that started before expiry may still run; an older lock is a crash's.
        if await sessions.acquire(db, f"upload:{upload_id}", at - grace) is not None:
            continue
        await storage.abort_multipart(str(session["key"]), str(session["s3_upload_id"]))
        await db.delete_upload(upload_id)  # also gives the lock back
        report.sessions += 1
        log.info("expired upload session reaped", extra={"job_id": upload_id})

    pending = await storage.list_pending_uploads(SOURCES_PREFIX)
    old_uploads = [u for u in pending if u.initiated < orphan_before]
    for start in range(0, len(old_uploads), BATCH):
        batch = old_uploads[start : start + BATCH]
        ids = [i for i in (job_id_of(u.key) for u in batch) if i is not None]
        owned = await sessions.existing_ids(db, UPLOADS_COLLECTION, ids)
        for upload in batch:
            if job_id_of(upload.key) in owned:
                continue  # its session decides (and is reaped above once it expires)
            await storage.abort_multipart(upload.key, upload.upload_id)
            report.uploads += 1
            log.info("orphaned multipart upload aborted", extra={"key": upload.key})

    objects = await storage.list_objects(SOURCES_PREFIX)
    old_objects = [o for o in objects if o.last_modified < orphan_before]
    for start in range(0, len(old_objects), BATCH):
        by_id = {
            i: o for o in old_objects[start : start + BATCH] if (i := job_id_of(o.key)) is not None
        }
        ids = list(by_id)
        durable = await sessions.existing_ids(db, JOBS_COLLECTION, ids)
        in_session = await sessions.existing_ids(db, UPLOADS_COLLECTION, ids)
        for job_id, obj in by_id.items():
            if job_id in durable or job_id in in_session:
                continue
            await storage.delete(obj.key)
            report.sources += 1
            log.info("source without a job record deleted", extra={"job_id": job_id})
    return report


async def claim_round(db: Database, interval: float) -> bool:
    """True for the one replica that claims the current interval's round."""
    index = math.floor(time.time() / interval)
    if not await db.lock(f"{ROUND_LOCK_PREFIX}{index}"):
        return False
    # Claims of past rounds are of no further use; keep the collection small.
    cutoff = now() - timedelta(seconds=2 * interval)
    await db.run(
        db.locks.delete_many,
        {
            "_id": {"$gte": ROUND_LOCK_PREFIX, "$lt": ROUND_LOCK_PREFIX + "\uffff"},
            "at": {"$lt": cutoff},
        },
    )
    return True


async def run_forever(storage: Storage, db: Database, settings: Settings) -> None:
    interval = settings.reaper_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            if not await claim_round(db, interval):
                continue
            report = await reap_once(storage, db, settings)
            if report.sessions or report.uploads or report.sources:
                log.info(
                    "reaper round",
                    extra={
                        "sessions": report.sessions,
                        "uploads": report.uploads,
                        "sources": report.sources,
                    },
                )
        except VidpipeError as exc:
            log.warning("reaper round skipped", extra={"code": exc.code.value})
        except Exception:
            log.exception("reaper round failed")
