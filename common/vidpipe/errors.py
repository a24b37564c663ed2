"""The error catalogue: every machine-readable code a client or operator can see, in one place.

The API maps these to HTTP statuses and the `{"code", "message", "details"}` JSON shape; the
processor writes them to its termination message; the README table is checked against this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # Authentication and authorization
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    # Request shape
    VALIDATION_FAILED = "validation_failed"
    MISSING_FILE = "missing_file"
    # Upload limits
    UPLOAD_TOO_LARGE = "upload_too_large"
    EMPTY_UPLOAD = "empty_upload"
    RATE_LIMITED = "rate_limited"
    # Media validation (also the processor's bad-input reasons)
    NOT_A_VIDEO = "not_a_video"
    UNSUPPORTED_FORMAT = "unsupported_format"
    NO_VIDEO_STREAM = "no_video_stream"
    DURATION_LIMIT_EXCEEDED = "duration_limit_exceeded"
    RESOLUTION_LIMIT_EXCEEDED = "resolution_limit_exceeded"
    TOO_MANY_STREAMS = "too_many_streams"
    UNSUPPORTED_CODEC = "unsupported_codec"
    CORRUPT_MEDIA = "corrupt_media"
    MEDIA_TOO_COMPLEX = "media_too_complex"
    JOB_REJECTED = "job_rejected"
    OUTPUT_TOO_LARGE = "output_too_large"
    # Resources
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    JOB_NOT_FOUND = "job_not_found"
    UPLOAD_NOT_FOUND = "upload_not_found"
    JOB_ALREADY_FINISHED = "job_already_finished"
    # Dependencies
    STORAGE_UNAVAILABLE = "storage_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    CLUSTER_UNAVAILABLE = "cluster_unavailable"
    # Processing faults (retryable on the processor side)
    PROCESSING_FAILED = "processing_failed"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal_error"
    # Abuse limits (appended: codes are stable, order here is not)
    TOO_MANY_CONCURRENT_UPLOADS = "too_many_concurrent_uploads"
    TOO_MANY_UPLOAD_SESSIONS = "too_many_upload_sessions"
    UPLOAD_TIMEOUT = "upload_timeout"
    FORM_LIMIT_EXCEEDED = "form_limit_exceeded"
    UPLOAD_SESSION_EXPIRED = "upload_session_expired"
    UPLOAD_COMPLETING = "upload_completing"
    # Webhooks and the event log (issue 14)
    WEBHOOK_NOT_FOUND = "webhook_not_found"
    WEBHOOK_URL_REFUSED = "webhook_url_refused"
    WEBHOOK_LIMIT_REACHED = "webhook_limit_reached"
    WEBHOOK_DISABLED = "webhook_disabled"
    DELIVERY_NOT_FOUND = "delivery_not_found"
    DELIVERY_IN_PROGRESS = "delivery_in_progress"
    # Live job events (issue 15)
    TOO_MANY_EVENT_STREAMS = "too_many_event_streams"
    # Signed playback (issue 15): each refusal of a token has its own code
    PLAYBACK_TOKEN_INVALID = "playback_token_invalid"
    PLAYBACK_TOKEN_EXPIRED = "playback_token_expired"
    PLAYBACK_REVOKED = "playback_revoked"
    PLAYBACK_WRONG_TOKEN_TYPE = "playback_wrong_token_type"
    PLAYBACK_RESOLUTION_REFUSED = "playback_resolution_refused"
    PLAYBACK_NOT_READY = "playback_not_ready"
    PLAYBACK_NOT_FOUND = "playback_not_found"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    # Presets (issue 16)
    UNKNOWN_PRESET = "unknown_preset"
    # A body over the limit of a route that takes JSON (uploads have upload_too_large).
    BODY_TOO_LARGE = "body_too_large"


@dataclass(frozen=True)
class ErrorSpec:
    http_status: int
    summary: str


CATALOGUE: dict[ErrorCode, ErrorSpec] = {
    ErrorCode.UNAUTHENTICATED: ErrorSpec(401, "Missing or invalid API key or bearer token."),
    ErrorCode.FORBIDDEN: ErrorSpec(403, "The credential may not perform this action."),
    ErrorCode.VALIDATION_FAILED: ErrorSpec(422, "The request parameters are invalid."),
    ErrorCode.MISSING_FILE: ErrorSpec(422, "The multipart form has no `file` field."),
    ErrorCode.UPLOAD_TOO_LARGE: ErrorSpec(413, "The upload exceeds the size limit."),
    ErrorCode.EMPTY_UPLOAD: ErrorSpec(422, "The upload is empty."),
    ErrorCode.RATE_LIMITED: ErrorSpec(429, "Too many uploads; retry after `Retry-After`."),
    ErrorCode.NOT_A_VIDEO: ErrorSpec(422, "The file is not a readable video."),
    ErrorCode.UNSUPPORTED_FORMAT: ErrorSpec(415, "The container format is not accepted."),
    ErrorCode.NO_VIDEO_STREAM: ErrorSpec(422, "The file has no video stream."),
    ErrorCode.DURATION_LIMIT_EXCEEDED: ErrorSpec(422, "The video is longer than allowed."),
    ErrorCode.RESOLUTION_LIMIT_EXCEEDED: ErrorSpec(422, "The video resolution is too large."),
    ErrorCode.TOO_MANY_STREAMS: ErrorSpec(422, "The file has more streams than allowed."),
    ErrorCode.UNSUPPORTED_CODEC: ErrorSpec(
        415, "A video or audio codec in the file is not accepted."
    ),
    ErrorCode.CORRUPT_MEDIA: ErrorSpec(
        422, "The file is damaged or describes itself implausibly; it cannot be decoded."
    ),
    ErrorCode.JOB_REJECTED: ErrorSpec(
        422, "The cluster refused the job's VideoJob as invalid; it will not be retried."
    ),
    ErrorCode.OUTPUT_TOO_LARGE: ErrorSpec(
        422, "An output would exceed the 5 GiB a single upload may store; never retried."
    ),
    ErrorCode.MEDIA_TOO_COMPLEX: ErrorSpec(
        422, "Reading the file needed more memory or CPU time than a video of its kind may."
    ),
    ErrorCode.NOT_FOUND: ErrorSpec(404, "No such path."),
    ErrorCode.METHOD_NOT_ALLOWED: ErrorSpec(405, "The path does not accept this method."),
    ErrorCode.JOB_NOT_FOUND: ErrorSpec(404, "No such job for this caller."),
    ErrorCode.UPLOAD_NOT_FOUND: ErrorSpec(404, "No such upload session for this caller."),
    ErrorCode.JOB_ALREADY_FINISHED: ErrorSpec(409, "The job has already finished."),
    ErrorCode.STORAGE_UNAVAILABLE: ErrorSpec(503, "Object storage is unavailable; retry later."),
    ErrorCode.DATABASE_UNAVAILABLE: ErrorSpec(503, "The database is unavailable; retry later."),
    ErrorCode.CLUSTER_UNAVAILABLE: ErrorSpec(503, "The Kubernetes API is unavailable."),
    ErrorCode.PROCESSING_FAILED: ErrorSpec(500, "Processing failed after all retries."),
    ErrorCode.DEADLINE_EXCEEDED: ErrorSpec(500, "Processing exceeded its deadline."),
    ErrorCode.INTERNAL: ErrorSpec(500, "Unexpected server error."),
    ErrorCode.TOO_MANY_CONCURRENT_UPLOADS: ErrorSpec(
        429, "Too many uploads in progress; retry after `Retry-After`."
    ),
    ErrorCode.TOO_MANY_UPLOAD_SESSIONS: ErrorSpec(
        429, "Too many open presigned upload sessions; complete or abort one."
    ),
    ErrorCode.UPLOAD_TIMEOUT: ErrorSpec(408, "The request body stalled or took too long."),
    ErrorCode.FORM_LIMIT_EXCEEDED: ErrorSpec(
        413, "The multipart form has too many or too large fields."
    ),
    ErrorCode.UPLOAD_SESSION_EXPIRED: ErrorSpec(410, "The presigned upload session has expired."),
    ErrorCode.UPLOAD_COMPLETING: ErrorSpec(
        409, "Another request is completing this upload; retry after `Retry-After`."
    ),
    ErrorCode.WEBHOOK_NOT_FOUND: ErrorSpec(404, "No such webhook endpoint for this caller."),
    ErrorCode.WEBHOOK_URL_REFUSED: ErrorSpec(
        422, "The webhook URL is malformed or points at an internal address."
    ),
    ErrorCode.WEBHOOK_LIMIT_REACHED: ErrorSpec(
        409, "The caller has the maximum number of webhook endpoints."
    ),
    ErrorCode.WEBHOOK_DISABLED: ErrorSpec(
        409, "The webhook endpoint is disabled; enable it before retrying or replaying."
    ),
    ErrorCode.DELIVERY_NOT_FOUND: ErrorSpec(404, "No such delivery for this webhook endpoint."),
    ErrorCode.DELIVERY_IN_PROGRESS: ErrorSpec(
        409, "The delivery is pending and being attempted right now."
    ),
    ErrorCode.TOO_MANY_EVENT_STREAMS: ErrorSpec(
        429, "Too many event streams open for this API key; close one or retry later."
    ),
    ErrorCode.PLAYBACK_TOKEN_INVALID: ErrorSpec(
        403, "The playback token is malformed, tampered with or signed by an unknown key."
    ),
    ErrorCode.PLAYBACK_TOKEN_EXPIRED: ErrorSpec(403, "The playback token has expired."),
    ErrorCode.PLAYBACK_REVOKED: ErrorSpec(403, "The playback id of this token was revoked."),
    ErrorCode.PLAYBACK_WRONG_TOKEN_TYPE: ErrorSpec(
        403, "The token's type (video, thumbnail, storyboard) does not cover this file."
    ),
    ErrorCode.PLAYBACK_RESOLUTION_REFUSED: ErrorSpec(
        403, "The rendition is above the token's `max_resolution`."
    ),
    ErrorCode.PLAYBACK_NOT_READY: ErrorSpec(
        409, "The job has not succeeded with HLS outputs; there is nothing to play."
    ),
    ErrorCode.PLAYBACK_NOT_FOUND: ErrorSpec(404, "No such playback id for this caller."),
    ErrorCode.RANGE_NOT_SATISFIABLE: ErrorSpec(
        416, "The requested byte range starts beyond the end of the file."
    ),
    ErrorCode.UNKNOWN_PRESET: ErrorSpec(
        422, "No VideoPreset in the jobs namespace nor ClusterVideoPreset has that name."
    ),
    ErrorCode.BODY_TOO_LARGE: ErrorSpec(413, "The request body exceeds this route's size limit."),
}

# Codes that mean "this input will never process": the processor exits with BAD_INPUT for them.
BAD_INPUT_CODES = frozenset(
    {
        ErrorCode.EMPTY_UPLOAD,
        ErrorCode.NOT_A_VIDEO,
        ErrorCode.UNSUPPORTED_FORMAT,
        ErrorCode.NO_VIDEO_STREAM,
        ErrorCode.DURATION_LIMIT_EXCEEDED,
        ErrorCode.RESOLUTION_LIMIT_EXCEEDED,
        ErrorCode.TOO_MANY_STREAMS,
        ErrorCode.UNSUPPORTED_CODEC,
        ErrorCode.CORRUPT_MEDIA,
        ErrorCode.MEDIA_TOO_COMPLEX,
        ErrorCode.OUTPUT_TOO_LARGE,
    }
)


class VidpipeError(Exception):
    """A domain error carrying a catalogue code and a human message safe to show callers."""

    def __init__(self, code: ErrorCode, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        # Response headers the refusal carries (Retry-After, Content-Range); HTTP only.
        self.headers: dict[str, str] = {}

    @property
    def http_status(self) -> int:
        return CATALOGUE[self.code].http_status


class BadInput(VidpipeError):
    """The input can never be processed; retrying will not help."""
