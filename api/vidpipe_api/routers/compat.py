"""The replaced service's paths, for its clients: thin adapters over the v1 routes and services.

Uploads go through `videos.ingest_form` (the v1 form upload: slots, rate limits, streaming,
ffprobe validation, job record, VideoJob), listings through the v1 jobs routes, queue figures
through `/v1/stats`. Only the names and shapes differ, as `vidpipe_api.compat` maps them.

Refusals (decided in docs/api.md, "Migrating from the replaced service"): 200 with
`status: "error"` and the old `internal_status_code`, as the old service answered, except the
two that are new with us (no key: 401, `user_id` not the key's owner: 403, same body); a missing
or malformed parameter is FastAPI's 422 `{"detail": [...]}`, as before. `CompatRoute` applies
this to every route here, so the app's v1 handlers never see these errors.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

from botocore.exceptions import ClientError
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute

from vidpipe.errors import ErrorCode, VidpipeError
from vidpipe.keys import POSTER_NAME, output_key
from vidpipe.phases import SeedStatus
from vidpipe_api import NAME, __version__
from vidpipe_api.compat import (
    FILE_FIELD,
    TASK_LIST_LIMIT,
    THUMBNAIL_NOT_READY,
    USER_FIELD,
    LegacyError,
    LegacyProgress,
    LegacyQueue,
    LegacySystem,
    LegacyTaskList,
    LegacyTaskStatus,
    LegacyUpload,
    TaskQuery,
    error_body,
    http_status,
    missing_fields,
    ok,
    queue,
    refusal,
    task,
    validation_body,
)
from vidpipe_api.context import AppContext
from vidpipe_api.deps import (
    ClusterDep,
    ContextDep,
    CurrentOwner,
    JobsRepoDep,
    PrincipalDep,
    SettingsDep,
    StorageDep,
    get_job_record,
    get_owner,
)
from vidpipe_api.errors import Forbidden
from vidpipe_api.formstream import ParsedForm
from vidpipe_api.jobs import job_view
from vidpipe_api.limits import STREAMED_BODY, UploadSlotsDep
from vidpipe_api.options import JobOptions, parse_job_options
from vidpipe_api.routers import jobs as jobs_routes
from vidpipe_api.routers import system
from vidpipe_api.routers.videos import ingest_form
from vidpipe_api.schemas import form_body

TAG = "compatibility (deprecated)"
# A poster is cached by the client for a short while only: it is private to the key's owner.
THUMBNAIL_CACHE = "private, max-age=300"


def _count(request: Request, code: ErrorCode) -> None:
    ctx: AppContext = request.app.state.ctx
    ctx.metrics.reject(code)


class CompatRoute(APIRoute):
    """A route that answers refusals the old service's way (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                _count(request, ErrorCode.VALIDATION_FAILED)
                return JSONResponse(validation_body(exc), status_code=422)
            except VidpipeError as exc:
                _count(request, exc.code)
                return JSONResponse(
                    refusal(exc),
                    status_code=http_status(exc.code),
                    headers=dict(exc.headers) or None,
                )

        return answer


router = APIRouter(tags=[TAG], deprecated=True, route_class=CompatRoute)

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": LegacyError, "description": "No or an invalid API key (new: send one)"},
    403: {"model": LegacyError, "description": "`user_id` is not the owner of the API key"},
    422: {"description": "A required parameter is missing or invalid (FastAPI's `detail` list)"},
}


def _refused_example(code: int, ours: str, message: str) -> dict[str, Any]:
    return {
        "value": {
            "status": "error",
            "task_id": None,
            "internal_status_code": code,
            "code": ours,
            "message": message,
        }
    }


