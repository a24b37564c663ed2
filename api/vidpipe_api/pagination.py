"""Opaque cursors for job, event and delivery listings.

A cursor names the last item of a page by (time in ms, id); the next page is everything strictly
beyond it in the listing's order, so concurrent inserts never shift or repeat items.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from vidpipe_api.errors import InvalidRequest

MAX_CURSOR_MS = 10**13


@dataclass(frozen=True)
class Cursor:
    created_ms: int
    job_id: str


def encode_cursor(cursor: Cursor) -> str:
    raw = json.dumps([cursor.created_ms, cursor.job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, max_id: int = 63) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created_ms, job_id = json.loads(raw)
    # RecursionError: JSON nested a few thousand deep.
    except (binascii.Error, ValueError, TypeError, RecursionError) as exc:
        raise InvalidRequest("invalid cursor") from exc
    # A time a datetime can hold (13 digits of ms: until the year 2286); bool is an int too.
    in_range = type(created_ms) is int and 0 <= created_ms < MAX_CURSOR_MS
    if not in_range or not isinstance(job_id, str) or len(job_id) > max_id:
        raise InvalidRequest("invalid cursor")
    return Cursor(created_ms, job_id)
