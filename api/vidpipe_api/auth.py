"""API keys: `vpk_<id>_<secret>`, stored as a SHA-256 hash under the public id.

The secret is 256 random bits, so a fast hash is enough (no dictionary to attack); the id lets
us fetch the one candidate document instead of hashing against every stored key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

KEY_PREFIX = "vpk"
# Owners become Kubernetes label values: 63 characters of [a-z0-9._-], alphanumeric at the ends.
OWNER_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
_KEY_RE = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")


@dataclass(frozen=True)
class Principal:
    owner: str
    key_id: str
    admin: bool = False


def generate_key() -> tuple[str, str]:
    """Returns (key id, full key); the full key is shown once and never stored."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    match = _KEY_RE.match(key)
    return match.group(1) if match else None


def verify(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def credential_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    if api_key:
        return api_key.strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def key_document(owner: str, admin: bool, created_at: datetime) -> tuple[str, dict[str, Any]]:
    """A new key and the document to store for it."""
    if not OWNER_PATTERN.match(owner):
        raise ValueError("owner must be a lowercase label value (a-z, 0-9, '.', '_', '-')")
    key_id, key = generate_key()
    doc = {
        "_id": key_id,
        "hash": hash_key(key),
        "owner": owner,
        "admin": admin,
        "created_at": created_at,
        "revoked_at": None,
    }
    return key, doc
