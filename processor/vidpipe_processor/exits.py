"""How the processor ends: one exit code per kind of outcome, and the termination message.

The Job's podFailurePolicy is built on the exit code (BAD_INPUT fails the job at once, anything
else is retried); the operator shows the termination message (one JSON line) to the user.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from vidpipe import exitcodes
from vidpipe.errors import BadInput, ErrorCode, VidpipeError
from vidpipe_processor.errors import Terminated

log = logging.getLogger(__name__)

# Kubernetes keeps at most 4096 bytes of the termination message; stay well inside it.
MAX_MESSAGE_CHARS = 1000


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int
    code: ErrorCode | None
    message: str

    def termination_message(self) -> str:
        # What was produced is the manifest's to say (the operator reads it), never this line.
        body = {"code": self.code.value if self.code else "ok", "message": self.message}
        return json.dumps(body, separators=(",", ":"))


SUCCESS = ExitStatus(exitcodes.SUCCESS, None, "all outputs written")


def exit_status(exc: BaseException) -> ExitStatus:
    """Map what stopped the processor to its exit code, catalogue code and message."""
    if isinstance(exc, Terminated):
        return ExitStatus(
            exitcodes.TERMINATED,
            ErrorCode.PROCESSING_FAILED,
            f"processing {exc} (cancelled or evicted); the operator removes partial outputs",
        )
    if isinstance(exc, KeyboardInterrupt):
        return ExitStatus(exitcodes.TERMINATED, ErrorCode.PROCESSING_FAILED, "interrupted")
    if isinstance(exc, BadInput):
        return ExitStatus(exitcodes.BAD_INPUT, exc.code, _clip(exc.message))
    if isinstance(exc, ValidationError):
        # The environment (the operator's Job template) is wrong: retrying cannot fix it.
        return ExitStatus(
            exitcodes.BAD_INPUT,
            ErrorCode.VALIDATION_FAILED,
            _clip("invalid processor configuration: " + describe_validation_error(exc)),
        )
    if isinstance(exc, SettingsError):
        return ExitStatus(
            exitcodes.BAD_INPUT,
            ErrorCode.VALIDATION_FAILED,
            _clip(f"invalid processor configuration: {exc}"),
        )
    if isinstance(exc, VidpipeError):
        return ExitStatus(exitcodes.RETRYABLE, exc.code, _clip(exc.message))
    return ExitStatus(
        exitcodes.RETRYABLE,
        ErrorCode.INTERNAL,
        _clip(f"unexpected error: {type(exc).__name__}: {exc}"),
    )


def describe_validation_error(exc: ValidationError) -> str:
    # Never the input values: they could hold credentials.
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )


def write_termination_message(path: Path, status: ExitStatus) -> None:
    """Best effort: outside a Pod the default path may not exist; that must not hide the exit."""
    try:
        path.write_text(status.termination_message() + "\n")
    except OSError as exc:
        log.warning(
            "cannot write the termination message", extra={"path": str(path), "error": str(exc)}
        )


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"
