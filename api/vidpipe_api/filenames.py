"""Client filenames are metadata only: sanitized for display, never used in an object key."""

from __future__ import annotations

import re
import unicodedata

MAX_FILENAME_LENGTH = 255
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def sanitize_filename(name: str | None) -> str | None:
    """Keep the last path component, printable and NFC-normalized; None if nothing is left.

    Unicode letters stay (users name files in their own language); separators, control
    characters and leading dots go, so the value is harmless in headers, logs and downloads.
    """
    if not name:
        return None
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name)
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = name.strip().lstrip(".").strip()
    if not name or set(name) <= {"_", "."}:
        return None
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME_LENGTH - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_LENGTH]
    return name
