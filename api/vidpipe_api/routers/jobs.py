"""The caller's jobs: list, detail with download links, cancel, delete; and phase counts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from vidpipe.keys import output_prefix, source_key
from vidpipe.phases import Phase
from vidpipe_api.db import now, terminal
from vidpipe_api.deps import ContextDep, CurrentOwner, JobDoc, PrincipalDep
from vidpipe_api.errors import JobAlreadyFinished
from vidpipe_api.jobs import classify_outputs, cursor_of, job_view
from vidpipe_api.pagination import Cursor, decode_cursor, encode_cursor
from vidpipe_api.schemas import ERROR_RESPONSES, ErrorOut, JobList, JobOut, Stats

router = APIRouter(tags=["jobs"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such job for this caller"}
}


@router.get("/v1/jobs", response_model=JobList, responses=ERROR_RESPONSES)
async def list_jobs(
    ctx: ContextDep,
    owner: CurrentOwner,
    phase: Annotated[Phase | None, Query(description="Only jobs in this phase")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="From `nextCursor`")] = None,
) -> JobList:
    """The caller's jobs, newest first, `limit` at a time."""
    after = decode_cursor(cursor) if cursor else None
    docs = await ctx.db.list_jobs(owner, phase, after, limit + 1)
    page = docs[:limit]
    next_cursor = encode_cursor(Cursor(*cursor_of(page[-1]))) if len(docs) > limit else None
    return JobList(
        items=[JobOut.model_validate(job_view(d)) for d in page],
        nextCursor=next_cursor,
    )


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses={**ERROR_RESPONSES, **NOT_FOUND})
async def get_job(job: JobDoc, ctx: ContextDep) -> JobOut:
    """Phase, progress, timings, media facts, error, and fresh presigned links to every output."""
    view = job_view(job)
    if job.get("phase") != Phase.PENDING.value:
        keys = await ctx.storage.list_keys(output_prefix(str(job["_id"])))
        # Links are built per request and expire after `presign_ttl_seconds`; never logged.
        view["downloads"] = classify_outputs(str(job["_id"]), keys, ctx.storage.presign_get)
    return JobOut.model_validate(view)


@router.post(
    "/v1/jobs/{job_id}/cancel",
    status_code=202,
    response_model=JobOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND, 409: {"model": ErrorOut}},
)
async def cancel_job(job: JobDoc, ctx: ContextDep) -> JobOut:
    """Ask the operator to stop the job (`spec.cancel: true`); 409 if it already finished."""
    job_id, phase = str(job["_id"]), str(job.get("phase"))
    if terminal(phase):
        raise JobAlreadyFinished(job_id, phase)
    if not job.get("cr_created"):
        # No VideoJob yet (the cluster was down): settled here, or by the reconciler, which then
        # never creates it (vidpipe_api.jobs).
        await ctx.ingest.cancel_unsubmitted(job)
    else:
        await ctx.cluster.request_cancel(job_id)
        await ctx.db.update_job(job_id, {"cancel_requested": True})
        job["cancel_requested"] = True
    return JobOut.model_validate(job_view(job))


@router.delete("/v1/jobs/{job_id}", status_code=204, responses={**ERROR_RESPONSES, **NOT_FOUND})
async def delete_job(job: JobDoc, ctx: ContextDep) -> Response:
    """Stop it if running, delete its outputs and source, keep an audit record.

    The VideoJob goes first (its Job and Pods follow by owner reference), so nothing writes new
    outputs while they are being deleted; the MongoDB document stays, marked `deleted`.
    """
    job_id = str(job["_id"])
    await ctx.cluster.delete(job_id)
    await ctx.storage.delete_prefix(output_prefix(job_id))
    await ctx.storage.delete(source_key(job_id))
    fields: dict[str, Any] = {"deleted": True, "deleted_at": now()}
    if not terminal(str(job.get("phase"))):
        fields["phase"] = Phase.CANCELLED.value
    await ctx.db.update_job(job_id, fields)
    return Response(status_code=204)


@router.get("/v1/stats", response_model=Stats, responses=ERROR_RESPONSES, tags=["system"])
async def stats(ctx: ContextDep, principal: PrincipalDep) -> Stats:
    """Job counts by phase for the caller, and for everyone when the key is an admin key."""
    mine = await ctx.db.count_by_phase(principal.owner)
    total = await ctx.db.count_by_phase(None) if principal.admin else None
    return Stats(owner=mine, total=total)
