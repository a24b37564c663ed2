"""Paths of the seed (Celery-era) service, kept as thin aliases of the v1 endpoints.

Documented in docs/api.md; they return the v1 JSON (with `seedStatus` carrying the old status
name), so old clients keep working while they move to `/v1`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from vidpipe.errors import ErrorCode, VidpipeError
from vidpipe.keys import POSTER_NAME, output_key
from vidpipe_api.deps import ContextDep, JobDoc
from vidpipe_api.routers import jobs as jobs_routes
from vidpipe_api.routers import system

router = APIRouter(tags=["seed aliases"], include_in_schema=True, deprecated=True)

router.add_api_route("/api/health/check", system.healthz, methods=["GET"], summary="= /healthz")
router.add_api_route("/api/tasks", jobs_routes.list_jobs, methods=["GET"], summary="= GET /v1/jobs")
router.add_api_route(
    "/api/tasks/{job_id}", jobs_routes.get_job, methods=["GET"], summary="= GET /v1/jobs/{id}"
)


@router.get("/api/tasks/{job_id}/thumbnail", summary="Redirect to the poster image")
async def thumbnail(job: JobDoc, ctx: ContextDep) -> RedirectResponse:
    """307 to a short-lived presigned link of the poster (404 until it exists)."""
    key = output_key(str(job["_id"]), POSTER_NAME)
    if await ctx.storage.head(key) is None:
        raise VidpipeError(ErrorCode.NOT_FOUND, "the job has no poster (yet)")
    return RedirectResponse(ctx.storage.presign_get(key), status_code=307)