def _json_200(model: type[Any], examples: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A 200 documented with its model and named examples (success and refusals)."""
    return {
        200: {
            "model": model,
            "description": 'Success, or a refusal with `status: "error"` (see `LegacyError`)',
            "content": {"application/json": {"examples": examples}},
        }
    }


def check_user(user_id: str, owner: str) -> None:
    """`user_id` names the caller; it must be the key's owner and is never used to read data."""
    if user_id != owner:
        raise Forbidden(f"`{USER_FIELD}` must be the owner of the API key")


router.add_api_route(
    "/api/health/check",
    system.healthz,
    methods=["GET"],
    summary="Liveness (= /healthz); no API key needed",
)


UPLOAD_BODY = form_body(
    {
        USER_FIELD: {
            "type": "string",
            "description": "Must be the owner of the API key",
            "example": "acme",
        },
        FILE_FIELD: {"type": "string", "format": "binary"},
    },
    required=[USER_FIELD, FILE_FIELD],
)


@router.post(
    "/api/video/upload",
    response_model=LegacyUpload,
    openapi_extra=UPLOAD_BODY,
    summary="Upload a video (= POST /v1/videos)",
    max_body_size=STREAMED_BODY,
    responses={
        **REFUSALS,
        **_json_200(
            LegacyUpload,
            {
                "accepted": {
                    "value": {"status": "ok", "task_id": "vj-3f2b…", "internal_status_code": 1}
                },
                "not a video": _refused_example(3, "not_a_video", "the file is not a video"),
                "too large": _refused_example(4, "upload_too_large", "the upload exceeds …"),
                "user limit": _refused_example(6, "rate_limited", "owner limit of 60 …"),
                "global limit": _refused_example(5, "rate_limited", "global limit of 600 …"),
            },
        ),
    },
)
async def upload(
    request: Request, ctx: ContextDep, owner: CurrentOwner, slots: UploadSlotsDep
) -> JSONResponse:
    """Form fields `user_id` and `video_file`, in either order; our default outputs.

    The same path as `POST /v1/videos`: upload slots, rate limits, streamed to storage, checked
    with ffprobe, recorded, and handed to the cluster. A `user_id` sent before the file is
    checked before a byte is stored; one sent after it is checked at the end, and the stored
    bytes are discarded on a mismatch.
    """

    def before_file(form: ParsedForm) -> JobOptions:
        if USER_FIELD in form.fields:
            check_user(form.fields[USER_FIELD], owner)
        return parse_job_options(None, {})  # the old service had no options: our defaults

    def whole_form(form: ParsedForm) -> None:
        missing = [f for f in (USER_FIELD,) if f not in form.fields]
        missing += [FILE_FIELD] if form.file is None else []
        if missing:
            raise missing_fields(missing)
        check_user(form.fields[USER_FIELD], owner)

    with slots.hold(owner):
        record = await ingest_form(
            request,
            ctx,
            owner,
            on_file_start=before_file,
            on_form_end=whole_form,
            file_field=FILE_FIELD,
            trailing_fields=frozenset({USER_FIELD}),
            via="compat",
        )
    return JSONResponse(ok(LegacyUpload, task_id=record.id))


@router.head(
    "/api/video/upload",
    summary="Check the upload path and the API key without uploading",
    response_class=Response,
    responses={401: {"description": "No or an invalid API key"}},
)
async def upload_check(_owner: CurrentOwner) -> Response:
    """200 with no body when the key is valid."""
    return Response(status_code=200)


@router.get(
    "/api/video/tasks",
    response_model=LegacyTaskList | LegacyTaskStatus,
    summary="The user's tasks, or one task's status (= GET /v1/jobs, /v1/jobs/{id})",
    responses={
        **REFUSALS,
        **_json_200(
            LegacyTaskList,
            {
                "tasks": {"value": LegacyTaskList.model_json_schema()["examples"][0]},
                "one task": {"value": LegacyTaskStatus.model_json_schema()["examples"][0]},
                "no such task": _refused_example(2, "job_not_found", "no job 'vj-…'"),
            },
        ),
    },
)
async def tasks(
    db: JobsRepoDep,
    owner: CurrentOwner,
    user_id: Annotated[str, Query(max_length=256, description="The API key's owner")],
    task_id: Annotated[str | None, Query(max_length=256)] = None,
) -> JSONResponse:
    """Without `task_id`: the newest 500 tasks; with it: that task, flat. Only the key's own."""
    check_user(user_id, owner)
    if task_id is not None:
        record = await get_job_record(task_id, owner, db)
        return JSONResponse(ok(LegacyTaskStatus, **task(job_view(record))))
    listed = await jobs_routes.list_jobs(db, owner, None, TASK_LIST_LIMIT, None)
    return JSONResponse(
        ok(
            LegacyTaskList,
            user_id=user_id,
            tasks=[task(job.model_dump()) for job in listed.items],
            truncated=listed.nextCursor is not None,
        )
    )


@router.get(
    "/api/video/task",
    response_model=LegacyProgress,
    summary="A task's thumbnail (JPEG bytes) or progress",
    responses={
        **REFUSALS,
        200: {
            "model": LegacyProgress,
            "description": "`type=progress`: JSON; `type=thumbnail`: the poster as image/jpeg, "
            "or a refusal (7 while processing, 8 if the task failed)",
            "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {
                    "examples": {
                        "progress": {"value": LegacyProgress.model_json_schema()["examples"][0]},
                        "still processing": _refused_example(
                            7, "not_found", "the task is still processing; no thumbnail yet"
                        ),
                        "failed": _refused_example(8, "corrupt_media", "the file is damaged"),
                    }
                },
            },
        },
    },
)
async def task_detail(
    db: JobsRepoDep,
    storage: StorageDep,
    owner: CurrentOwner,
    kind: Annotated[TaskQuery, Query(alias="type", description="`thumbnail` or `progress`")],
    task_id: Annotated[str, Query(max_length=256)],
) -> Response:
    """The poster's bytes (not a redirect: old clients reach only this address), or progress.

    The poster is served only when the job's record lists it among its outputs (the manifest),
    as `downloads.poster` of `/v1/jobs/{id}`.
    """
    record = await get_job_record(task_id, owner, db)
    job = job_view(record)
    status = SeedStatus(job["seedStatus"])
    if kind is TaskQuery.PROGRESS:
        return JSONResponse(
            ok(LegacyProgress, task_id=job["id"], task_status=status, progress=job["progress"])
        )
    if status is not SeedStatus.PROCESSED:
        error = job.get("error") or {}
        return JSONResponse(
            error_body(
                THUMBNAIL_NOT_READY[status],
                str(error.get("code") or ErrorCode.NOT_FOUND.value),
                str(error.get("message") or f"the task is {status.value}; no thumbnail yet"),
                task_id=job["id"],
            )
        )
    key = output_key(record.id, POSTER_NAME)
    without = VidpipeError(ErrorCode.NOT_FOUND, "the task was processed without a thumbnail")
    if key not in record.outputs:
        raise without
    try:
        poster = await storage.call(storage.client.get_object, Bucket=storage.bucket, Key=key)
    except ClientError:  # `call` lets only "no such key" through as ClientError
        raise without from None
    return StreamingResponse(
        _chunks(poster["Body"]),
        media_type="image/jpeg",
        headers={
            "Content-Length": str(poster["ContentLength"]),
            "Cache-Control": THUMBNAIL_CACHE,
        },
    )


