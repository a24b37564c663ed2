"""Domain exceptions and the one place that turns any failure into `{"code","message","details"}`.

Routes raise `VidpipeError` subclasses; request-shape problems, unknown paths and unexpected
exceptions are mapped here too, so a client never sees a stack trace or a second error format.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vidpipe.errors import CATALOGUE, ErrorCode, VidpipeError

log = logging.getLogger(__name__)


class Unauthenticated(VidpipeError):
    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(ErrorCode.UNAUTHENTICATED, message)


class Forbidden(VidpipeError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.FORBIDDEN, message)


class JobNotFound(VidpipeError):
    def __init__(self, job_id: str) -> None:
        super().__init__(ErrorCode.JOB_NOT_FOUND, f"no job {job_id!r} for this caller")


class UploadNotFound(VidpipeError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(ErrorCode.UPLOAD_NOT_FOUND, f"no upload session {upload_id!r}")


class JobAlreadyFinished(VidpipeError):
    def __init__(self, job_id: str, phase: str) -> None:
        super().__init__(
            ErrorCode.JOB_ALREADY_FINISHED, f"job {job_id!r} already finished", {"phase": phase}
        )


class UploadTooLarge(VidpipeError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            ErrorCode.UPLOAD_TOO_LARGE,
            f"the upload exceeds the limit of {limit} bytes",
            {"limitBytes": limit},
        )


class EmptyUpload(VidpipeError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.EMPTY_UPLOAD, "the upload is empty")


class MissingFile(VidpipeError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.MISSING_FILE, "the multipart form has no `file` field")


class InvalidRequest(VidpipeError):
    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(ErrorCode.VALIDATION_FAILED, message, details)


class UnsupportedMediaType(VidpipeError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.UNSUPPORTED_FORMAT, message)


class RetryLater(VidpipeError):
    """A refusal the client may retry after `retry_after` seconds (sent as `Retry-After`)."""

    def __init__(
        self, code: ErrorCode, message: str, details: dict[str, Any], retry_after: int
    ) -> None:
        super().__init__(code, message, {**details, "retryAfterSeconds": retry_after})
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(retry_after)


class RateLimited(RetryLater):
    def __init__(self, scope: str, window: str, limit: int, retry_after: int) -> None:
        super().__init__(
            ErrorCode.RATE_LIMITED,
            f"{scope} limit of {limit} uploads per {window} reached",
            {"scope": scope, "window": window, "limit": limit},
            retry_after,
        )


class TooManyConcurrentUploads(RetryLater):
    def __init__(self, scope: str, limit: int, retry_after: int) -> None:
        who = "this caller" if scope == "owner" else "this API instance"
        super().__init__(
            ErrorCode.TOO_MANY_CONCURRENT_UPLOADS,
            f"{who} already has {limit} uploads in progress; retry when one has finished",
            {"scope": scope, "limit": limit},
            retry_after,
        )


class TooManyUploadSessions(RetryLater):
    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            ErrorCode.TOO_MANY_UPLOAD_SESSIONS,
            f"at most {limit} open upload sessions per caller; complete or abort one first",
            {"limit": limit},
            retry_after,
        )


class UploadTimeout(VidpipeError):
    def __init__(self, kind: str, seconds: float) -> None:
        message = (
            f"no data received for {seconds:g} s; the upload was discarded"
            if kind == "idle"
            else f"the upload took longer than {seconds:g} s; the upload was discarded"
        )
        super().__init__(ErrorCode.UPLOAD_TIMEOUT, message, {"timeout": kind, "seconds": seconds})


class FormLimitExceeded(VidpipeError):
    def __init__(self, limit: str, value: int) -> None:
        what = {"fields": "form fields", "fieldBytes": "bytes outside the file part"}[limit]
        super().__init__(
            ErrorCode.FORM_LIMIT_EXCEEDED,
            f"the form has more than {value} {what}",
            {"limit": limit, "max": value},
        )


class UploadSessionExpired(VidpipeError):
    def __init__(self, upload_id: str) -> None:
        super().__init__(
            ErrorCode.UPLOAD_SESSION_EXPIRED,
            f"upload session {upload_id!r} expired; its parts were discarded, start a new one",
        )


class UploadCompleting(RetryLater):
    def __init__(self, upload_id: str, retry_after: int) -> None:
        super().__init__(
            ErrorCode.UPLOAD_COMPLETING,
            f"upload {upload_id!r} is being completed by another request; retry to get its job",
            {"uploadId": upload_id},
            retry_after,
        )


class TooManyEventStreams(RetryLater):
    def __init__(self, scope: str, limit: int) -> None:
        who = "this API key" if scope == "key" else "this API instance"
        super().__init__(
            ErrorCode.TOO_MANY_EVENT_STREAMS,
            f"{who} already has {limit} event streams open; close one first",
            {"scope": scope, "limit": limit},
            # An EventSource retries on its own; a few seconds lets a closed stream's slot go.
            5,
        )


class WebhookNotFound(VidpipeError):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(ErrorCode.WEBHOOK_NOT_FOUND, f"no webhook {webhook_id!r} for this caller")


class WebhookUrlRefused(VidpipeError):
    """The URL is not one we deliver to; the message names the rule, never echoes the URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            ErrorCode.WEBHOOK_URL_REFUSED, f"webhook URL refused: {reason}", {"reason": reason}
        )


