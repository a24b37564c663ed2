"""Standard Webhooks v1 signatures (spec v1.0.0): what a receiver checks to trust a delivery.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; a signature is `v1,` and the
base64 HMAC-SHA256 of it under the secret's key (the base64 text after `whsec_`). While a rotated
secret is in its grace period both secrets sign, space-separated in one header, so a receiver
holding either verifies and can switch over at its own pace.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from vidpipe.events import WebhookSecret
from vidpipe.webhooks import SECRET_PREFIX


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_` secret (vidpipe.webhooks.new_secret makes them; the prefix
    is optional, as receivers accept it)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of a message."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signing_secrets(held: Sequence[WebhookSecret], now: datetime) -> list[str]:
    """The secrets that sign now: the current one and any rotated one still in its grace
    period, newest first."""
    live = [s for s in held if s.expires_at is None or s.expires_at > now]
    return [s.value for s in sorted(live, key=lambda s: s.created_at, reverse=True)]


def headers(msg_id: str, timestamp: int, body: bytes, secrets_now: Sequence[str]) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    if not secrets_now:
        raise ValueError("an endpoint without a live secret cannot be signed for")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_now),
    }
