"""The processor's own failure types, each tied to one exit code by `vidpipe_processor.exits`."""

from __future__ import annotations

from vidpipe.errors import BadInput, ErrorCode, VidpipeError


class InvalidJob(BadInput):
    """The job request itself can never run (bad spec, inconsistent settings): do not retry."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.VALIDATION_FAILED, message)


class ProcessingFailed(VidpipeError):
    """A fault worth retrying: ffmpeg crashed, an output is missing, the disk is full..."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.PROCESSING_FAILED) -> None:
        super().__init__(code, message)


class FfmpegFailed(ProcessingFailed):
    """ffmpeg exited non-zero; carries its exit code and the end of its stderr for the logs."""

    def __init__(self, returncode: int, stderr_tail: str) -> None:
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        last = stderr_tail.strip().splitlines()[-1:] or [""]
        super().__init__(f"ffmpeg exited with code {returncode}: {last[0][:300]}")


class StorageError(ProcessingFailed):
    """S3 failed after botocore's own retries; the next Pod may have better luck."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ErrorCode.STORAGE_UNAVAILABLE)


class Terminated(BaseException):
    """SIGTERM or SIGINT arrived (cancellation, eviction, node drain).

    A BaseException so that no `except Exception` on the way up swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
