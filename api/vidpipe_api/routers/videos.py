"""Uploads through the API: `POST /v1/videos` (multipart form) and `PUT /v1/videos` (raw body).

Each upload first takes a slot (`limits.UploadSlots`: per process and per owner) and reads its
body through `limits.guarded` (idle and total timeouts), so a stalled or slow client cannot pin
memory or a slot for long, and one owner cannot take every slot.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any
from urllib.parse import quote, unquote

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from vidpipe.keys import source_key
from vidpipe.record import JobRecord
from vidpipe_api import ratelimit
from vidpipe_api.context import AppContext
from vidpipe_api.deps import ContextDep, CurrentOwner, PrincipalDep
from vidpipe_api.errors import MissingFile, UnsupportedMediaType, UploadTimeout, UploadTooLarge
from vidpipe_api.filenames import sanitize_filename
from vidpipe_api.formstream import FILE_FIELD, FilePart, FormLimits, ParsedForm, read_form
from vidpipe_api.jobs import job_view, new_job_id
from vidpipe_api.limits import STREAMED_BODY, UploadSlotsDep, guarded
from vidpipe_api.options import JobOptions, parse_job_options, parse_metadata, permitted
from vidpipe_api.presets import resolve
from vidpipe_api.schemas import ERROR_RESPONSES, ErrorOut, JobOut, form_body
from vidpipe_api.storage import StreamWriter

router = APIRouter(prefix="/v1/videos", tags=["videos"])

# Multipart framing on top of the file itself and its non-file fields (`form_max_field_bytes`).
FORM_OVERHEAD = 256 * 1024
# After a 413, read (and discard) this much more so the client can read the response instead of
# a connection reset; past it the connection is simply closed.
DRAIN_LIMIT = 32 * 1024 * 1024
DRAIN_SECONDS = 10.0

UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    408: {"model": ErrorOut, "description": "The body stalled or took too long (`upload_timeout`)"},
    413: {
        "model": ErrorOut,
        "description": "Over the size limit (`upload_too_large`) or form limits "
        "(`form_limit_exceeded`)",
    },
    415: {"model": ErrorOut, "description": "Container not accepted (`unsupported_format`)"},
    422: {"model": ErrorOut, "description": "Not a usable video, or invalid options"},
    429: {
        "model": ErrorOut,
        "description": "Rate limited (`rate_limited`) or too many uploads in progress "
        "(`too_many_concurrent_uploads`); see `Retry-After`",
    },
}

FORM_BODY = form_body(
    {
        "file": {"type": "string", "format": "binary"},
        "options": {
            "type": "string",
            "description": "JSON: VideoJob spec.outputs (camelCase)",
            "example": '{"renditions":[{"name":"480p","height":480}]}',
        },
        "renditions": {"type": "string", "example": "480p,720p"},
        "formats": {"type": "string", "example": "hls,mp4", "description": "hls, mp4 or both"},
        "poster": {"type": "boolean"},
        "storyboard": {"type": "boolean"},
        "priority": {"type": "string", "enum": ["low", "normal", "high"], "default": "normal"},
        "preset": {
            "type": "string",
            "description": "A VideoPreset or ClusterVideoPreset name, instead of the options",
            "example": "web",
        },
    },
    required=["file"],
    encoding={"file": {"contentType": "video/*"}},
)

RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"video/*": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isascii() and value.isdigit() else None


async def _drain(stream: AsyncIterator[bytes], remaining: int | None) -> None:
    if remaining is not None and remaining > DRAIN_LIMIT:
        return
    read = 0
    # A client that stalls while we drain gets its 413 all the same (no 408 instead).
    with anyio.move_on_after(DRAIN_SECONDS), contextlib.suppress(UploadTimeout):
        async for chunk in stream:
            read += len(chunk)
            if read > DRAIN_LIMIT:
                return


def _accepted(record: JobRecord) -> JSONResponse:
    body = JobOut.model_validate(job_view(record)).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": body["url"]})


async def _store(
    ctx: AppContext,
    request: Request,
    writer: StreamWriter,
    consume: Any,
) -> Any:
    """Run `consume(stream)` feeding the writer; undo the S3 side on any failure."""
    settings = ctx.settings
    limit = settings.max_upload_bytes
    declared = _declared_length(request)
    stream = guarded(
        request.stream().__aiter__(),
        settings.upload_idle_timeout_seconds,
        settings.upload_total_timeout_seconds,
    )
    try:
        if (
            declared is not None
            and declared > limit + FORM_OVERHEAD + settings.form_max_field_bytes
        ):
            raise UploadTooLarge(limit)
        result = await consume(stream)
        await writer.finish()
    except BaseException as exc:
        await writer.abort()
        if isinstance(exc, UploadTooLarge):
            await _drain(stream, None if declared is None else declared - writer.size)
        raise
    ctx.metrics.upload_bytes.inc(writer.size)
    return result


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses=UPLOAD_RESPONSES,
    openapi_extra=FORM_BODY,
    summary="Upload a video (multipart form)",
    max_body_size=STREAMED_BODY,
)
async def upload_form(
    request: Request,
    ctx: ContextDep,
    owner: CurrentOwner,
    principal: PrincipalDep,
    slots: UploadSlotsDep,
) -> JSONResponse:
    """Stream the `file` part to storage, validate it, and create the job (202 + Location).

    Send `options` (JSON) or the shorthand fields before the file: they are validated before
    a byte of the file is stored, and a field after the file is refused.
    """
    with slots.hold(owner):
        return await _upload_form(request, ctx, owner, principal.admin)


async def _upload_form(request: Request, ctx: ContextDep, owner: str, admin: bool) -> JSONResponse:
    record = await ingest_form(
        request,
        ctx,
        owner,
        on_file_start=lambda form: permitted(
            parse_job_options(form.fields.get("options"), form.fields),
            admin=admin,
            high_admins_only=ctx.settings.high_priority_admins_only,
        ),
    )
    return _accepted(record)


async def ingest_form(
    request: Request,
    ctx: AppContext,
    owner: str,
    *,
    on_file_start: Callable[[ParsedForm], JobOptions],
    on_form_end: Callable[[ParsedForm], None] | None = None,
    file_field: str = FILE_FIELD,
    trailing_fields: frozenset[str] = frozenset(),
    via: str = "form",
) -> JobRecord:
    """The multipart upload path, shared by `POST /v1/videos` and the compatibility upload.

    Rate limits, then the `file_field` part streamed to storage, then validation and the job
    record; returns the job record. `on_file_start(form)` sees the fields sent before the file
    and returns the job's options (it may refuse before a byte is stored); `on_form_end(form)`
    sees the whole form (it may refuse, and the stored bytes are then discarded). The caller
    holds the upload slot.
    """
    content_type = request.headers.get("content-type", "")
    settings = ctx.settings
    await ratelimit.acquire(ctx.db, owner, settings)
    job_id = new_job_id()
    writer = ctx.storage.writer(source_key(job_id), {}, settings.max_upload_bytes)
    seen: dict[str, FilePart] = {}
    chosen: list[tuple[JobOptions, dict[str, str]]] = []
    form_limits = FormLimits(settings.form_max_fields, settings.form_max_field_bytes)

    async def file_starts(form: ParsedForm) -> None:
        options = await resolve(ctx.cluster, on_file_start(form))
        chosen.append((options, parse_metadata(form.fields.get("metadata"))))

    async def on_file_data(part: FilePart, data: bytes) -> None:
        if "file" not in seen:
            seen["file"] = part
            name = sanitize_filename(part.filename)
            if name:
                writer.metadata["original-filename"] = quote(name)
        await writer.write(data)

    async def consume(stream: AsyncIterator[bytes]) -> Any:
        form = await read_form(
            content_type,
            stream,
            on_file_data,
            limits=form_limits,
            on_file_start=file_starts,
            file_field=file_field,
            trailing_fields=trailing_fields,
        )
        if on_form_end is not None:
            on_form_end(form)
        if form.file is None:
            raise MissingFile()
        return form, chosen[0]

    form, (options, metadata) = await _store(ctx, request, writer, consume)
    return await ctx.ingest.accept(
        job_id=job_id,
        owner=owner,
        options=options,
        metadata=metadata,
        size=writer.size,
        filename=sanitize_filename(form.file.filename),
        content_type=form.file.content_type,
        via=via,
    )


@router.put(
    "",
    status_code=202,
    response_model=JobOut,
    responses=UPLOAD_RESPONSES,
    openapi_extra=RAW_BODY,
    summary="Upload a video (raw body)",
    max_body_size=STREAMED_BODY,
)
async def upload_raw(
    request: Request,
    ctx: ContextDep,
    owner: CurrentOwner,
    principal: PrincipalDep,
    slots: UploadSlotsDep,
    x_filename: Annotated[
        str | None,
        Header(description="Original file name, percent-encoded UTF-8", max_length=2048),
    ] = None,
    options: Annotated[str | None, Query(description="JSON: VideoJob spec.outputs")] = None,
    metadata: Annotated[
        str | None, Query(description="JSON object of your own strings, echoed in events")
    ] = None,
    renditions: Annotated[str | None, Query(examples=["480p,720p"])] = None,
    formats: Annotated[
        str | None, Query(examples=["hls,mp4"], description="hls, mp4 or both")
    ] = None,
    poster: Annotated[str | None, Query(description="true or false")] = None,
    storyboard: Annotated[str | None, Query(description="true or false")] = None,
    priority: Annotated[str | None, Query(description="low, normal (default) or high")] = None,
    preset: Annotated[
        str | None, Query(description="A preset's name, instead of options or the shorthand")
    ] = None,
) -> JSONResponse:
    """The body is the video itself (`Content-Type: video/*` or `application/octet-stream`)."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not (content_type.startswith("video/") or content_type == "application/octet-stream"):
        raise UnsupportedMediaType("send the video with Content-Type video/* as the request body")
    fields = {
        k: v
        for k, v in {
            "renditions": renditions,
            "formats": formats,
            "poster": poster,
            "storyboard": storyboard,
            "priority": priority,
            "preset": preset,
        }.items()
        if v is not None
    }
    labels = parse_metadata(metadata)
    # before reading a byte of the body
    asked = permitted(
        parse_job_options(options, fields),
        admin=principal.admin,
        high_admins_only=ctx.settings.high_priority_admins_only,
    )
    with slots.hold(owner):
        return await _upload_raw(request, ctx, owner, x_filename, content_type, asked, labels)


async def _upload_raw(
    request: Request,
    ctx: ContextDep,
    owner: str,
    x_filename: str | None,
    content_type: str,
    asked: JobOptions,
    labels: dict[str, str],
) -> JSONResponse:
    await ratelimit.acquire(ctx.db, owner, ctx.settings)
    # After the rate limit: a preset lookup costs the API server a read or two, so an attempt
    # naming one counts even when the name is unknown (as in the form upload).
    chosen = await resolve(ctx.cluster, asked)
    job_id = new_job_id()
    filename = sanitize_filename(unquote(x_filename)) if x_filename else None
    metadata = {"original-filename": quote(filename)} if filename else {}
    writer = ctx.storage.writer(source_key(job_id), metadata, ctx.settings.max_upload_bytes)

    async def consume(stream: AsyncIterator[bytes]) -> None:
        async for chunk in stream:
            if chunk:
                await writer.write(chunk)

    await _store(ctx, request, writer, consume)
    record = await ctx.ingest.accept(
        job_id=job_id,
        owner=owner,
        options=chosen,
        size=writer.size,
        filename=filename,
        content_type=content_type,
        metadata=labels,
        via="raw",
    )
    return _accepted(record)
