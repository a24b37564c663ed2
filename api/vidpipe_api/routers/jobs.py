"""The caller's jobs: list, detail with download links, cancel, delete; and phase counts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from vidpipe.events import EventType, record_event
from vidpipe.keys import output_prefix, source_key
from vidpipe.phases import Phase
from vidpipe.record import deleted_fields
from vidpipe_api.db import now
from vidpipe_api.deps import (
    ClusterDep,
    CurrentOwner,
    IngestDep,
    JobRecordDep,
    JobsRepoDep,
    PrincipalDep,
    StorageDep,
)
from vidpipe_api.errors import JobAlreadyFinished
from vidpipe_api.jobs import cursor_of, downloads, job_view
from vidpipe_api.pagination import Cursor, decode_cursor, encode_cursor
from vidpipe_api.schemas import ERROR_RESPONSES, ErrorOut, JobList, JobOut, Stats

router = APIRouter(tags=["jobs"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such job for this caller"}
}


@router.get("/v1/jobs", response_model=JobList, responses=ERROR_RESPONSES)
async def list_jobs(
    db: JobsRepoDep,
    owner: CurrentOwner,
    phase: Annotated[Phase | None, Query(description="Only jobs in this phase")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="From `nextCursor`")] = None,
) -> JobList:
    """The caller's jobs, newest first, `limit` at a time."""
    after = decode_cursor(cursor) if cursor else None
    records = await db.list_jobs(owner, phase, after, limit + 1)
    page = records[:limit]
    next_cursor = encode_cursor(Cursor(*cursor_of(page[-1]))) if len(records) > limit else None
    return JobList(
        items=[JobOut.model_validate(job_view(r)) for r in page],
        nextCursor=next_cursor,
    )


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses={**ERROR_RESPONSES, **NOT_FOUND})
async def get_job(job: JobRecordDep, storage: StorageDep) -> JobOut:
    """Phase, progress, timings, media facts, error, and fresh presigned links to every output
    once the job has succeeded (none before: what a running job has stored may be partial)."""
    # Links are built per request and expire after `presign_ttl_seconds`; never logged.
    view = {**job_view(job), "downloads": downloads(job, storage.presign_get)}
    return JobOut.model_validate(view)


@router.post(
    "/v1/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND, 409: {"model": ErrorOut}},
)
async def cancel_job(
    job: JobRecordDep, ingest: IngestDep, cluster: ClusterDep, db: JobsRepoDep
) -> JobOut:
    """Ask the operator to stop the job (`spec.cancel: true`); 409 if it already finished.

    The phase stays the operator's to record; only a job that never reached the cluster is
    Cancelled here (vidpipe.record).
    """
    if job.phase.terminal:
        raise JobAlreadyFinished(job.id, job.phase.value)
    if not job.cr_created:
        # No VideoJob yet (the cluster was down): settled here, or by the reconciler, which then
        # never creates it (vidpipe_api.jobs).
        job = await ingest.cancel_unsubmitted(job)
    else:
        await cluster.request_cancel(job.id)
        await db.update_job(job.id, {"cancel_requested": True})
        job = job.updated({"cancel_requested": True})
    return JobOut.model_validate(job_view(job))


@router.delete("/v1/jobs/{job_id}", status_code=204, responses={**ERROR_RESPONSES, **NOT_FOUND})
async def delete_job(
    job: JobRecordDep, cluster: ClusterDep, storage: StorageDep, db: JobsRepoDep
) -> Response:
    """Stop it if running, delete its outputs and source, keep an audit record.

    The VideoJob goes first (its Job and Pods follow by owner reference), so nothing writes new
    outputs while they are being deleted; the MongoDB document stays, marked `deleted`. The
    operator records an unfinished job Cancelled when it sees the VideoJob go; one that never
    reached the cluster is recorded Cancelled here.
    """
    existed = await cluster.delete(job.id)
    await storage.delete_prefix(output_prefix(job.id))
    await storage.delete(source_key(job.id))
    reached = existed or job.cr_created
    at = now()
    fields = deleted_fields(job, at, reached_cluster=reached)
    # The event first: if the record update then fails, the client's retry of the DELETE logs
    # the same event (one id); the other order could lose it.
    await db.record_event(record_event(job.updated(fields), EventType.DELETED, at))
    await db.update_job(job.id, fields)
    return Response(status_code=204)


@router.get("/v1/stats", response_model=Stats, responses=ERROR_RESPONSES, tags=["system"])
async def stats(db: JobsRepoDep, principal: PrincipalDep) -> Stats:
    """Job counts by phase for the caller, and for everyone when the key is an admin key."""
    mine = await db.count_by_phase(principal.owner)
    total = await db.count_by_phase(None) if principal.admin else None
    return Stats(owner=mine, total=total)