def _chunks(body: Any) -> Iterator[bytes]:
    """The object in 64 KiB chunks; Starlette reads a plain iterator in worker threads, so the
    event loop never blocks and memory stays at one chunk whatever the poster's size."""
    try:
        yield from body.iter_chunks(64 * 1024)
    finally:
        body.close()  # also when the client hangs up mid-way: the connection goes back


@router.get(
    "/api/video/analytics/queue",
    response_model=LegacyQueue,
    summary="Tasks waiting and running (= GET /v1/stats)",
    responses=REFUSALS,
)
async def analytics_queue(db: JobsRepoDep, principal: PrincipalDep) -> JSONResponse:
    """The key owner's tasks by status; every user's with an admin key, as `/v1/stats`."""
    stats = await jobs_routes.stats(db, principal)
    if stats.total is not None:
        return JSONResponse(queue(stats.total, "all"))
    return JSONResponse(queue(stats.owner, "user"))


@router.get(
    "/api/video/analytics/system",
    response_model=LegacySystem,
    summary="Service version, dependencies and limits",
    responses=REFUSALS,
    dependencies=[Depends(get_owner)],
)
async def analytics_system(
    settings: SettingsDep, storage: StorageDep, db: JobsRepoDep, cluster: ClusterDep
) -> JSONResponse:
    """What still means something in a cluster; host CPU, memory and disk are Prometheus's."""
    checks = await system.dependency_checks(storage, db, cluster)
    s = settings
    return JSONResponse(
        ok(
            LegacySystem,
            service=NAME,
            version=__version__,
            dependencies={name: check["status"] for name, check in checks.items()},
            limits={
                "max_upload_bytes": s.max_upload_bytes,
                "user_uploads_per_minute": s.rate_owner_per_minute,
                "user_uploads_per_day": s.rate_owner_per_day,
                "global_uploads_per_minute": s.rate_global_per_minute,
                "global_uploads_per_day": s.rate_global_per_day,
            },
        )
    )
