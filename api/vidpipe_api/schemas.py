"""Response and request bodies as they appear in the OpenAPI document (with examples)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE_ID = "vj-3f2b1c0d9e8f4a7b6c5d4e3f2a1b0c9d"


class ErrorOut(BaseModel):
    code: str = Field(examples=["job_not_found"])
    message: str = Field(examples=["no job 'vj-…' for this caller"])
    details: dict[str, Any] | None = None


class JobOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID,
                    "url": f"/v1/jobs/{EXAMPLE_ID}",
                    "phase": "Succeeded",
                    "seedStatus": "Processed",
                    "progress": 100,
                    "filename": "holiday.mp4",
                    "sizeBytes": 1048576,
                    "media": {"durationSeconds": 12.5, "width": 1920, "height": 1080},
                    "downloads": {
                        "poster": "https://s3.example/…/poster.jpg?X-Amz-…",
                        "renditions": {"720p": "https://s3.example/…/720p.mp4?X-Amz-…"},
                    },
                }
            ]
        }
    )

    id: str
    url: str
    phase: str
    seedStatus: str
    progress: int = 0
    filename: str | None = None
    sizeBytes: int | None = None
    options: dict[str, Any] | None = None
    metadata: dict[str, str] = Field(
        default_factory=dict, description="The client's metadata, as sent at upload"
    )
    priority: str = Field(default="normal", description="low, normal or high, as sent at upload")
    preset: dict[str, Any] | None = Field(
        default=None, description="The preset the options came from: name, kind, generation"
    )
    media: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    queue: str | None = Field(
        default=None, description="Kueue mode: the LocalQueue the job waits or waited in"
    )
    queuePosition: int | None = Field(
        default=None, description="Kueue mode, while Queued: its place in the queue, 1 = next"
    )
    error: dict[str, Any] | None = None
    cancelRequested: bool = False
    submitted: bool = False
    createdAt: str | None = None
    updatedAt: str | None = None
    startedAt: str | None = None
    finishedAt: str | None = None
    downloads: dict[str, Any] | None = Field(
        default=None,
        description="Presigned GET links to the outputs the job's manifest lists, once it has "
        "succeeded (none before); generated per request, valid for a short time",
    )


class JobList(BaseModel):
    items: list[JobOut]
    nextCursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


class PartUrl(BaseModel):
    partNumber: int
    url: str


class UploadSessionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"sizeBytes": 5368709120, "filename": "film.mov", "options": None}]
        },
    )

    sizeBytes: int = Field(gt=0, description="Exact size of the file to upload")
    filename: str | None = Field(default=None, max_length=1024)
    contentType: str | None = Field(default=None, max_length=255)
    options: dict[str, Any] | None = Field(
        default=None, description="Processing options (VideoJob spec.outputs, camelCase)"
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Your own string key/value pairs, echoed in the job and in every event",
    )
    priority: str | None = Field(
        default=None, max_length=32, description="low, normal (default) or high"
    )
    preset: str | None = Field(
        default=None, max_length=253, description="A preset's name, instead of `options`"
    )


class UploadSessionOut(BaseModel):
    uploadId: str
    jobId: str
    partSize: int
    parts: list[PartUrl]
    completeUrl: str
    expiresAt: str


class CompletedPart(BaseModel):
    partNumber: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=256, alias="etag")


class UploadCompleteIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"parts": [{"partNumber": 1, "etag": '"9b2cf5…"'}]}]},
    )

    parts: list[CompletedPart] = Field(min_length=1, max_length=10_000)


class Stats(BaseModel):
    owner: dict[str, int]
    total: dict[str, int] | None = Field(default=None, description="All owners (admin keys only)")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or invalid credential"},
    503: {"model": ErrorOut, "description": "A dependency is unavailable; retry later"},
}


def form_body(
    properties: dict[str, Any], required: list[str], encoding: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`openapi_extra` for a route that streams its multipart form itself, so FastAPI cannot
    derive the request body from its parameters."""
    media: dict[str, Any] = {
        "schema": {"type": "object", "required": required, "properties": properties}
    }
    if encoding is not None:
        media["encoding"] = encoding
    return {"requestBody": {"required": True, "content": {"multipart/form-data": media}}}
