"""The replaced service's contract as data: its status codes, our codes onto them, its bodies.

Pure (no I/O), so every mapping is unit-tested without a server; `routers/compat.py` serves the
old paths with these bodies on top of the v1 services. docs/api.md ("Migrating from the replaced
service") is the user-facing version of this module.

Deprecated from the day it ships: it exists so clients can move to `/v1` at their own pace, and
goes away, in one commit, with the next major version.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from vidpipe import __version__
from vidpipe.errors import ErrorCode, VidpipeError
from vidpipe.phases import SEED_STATUS, Phase, SeedStatus

# Form fields and query values exactly as the replaced service named them.
USER_FIELD = "user_id"
FILE_FIELD = "video_file"
# A task list answers at most this many tasks, newest first; `/v1/jobs` pages through the rest.
TASK_LIST_LIMIT = 500


class InternalStatus(IntEnum):
    """`internal_status_code` of the replaced service."""

    SUCCESS = 1
    INVALID_INPUT = 2
    NOT_SUPPORTED_FILE_TYPE = 3
    FILE_UPLOAD_SIZE_EXCEEDED = 4
    GLOBAL_RATE_LIMIT_EXHAUSTED = 5
    USER_RATE_LIMIT_EXHAUSTED = 6
    FILE_UNDER_PROCESSING = 7
    FILE_PROCESSING_FAILED = 8
    PROCESSING_ERROR = 9


S = InternalStatus

# Every code of our catalogue, onto the one old code an old client should act on. A new ErrorCode
# without a row here fails tests/unit/api/test_compat.py.
INTERNAL_STATUS: dict[ErrorCode, InternalStatus] = {
    # The request itself is wrong (or, new with us, not authenticated / not the key's user).
    ErrorCode.UNAUTHENTICATED: S.INVALID_INPUT,
    ErrorCode.FORBIDDEN: S.INVALID_INPUT,
    ErrorCode.VALIDATION_FAILED: S.INVALID_INPUT,
    ErrorCode.MISSING_FILE: S.INVALID_INPUT,
    ErrorCode.EMPTY_UPLOAD: S.INVALID_INPUT,
    ErrorCode.FORM_LIMIT_EXCEEDED: S.INVALID_INPUT,
    ErrorCode.UPLOAD_TIMEOUT: S.INVALID_INPUT,
    ErrorCode.NOT_FOUND: S.INVALID_INPUT,
    ErrorCode.METHOD_NOT_ALLOWED: S.INVALID_INPUT,
    ErrorCode.JOB_NOT_FOUND: S.INVALID_INPUT,
    ErrorCode.UPLOAD_NOT_FOUND: S.INVALID_INPUT,
    ErrorCode.JOB_ALREADY_FINISHED: S.INVALID_INPUT,
    ErrorCode.UPLOAD_SESSION_EXPIRED: S.INVALID_INPUT,
    ErrorCode.UPLOAD_COMPLETING: S.INVALID_INPUT,
    # Webhooks are /v1 only; the rows keep the table total.
    ErrorCode.WEBHOOK_NOT_FOUND: S.INVALID_INPUT,
    ErrorCode.WEBHOOK_URL_REFUSED: S.INVALID_INPUT,
    ErrorCode.WEBHOOK_LIMIT_REACHED: S.INVALID_INPUT,
    ErrorCode.WEBHOOK_DISABLED: S.INVALID_INPUT,
    ErrorCode.DELIVERY_NOT_FOUND: S.INVALID_INPUT,
    ErrorCode.DELIVERY_IN_PROGRESS: S.INVALID_INPUT,
    ErrorCode.TOO_MANY_EVENT_STREAMS: S.INVALID_INPUT,  # event streams are /v1 only
    # Playback is /v1 and /play only; the rows keep the table total.
    ErrorCode.PLAYBACK_TOKEN_INVALID: S.INVALID_INPUT,
    ErrorCode.PLAYBACK_TOKEN_EXPIRED: S.INVALID_INPUT,
    ErrorCode.PLAYBACK_REVOKED: S.INVALID_INPUT,
    ErrorCode.PLAYBACK_WRONG_TOKEN_TYPE: S.INVALID_INPUT,
    ErrorCode.PLAYBACK_RESOLUTION_REFUSED: S.INVALID_INPUT,
    ErrorCode.PLAYBACK_NOT_READY: S.INVALID_INPUT,
    ErrorCode.PLAYBACK_NOT_FOUND: S.INVALID_INPUT,
    ErrorCode.RANGE_NOT_SATISFIABLE: S.INVALID_INPUT,
    ErrorCode.BODY_TOO_LARGE: S.INVALID_INPUT,
    ErrorCode.UNKNOWN_PRESET: S.INVALID_INPUT,  # presets are /v1 only
    # A video, but outside the limits: the file type is fine, the input is not.
    ErrorCode.DURATION_LIMIT_EXCEEDED: S.INVALID_INPUT,
    ErrorCode.RESOLUTION_LIMIT_EXCEEDED: S.INVALID_INPUT,
    ErrorCode.TOO_MANY_STREAMS: S.INVALID_INPUT,
    # Not a video we can read: what the old type check refused.
    ErrorCode.NOT_A_VIDEO: S.NOT_SUPPORTED_FILE_TYPE,
    ErrorCode.UNSUPPORTED_FORMAT: S.NOT_SUPPORTED_FILE_TYPE,
    ErrorCode.NO_VIDEO_STREAM: S.NOT_SUPPORTED_FILE_TYPE,
    ErrorCode.UNSUPPORTED_CODEC: S.NOT_SUPPORTED_FILE_TYPE,
    ErrorCode.CORRUPT_MEDIA: S.NOT_SUPPORTED_FILE_TYPE,
    ErrorCode.MEDIA_TOO_COMPLEX: S.NOT_SUPPORTED_FILE_TYPE,
    ErrorCode.UPLOAD_TOO_LARGE: S.FILE_UPLOAD_SIZE_EXCEEDED,
    # Per-user by default; `SCOPED` below turns the global and per-instance kinds into code 5.
    ErrorCode.RATE_LIMITED: S.USER_RATE_LIMIT_EXHAUSTED,
    ErrorCode.TOO_MANY_CONCURRENT_UPLOADS: S.USER_RATE_LIMIT_EXHAUSTED,
    ErrorCode.TOO_MANY_UPLOAD_SESSIONS: S.USER_RATE_LIMIT_EXHAUSTED,
    # The job ran and failed for good.
    ErrorCode.PROCESSING_FAILED: S.FILE_PROCESSING_FAILED,
    ErrorCode.DEADLINE_EXCEEDED: S.FILE_PROCESSING_FAILED,
    ErrorCode.OUTPUT_TOO_LARGE: S.FILE_PROCESSING_FAILED,
    # Our side failed: retry later (or, job_rejected, report it to us).
    ErrorCode.JOB_REJECTED: S.PROCESSING_ERROR,
    ErrorCode.STORAGE_UNAVAILABLE: S.PROCESSING_ERROR,
    ErrorCode.DATABASE_UNAVAILABLE: S.PROCESSING_ERROR,
    ErrorCode.CLUSTER_UNAVAILABLE: S.PROCESSING_ERROR,
    ErrorCode.INTERNAL: S.PROCESSING_ERROR,
}

# Codes whose `details.scope` says whose limit was reached: the old service told a user's own
# limit (6) apart from the service-wide one (5). "instance" is one API process's cap on uploads
# in flight, shared by every user, so it is the service-wide kind.
SCOPED: dict[ErrorCode, dict[str, InternalStatus]] = {
    ErrorCode.RATE_LIMITED: {
        "owner": S.USER_RATE_LIMIT_EXHAUSTED,
        "global": S.GLOBAL_RATE_LIMIT_EXHAUSTED,
    },
    ErrorCode.TOO_MANY_CONCURRENT_UPLOADS: {
        "owner": S.USER_RATE_LIMIT_EXHAUSTED,
        "instance": S.GLOBAL_RATE_LIMIT_EXHAUSTED,
    },
}

# What a thumbnail request answers while the task has no poster, by the task's old status.
THUMBNAIL_NOT_READY: dict[SeedStatus, InternalStatus] = {
    SeedStatus.SAVED: S.FILE_UNDER_PROCESSING,
    SeedStatus.PROCESSING: S.FILE_UNDER_PROCESSING,
    SeedStatus.FAILED: S.FILE_PROCESSING_FAILED,
}

# Refusals that are new with us (the old service had no credentials) keep their real HTTP status:
# no old client handles them, and a 200 would hide failed logins from proxies and monitoring.
# Every other refusal is a 200 with `status: "error"`, as the old service answered.
REAL_HTTP_STATUS: dict[ErrorCode, int] = {ErrorCode.UNAUTHENTICATED: 401, ErrorCode.FORBIDDEN: 403}


def internal_status(code: ErrorCode, details: dict[str, Any] | None = None) -> InternalStatus:
    scope = (details or {}).get("scope")
    by_scope = SCOPED.get(code, {})
    if isinstance(scope, str) and scope in by_scope:
        return by_scope[scope]
    return INTERNAL_STATUS[code]


def http_status(code: ErrorCode) -> int:
    return REAL_HTTP_STATUS.get(code, 200)


# -- bodies ---------------------------------------------------------------------------------

EXAMPLE_TASK = "vj-3f2b1c0d9e8f4a7b6c5d4e3f2a1b0c9d"


class LegacyEnvelope(BaseModel):
    """The fields every answer of the old service carried."""

    status: Literal["ok", "error"] = Field(examples=["ok"])
    internal_status_code: int = Field(
        description="1 SUCCESS, 2 INVALID_INPUT, 3 NOT_SUPPORTED_FILE_TYPE, "
        "4 FILE_UPLOAD_SIZE_EXCEEDED, 5 GLOBAL_RATE_LIMIT_EXHAUSTED, "
        "6 USER_RATE_LIMIT_EXHAUSTED, 7 FILE_UNDER_PROCESSING, 8 FILE_PROCESSING_FAILED, "
        "9 PROCESSING_ERROR",
        examples=[1],
    )


def _example(**fields: JsonValue) -> ConfigDict:
    """A model's OpenAPI example: a success body with these fields."""
    body: dict[str, JsonValue] = {"status": "ok", "internal_status_code": int(S.SUCCESS)}
    return ConfigDict(json_schema_extra={"examples": [{**body, **fields}]})


