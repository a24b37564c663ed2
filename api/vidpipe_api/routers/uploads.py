"""Presigned multipart uploads: the client sends parts straight to S3, then asks us to complete.

The session is stored in MongoDB (`upload_sessions`, `_id` = upload id = job id) so any API
replica can complete it; completion runs the same validation and job creation as `/v1/videos`.

Abuse limits: every part URL is signed with that part's exact `Content-Length` (a session for
1 byte cannot receive 100 MiB), an owner has at most `max_open_sessions_per_owner` sessions
open, completion after `expiresAt` is refused (410) and discards the parts, and the reaper
(`vidpipe_api.reaper`) aborts sessions nobody completes.

Completion is safe to retry. While another request completes the session, a retry gets 409
`upload_completing` with `Retry-After`; a lock older than `reaper_grace_seconds` was left by a
completion that crashed, and is taken over: the retry picks up where it stopped (parts already
assembled, or the job already recorded). Once the job exists, a retry answers with that job.
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from vidpipe.errors import VidpipeError
from vidpipe.keys import source_key
from vidpipe.models import Outputs, PresetRef, Priority
from vidpipe.record import JobRecord
from vidpipe_api import ratelimit, sessions
from vidpipe_api.db import Database, now
from vidpipe_api.deps import (
    ClusterDep,
    CurrentOwner,
    IngestDep,
    JobsRepoDep,
    MetricsDep,
    PrincipalDep,
    SettingsDep,
    StorageDep,
)
from vidpipe_api.errors import (
    InvalidRequest,
    TooManyUploadSessions,
    UploadCompleting,
    UploadNotFound,
    UploadSessionExpired,
    UploadTooLarge,
)
from vidpipe_api.filenames import sanitize_filename
from vidpipe_api.jobs import job_view, new_job_id
from vidpipe_api.options import (
    JobOptions,
    outputs_document,
    parse_job_options,
    parse_metadata,
    permitted,
)
from vidpipe_api.presets import resolve
from vidpipe_api.schemas import (
    ERROR_RESPONSES,
    ErrorOut,
    JobOut,
    PartUrl,
    UploadCompleteIn,
    UploadSessionIn,
    UploadSessionOut,
)
from vidpipe_api.storage import parts_for

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

# S3 allows at most 10,000 parts, so very large files get proportionally larger parts.
MAX_PARTS = 10_000
# Retry-After when the open-session cap is reached: sessions end when completed, aborted or
# expired, none of which a short wait guarantees; a minute keeps a polling client cheap.
SESSION_RETRY_AFTER_SECONDS = 60
# Retry-After while another request completes a session: a live completion ends within seconds
# (and the retry then gets its job); a crashed one's lock goes stale after the reaper's grace.
COMPLETING_RETRY_AFTER_SECONDS = 5


def part_size_for(size: int, minimum: int) -> int:
    size_per_part = -(-size // MAX_PARTS)
    return max(minimum, size_per_part)


def part_lengths(size: int, part_size: int) -> list[int]:
    """The exact length of every part: full parts, then the remainder."""
    count = parts_for(size, part_size)
    return [part_size] * (count - 1) + [size - part_size * (count - 1)]


@router.post(
    "",
    status_code=201,
    response_model=UploadSessionOut,
    responses={
        **ERROR_RESPONSES,
        413: {"model": ErrorOut},
        429: {
            "model": ErrorOut,
            "description": "`rate_limited` or `too_many_upload_sessions`; see `Retry-After`",
        },
    },
    summary="Start a presigned multipart upload",
)
async def create_upload(
    body: UploadSessionIn,
    owner: CurrentOwner,
    principal: PrincipalDep,
    settings: SettingsDep,
    db: JobsRepoDep,
    storage: StorageDep,
    cluster: ClusterDep,
) -> UploadSessionOut:
    """Returns one presigned PUT URL per part; upload each part, keep its ETag, then complete.

    Each URL accepts exactly its part's length (`partSize`, the last part the remainder).
    """
    if body.sizeBytes > settings.max_upload_bytes:
        raise UploadTooLarge(settings.max_upload_bytes)
    options_json = None if body.options is None else json.dumps(body.options)
    asked = {"priority": body.priority or "", "preset": body.preset or ""}
    wanted = permitted(
        parse_job_options(options_json, asked),
        admin=principal.admin,
        high_admins_only=settings.high_priority_admins_only,
    )
    labels = parse_metadata(body.metadata)
    part_size = part_size_for(body.sizeBytes, settings.part_size_bytes)
    count = parts_for(body.sizeBytes, part_size)
    if count > settings.max_session_parts:
        raise InvalidRequest(f"at most {settings.max_session_parts} parts per upload")
    cap = settings.max_open_sessions_per_owner
    if await sessions.count_open(db, owner) >= cap:
        raise TooManyUploadSessions(cap, SESSION_RETRY_AFTER_SECONDS)
    await ratelimit.acquire(db, owner, settings)
    # The preset is read now: the job gets the outputs it had when the upload began. After the
    # rate limit: a lookup costs the API server a read or two, so an attempt naming one counts
    # even when the name is unknown (as in the form upload).
    chosen = await resolve(cluster, wanted)
    job_id = new_job_id()
    key = source_key(job_id)
    filename = sanitize_filename(body.filename)
    metadata = {"original-filename": quote(filename)} if filename else {}
    s3_upload_id = await storage.create_multipart(key, metadata)
    ttl = settings.upload_session_ttl_seconds
    expires = now() + timedelta(seconds=ttl)
    doc: dict[str, Any] = {
        "_id": job_id,
        "owner": owner,
        "key": key,
        "s3_upload_id": s3_upload_id,
        "size_bytes": body.sizeBytes,
        "part_size": part_size,
        "parts": count,
        "filename": filename,
        "content_type": body.contentType,
        "options": outputs_document(chosen.outputs),
        "priority": chosen.priority.value,
        "preset": chosen.preset.model_dump() if chosen.preset else None,
        "metadata": labels,
        "state": "open",
        "created_at": now(),
        "expires_at": expires,
    }
    try:
        await db.insert_upload(doc)
        # Insert, then count: of racing requests the last to insert sees every other one, so
        # the cap is never exceeded (at worst racing requests all back off, answered 429).
        if await sessions.count_open(db, owner) > cap:
            await db.delete_upload(job_id)
            raise TooManyUploadSessions(cap, SESSION_RETRY_AFTER_SECONDS)
    except VidpipeError:
        await storage.abort_multipart(key, s3_upload_id)
        raise
    # Signing is local computation; no I/O per part.
    urls = [
        PartUrl(partNumber=n, url=storage.presign_part(key, s3_upload_id, n, length, ttl))
        for n, length in enumerate(part_lengths(body.sizeBytes, part_size), start=1)
    ]
    return UploadSessionOut(
        uploadId=job_id,
        jobId=job_id,
        partSize=part_size,
        parts=urls,
        completeUrl=f"/v1/uploads/{job_id}/complete",
        expiresAt=expires.isoformat(),
    )


@router.post(
    "/{upload_id}/complete",
    status_code=202,
    response_model=JobOut,
    responses={
        **ERROR_RESPONSES,
        404: {"model": ErrorOut},
        410: {"model": ErrorOut, "description": "The session expired (`upload_session_expired`)"},
        422: {"model": ErrorOut},
    },
    summary="Complete a presigned upload and create the job",
)
async def complete_upload(
    upload_id: str,
    body: UploadCompleteIn,
    owner: CurrentOwner,
    settings: SettingsDep,
    db: JobsRepoDep,
    storage: StorageDep,
    ingest: IngestDep,
    metrics: MetricsDep,
) -> JSONResponse:
    """Assemble the parts, validate the video exactly like `/v1/videos`, and create the job.

    Every part of the session must be listed once; a session past `expiresAt` answers 410.
    Safe to retry: 409 `upload_completing` while another request completes it, then its job.
    """
    session = await claim(db, settings.reaper_grace_seconds, owner, upload_id)
    if session is None:
        # Completed already (the answer was lost on the way): the job is the answer.
        return accepted(await db.get_job(owner, upload_id), upload_id)
    recorded = await db.get_job(owner, upload_id)
    if recorded is not None:
        # A completion that crashed after recording the job: nothing is left to do.
        await db.delete_upload(upload_id)
        return accepted(recorded, upload_id)
    key, s3_id = session["key"], session["s3_upload_id"]
    if session["expires_at"] <= now():
        await storage.abort_multipart(key, s3_id)
        await db.delete_upload(upload_id)
        raise UploadSessionExpired(upload_id)
    numbers = sorted(p.partNumber for p in body.parts)
    expected = int(session["parts"])
    if numbers != list(range(1, expected + 1)):
        await db.release_upload(upload_id)
        raise InvalidRequest(
            f"list each of the session's {expected} parts exactly once",
            {"expectedParts": expected},
        )
    parts = [{"PartNumber": p.partNumber, "ETag": p.etag} for p in body.parts]
    parts.sort(key=lambda p: int(str(p["PartNumber"])))
    try:
        # A retry after a completion that crashed past this step completes it again: versitygw
        # answers a repeated completion with success (a store answering NoSuchUpload would not).
        await storage.complete_multipart(key, s3_id, parts)
    except VidpipeError:
        # Wrong ETags, missing parts or an outage: the client can fix or retry the completion.
        await db.release_upload(upload_id)
        raise
    # The session document (and its lock) stays until the job is recorded or refused: while it
    # exists the reaper leaves the assembled source alone.
    try:
        head = await storage.head(key)
        size = int(head.get("ContentLength", 0)) if head else 0
        if size != int(session["size_bytes"]):
            await storage.delete(key)
            if size > settings.max_upload_bytes:
                raise UploadTooLarge(settings.max_upload_bytes)
            raise InvalidRequest(
                f"the parts add up to {size} bytes, the session declared {session['size_bytes']}",
                {"sizeBytes": size, "declaredBytes": session["size_bytes"]},
            )
        record = await ingest.accept(
            job_id=upload_id,
            owner=owner,
            options=JobOptions(
                Outputs.model_validate(session["options"]),
                # Sessions opened before priorities existed have none.
                Priority(session.get("priority") or Priority.NORMAL),
                PresetRef.model_validate(session["preset"]) if session.get("preset") else None,
            ),
            metadata=dict(session.get("metadata") or {}),
            size=size,
            filename=session.get("filename"),
            content_type=session.get("content_type"),
            via="presigned",
            keep_source_if_unavailable=True,
        )
    except VidpipeError as exc:
        if exc.http_status == 503:
            # MongoDB, S3 or the cluster were unavailable: the assembled source and the session
            # stay, so retrying the completion finishes it instead of the client uploading
            # again. The lock is released if the database answers, else it goes stale.
            with contextlib.suppress(VidpipeError):
                await db.release_upload(upload_id)
            raise
        await db.delete_upload(upload_id)
        raise
    await db.delete_upload(upload_id)
    metrics.upload_bytes.inc(size)
    return accepted(record, upload_id)


async def claim(
    db: Database, grace_seconds: float, owner: str, upload_id: str
) -> dict[str, Any] | None:
    """The session, locked for this request; None if there is none.

    Raises 409 `upload_completing` while a live request holds it; the lock of one that crashed
    (older than the reaper's grace) is taken over.
    """
    session = await db.get_upload(owner, upload_id)
    if session is None:
        return None
    grace = timedelta(seconds=grace_seconds)
    holder: datetime | None = await sessions.acquire(db, f"upload:{upload_id}", now() - grace)
    if holder is not None:
        stale_in = (holder + grace - now()).total_seconds()
        wait = min(COMPLETING_RETRY_AFTER_SECONDS, max(1, math.ceil(stale_in)))
        raise UploadCompleting(upload_id, wait)
    return session


def accepted(record: JobRecord | None, upload_id: str) -> JSONResponse:
    if record is None:
        raise UploadNotFound(upload_id)
    body_out = JobOut.model_validate(job_view(record)).model_dump(mode="json")
    return JSONResponse(body_out, status_code=202, headers={"Location": body_out["url"]})


@router.delete(
    "/{upload_id}",
    status_code=204,
    responses={404: {"model": ErrorOut}},
    summary="Abort a presigned upload",
)
async def abort_upload(
    upload_id: str,
    owner: CurrentOwner,
    settings: SettingsDep,
    db: JobsRepoDep,
    storage: StorageDep,
) -> Response:
    """Discard the uploaded parts; the job is never created."""
    session = await claim(db, settings.reaper_grace_seconds, owner, upload_id)
    if session is None:
        raise UploadNotFound(upload_id)
    await storage.abort_multipart(session["key"], session["s3_upload_id"])
    await db.delete_upload(upload_id)
    return Response(status_code=204)
