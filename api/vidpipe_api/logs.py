"""Structured JSON logs on stdout: one object per line, safe fields only.

Keys, tokens and presigned URLs are never passed to the logger; as a second line of defence the
formatter redacts anything that looks like a signature query string or an API key.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}
_REDACT = re.compile(
    r"(X-Amz-Signature|X-Amz-Credential|Signature)=[^&\s\"]+|vpk_[0-9a-f]+_[A-Za-z0-9_-]+"
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _REDACT.sub(_redacted, json.dumps(entry, default=str, ensure_ascii=False))


def _redacted(match: re.Match[str]) -> str:
    text = match.group(0)
    return text.split("=")[0] + "=<redacted>" if "=" in text else "vpk_<redacted>"


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log prints full request lines; ours is the metrics and the app log.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
