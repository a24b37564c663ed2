"""Structured logs for every component: one JSON object per line, safe fields only.

One shape, so one log pipeline reads the API and the processor alike. Extra fields come from
`logger.info("msg", extra={...})`. Keys, tokens and presigned URLs are never passed to a logger;
as a second line of defence the formatter redacts anything that looks like a signature query
string, an API key, a webhook signing secret or a JWT (playback tokens).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; anything else was passed through `extra`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Applied to the encoded JSON line: a value stops at a backslash too, or redacting a signature
# that ends in an escaped quote would take the backslash with it and break the line.
_REDACT = re.compile(
    r"(X-Amz-Signature|X-Amz-Credential|Signature)=[^&\s\"\\]+|vpk_[0-9a-f]+_[A-Za-z0-9_-]+"
    r"|whsec_[A-Za-z0-9+/]+=*"
    # A JWT (playback tokens): base64url JSON header, payload, signature.
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)


class JsonFormatter(logging.Formatter):
    """`job_id`, when set, goes on every line as `jobId` (the processor runs one job)."""

    def __init__(self, job_id: str | None = None) -> None:
        super().__init__()
        self.job_id = job_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.job_id:
            entry["jobId"] = self.job_id
        entry.update(self.extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _REDACT.sub(_redacted, json.dumps(entry, default=str, ensure_ascii=False))

    def extra_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """What the call passed through `extra` (a component may reshape a library's extras)."""
        fields = vars(record).items()
        return {k: v for k, v in fields if k not in _STANDARD and not k.startswith("_")}


def _redacted(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.startswith("whsec_"):
        return "whsec_<redacted>"  # base64 padding is an `=` too: not a key=value pair
    if text.startswith("eyJ"):
        return "<redacted-token>"
    return text.split("=")[0] + "=<redacted>" if "=" in text else "vpk_<redacted>"


def install_json_logging(
    stream: TextIO, level: str, job_id: str | None = None, formatter: JsonFormatter | None = None
) -> logging.Handler:
    """Every record of this process goes to `stream` as JSON, through this one handler."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter or JsonFormatter(job_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return handler