class WebhookLimitReached(VidpipeError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            ErrorCode.WEBHOOK_LIMIT_REACHED,
            f"at most {limit} webhook endpoints per caller; delete one first",
            {"limit": limit},
        )


class WebhookDisabled(VidpipeError):
    def __init__(self, webhook_id: str) -> None:
        super().__init__(
            ErrorCode.WEBHOOK_DISABLED,
            f"webhook {webhook_id!r} is disabled; enable it first (PATCH enabled: true)",
        )


class DeliveryNotFound(VidpipeError):
    def __init__(self, delivery: str) -> None:
        super().__init__(ErrorCode.DELIVERY_NOT_FOUND, f"no delivery {delivery!r} for this webhook")


class DeliveryInProgress(VidpipeError):
    def __init__(self, delivery: str) -> None:
        super().__init__(
            ErrorCode.DELIVERY_IN_PROGRESS,
            f"delivery {delivery!r} is being attempted right now; see its attempts",
        )


class StorageUnavailable(VidpipeError):
    def __init__(self, message: str = "object storage is unavailable; retry later") -> None:
        super().__init__(ErrorCode.STORAGE_UNAVAILABLE, message)


class DatabaseUnavailable(VidpipeError):
    def __init__(self, message: str = "the database is unavailable; retry later") -> None:
        super().__init__(ErrorCode.DATABASE_UNAVAILABLE, message)


class VideoJobRejected(VidpipeError):
    """The API server refused the VideoJob itself (400/422): resubmitting cannot help."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(
            ErrorCode.JOB_REJECTED,
            f"the cluster refused the job ({status}): {reason[:300]}",
            {"status": status},
        )


class ClusterUnavailable(VidpipeError):
    def __init__(self, message: str = "the Kubernetes API is unavailable; retry later") -> None:
        super().__init__(ErrorCode.CLUSTER_UNAVAILABLE, message)


def error_response(
    code: ErrorCode,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code.value, "message": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=CATALOGUE[code].http_status, headers=headers)


def _http_code(status: int) -> ErrorCode:
    return {
        401: ErrorCode.UNAUTHENTICATED,
        403: ErrorCode.FORBIDDEN,
        404: ErrorCode.NOT_FOUND,
        405: ErrorCode.METHOD_NOT_ALLOWED,
        413: ErrorCode.BODY_TOO_LARGE,
        415: ErrorCode.UNSUPPORTED_FORMAT,
        429: ErrorCode.RATE_LIMITED,
    }.get(status, ErrorCode.VALIDATION_FAILED if 400 <= status < 500 else ErrorCode.INTERNAL)


def validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Field locations and messages only: echoing `input` back could reflect secrets."""
    return [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in exc.errors()
    ]


def install_error_handlers(app: FastAPI, on_error: Any = None) -> None:
    """Register the handlers; `on_error(code)` lets the metrics count rejections by code."""

    def _count(code: ErrorCode) -> None:
        if on_error is not None:
            on_error(code)

    async def vidpipe_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, VidpipeError)
        _count(exc.code)
        return error_response(exc.code, exc.message, exc.details, dict(exc.headers) or None)

    async def request_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        _count(ErrorCode.VALIDATION_FAILED)
        return error_response(
            ErrorCode.VALIDATION_FAILED,
            "the request parameters are invalid",
            {"errors": validation_details(exc)},
        )

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _http_code(exc.status_code)
        message = exc.detail if isinstance(exc.detail, str) else CATALOGUE[code].summary
        return error_response(code, message, headers=dict(exc.headers or {}))

    async def client_gone(_: Request, exc: Exception) -> JSONResponse:
        # A client that hangs up mid-upload is routine (and an attack pattern): the partial
        # upload is already undone; no traceback per connection. Nobody reads this answer.
        log.info("client disconnected during the request")
        return error_response(ErrorCode.VALIDATION_FAILED, "the client closed the connection")

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Logged with the traceback for operators; the client only gets the stable code.
        log.error("unhandled error", exc_info=exc)
        _count(ErrorCode.INTERNAL)
        return error_response(ErrorCode.INTERNAL, "unexpected server error")

    app.add_exception_handler(VidpipeError, vidpipe_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected)


class BodyLimitAnswer:
    """Sends the catalogue's `413 body_too_large` in place of the plain-text 413 that Starlette's
    body limiter (FastAPI's `max_body_size`) answers outside the app's error handlers: for a
    declared Content-Length over the limit, and for a response begun before the body was read.
    The app itself never answers a plain-text 413, so the rewrite catches nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_catalogued(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and _plain_413(message):
                replaced = True
                response = error_response(
                    ErrorCode.BODY_TOO_LARGE, "the request body exceeds this route's size limit"
                )
                await response(scope, receive, send)
            elif not replaced:  # the plain-text body of a replaced answer is dropped
                await send(message)

        await self.app(scope, receive, send_catalogued)


def _plain_413(start: Message) -> bool:
    headers: dict[bytes, bytes] = dict(start.get("headers") or [])
    status: int = start["status"]
    return status == 413 and headers.get(b"content-type", b"").startswith(b"text/plain")