class LegacyUpload(LegacyEnvelope):
    model_config = _example(task_id=EXAMPLE_TASK)

    task_id: str | None


class LegacyError(LegacyEnvelope):
    """A refusal: the old fields, plus our `code` and `message` (old clients ignore them)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "error",
                    "task_id": None,
                    "internal_status_code": int(S.NOT_SUPPORTED_FILE_TYPE),
                    "code": "not_a_video",
                    "message": "the file is not a readable video",
                }
            ]
        }
    )

    task_id: str | None = None
    code: str
    message: str
    details: dict[str, Any] | None = None


class LegacyTask(BaseModel):
    task_id: str
    task_status: SeedStatus
    progress: int = Field(ge=0, le=100)
    file_name: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    error: dict[str, Any] | None = Field(
        default=None, description="Why a Failed task failed: our `code` and `message`"
    )


TASK_EXAMPLE: dict[str, JsonValue] = {
    "task_id": EXAMPLE_TASK,
    "task_status": "Processing",
    "progress": 40,
    "file_name": "holiday.mp4",
    "created_at": "2025-01-01T10:00:00+00:00",
    "updated_at": "2025-01-01T10:00:20+00:00",
    "error": None,
}


class LegacyTaskList(LegacyEnvelope):
    model_config = _example(user_id="acme", tasks=[TASK_EXAMPLE], truncated=False)

    user_id: str
    tasks: list[LegacyTask]
    truncated: bool = Field(description=f"More than {TASK_LIST_LIMIT} tasks: use /v1/jobs")


class LegacyTaskStatus(LegacyEnvelope, LegacyTask):
    model_config = _example(**TASK_EXAMPLE)


class LegacyProgress(LegacyEnvelope):
    model_config = _example(task_id=EXAMPLE_TASK, task_status="Processing", progress=40)

    task_id: str
    task_status: SeedStatus
    progress: int = Field(ge=0, le=100)


class LegacyQueue(LegacyEnvelope):
    model_config = _example(
        scope="user",
        queue_depth=3,
        processing=1,
        tasks_by_status={"Saved": 3, "Processing": 1, "Processed": 12, "Failed": 1},
        jobs_by_phase={"Pending": 3, "Running": 1, "Succeeded": 12, "Failed": 0, "Cancelled": 1},
    )

    scope: Literal["user", "all"] = Field(
        description="`user`: the key owner's tasks; `all`: every user's (admin keys)"
    )
    queue_depth: int = Field(description="Tasks waiting to be processed (phase Pending)")
    processing: int = Field(description="Tasks being processed (phase Running)")
    tasks_by_status: dict[str, int]
    jobs_by_phase: dict[str, int]


class LegacySystem(LegacyEnvelope):
    model_config = _example(
        service="vidpipe-api",
        version=__version__,
        dependencies={"s3": "ok", "mongodb": "ok", "kubernetes": "ok"},
        limits={
            "max_upload_bytes": 10 * 1024**3,
            "user_uploads_per_minute": 60,
            "user_uploads_per_day": 2000,
            "global_uploads_per_minute": 600,
            "global_uploads_per_day": 50_000,
        },
    )

    service: str
    version: str
    dependencies: dict[str, str] = Field(description="`ok` or `unavailable` for each")
    limits: dict[str, int] = Field(description="Limits this API applies; 0 means none")


class TaskQuery(StrEnum):
    """`type` of `GET /api/video/task`."""

    THUMBNAIL = "thumbnail"
    PROGRESS = "progress"


def ok(model: type[BaseModel], **fields: Any) -> dict[str, Any]:
    """A success body, checked against its documented model."""
    return model.model_validate(
        {"status": "ok", "internal_status_code": int(S.SUCCESS), **fields}
    ).model_dump(mode="json")


def error_body(
    status: InternalStatus,
    code: str,
    message: str,
    *,
    task_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = LegacyError(
        status="error",
        internal_status_code=int(status),
        task_id=task_id,
        code=code,
        message=message,
        details=details or None,
    ).model_dump(mode="json")
    if body["details"] is None:
        del body["details"]
    return body


def refusal(exc: VidpipeError) -> dict[str, Any]:
    """The old body for one of our errors; `details.jobId` (a job that exists) is its task."""
    job_id = exc.details.get("jobId")
    return error_body(
        internal_status(exc.code, exc.details),
        exc.code.value,
        exc.message,
        task_id=job_id if isinstance(job_id, str) else None,
        details=exc.details,
    )


def validation_body(exc: RequestValidationError) -> dict[str, Any]:
    """FastAPI's own 422 shape (`detail`: type, loc, msg), which the old service answered.

    The offending `input` is left out, as in our v1 errors: echoing it could reflect secrets.
    """
    detail = [
        {
            "type": str(err.get("type", "")),
            "loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
        }
        for err in exc.errors()
    ]
    return {
        "detail": detail,
        **error_body(
            S.INVALID_INPUT, ErrorCode.VALIDATION_FAILED.value, "the request parameters are invalid"
        ),
    }


def missing_fields(fields: list[str]) -> RequestValidationError:
    """What FastAPI raised when required form fields of the old service were absent."""
    return RequestValidationError(
        [
            {"type": "missing", "loc": ("body", field), "msg": "Field required", "input": None}
            for field in fields
        ]
    )


def task(job: dict[str, Any]) -> dict[str, Any]:
    """One task from a v1 job view (`jobs.job_view`): its id, old status, progress, name, times."""
    error = job.get("error")
    return {
        "task_id": job["id"],
        "task_status": job["seedStatus"],
        "progress": job["progress"],
        "file_name": job.get("filename"),
        "created_at": job.get("createdAt"),
        "updated_at": job.get("updatedAt"),
        "error": (
            {"code": error.get("code"), "message": error.get("message")}
            if isinstance(error, dict)
            else None
        ),
    }


def queue(counts: dict[str, int], scope: Literal["user", "all"]) -> dict[str, Any]:
    """Queue figures from job counts by phase (`Database.count_by_phase`)."""
    by_status = {s.value: 0 for s in SeedStatus}
    for phase, status in SEED_STATUS.items():
        by_status[status.value] += counts.get(phase.value, 0)
    return ok(
        LegacyQueue,
        scope=scope,
        queue_depth=sum(counts.get(p.value, 0) for p in Phase if p.waiting),
        processing=counts.get(Phase.RUNNING.value, 0),
        tasks_by_status=by_status,
        jobs_by_phase={p.value: counts.get(p.value, 0) for p in Phase},
    )
