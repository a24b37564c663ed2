"""Standard Webhooks signatures, checked by the reference library (standardwebhooks 1.1.0), which
shares no code with ours."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from vidpipe.events import WebhookSecret
from vidpipe.webhooks import new_secret
from vidpipe_dispatcher.signing import headers, secret_key, sign, signing_secrets

pytestmark = pytest.mark.unit

BODY = b'{"type":"job.succeeded","timestamp":"2026-01-01T00:00:00Z","data":{"id":"evt_j_1"}}'


def test_the_reference_library_verifies_our_signature() -> None:
    # Fails if the signed content, the key decoding or the header format left the spec.
    secret = new_secret()
    now = int(time.time())
    got = Webhook(secret).verify(BODY, headers("evt_j_1", now, BODY, [secret]))
    assert got["type"] == "job.succeeded"


def test_a_changed_body_id_or_timestamp_fails_verification() -> None:
    # Fails if the signature did not cover every part of `{id}.{timestamp}.{body}`.
    secret = new_secret()
    now = int(time.time())
    good = headers("evt_j_1", now, BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"succeeded", b"failed"), good)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**good, "webhook-id": "evt_j_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**good, "webhook-timestamp": str(now - 1)})
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, good)


def test_secrets_are_whsec_with_24_to_64_random_key_bytes() -> None:
    # Fails if the prefix, the encoding or the key length were wrong, or keys repeated.
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for s in secrets:
        assert s.startswith("whsec_")
        assert 24 <= len(secret_key(s)) <= 64


def test_signature_is_byte_for_byte_the_reference_one() -> None:
    # Fails if our `v1,` signature of a fixed message differed in any byte from the reference
    # library's (the key, the signed content or the base64 alphabet).
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = Webhook(secret).sign("msg_1", datetime.fromtimestamp(1700000000, UTC), "{}")
    assert sign(secret, "msg_1", 1700000000, b"{}") == expected


def test_during_rotation_both_secrets_sign_and_either_verifies() -> None:
    # Fails if the old secret stopped signing before its expiry, kept signing after it, or
    # the signatures were not space-separated in one header.
    now = datetime.now(UTC)
    old = WebhookSecret(
        value=new_secret(), created_at=now - timedelta(days=9), expires_at=now + timedelta(hours=1)
    )
    new = WebhookSecret(value=new_secret(), created_at=now - timedelta(minutes=1))
    live = signing_secrets([old, new], now)
    assert live == [new.value, old.value]
    sent = headers("evt_j_1", int(now.timestamp()), BODY, live)
    assert len(sent["webhook-signature"].split(" ")) == 2
    Webhook(new.value).verify(BODY, sent)
    Webhook(old.value).verify(BODY, sent)
    assert signing_secrets([old, new], now + timedelta(hours=2)) == [new.value]


def test_an_endpoint_without_a_live_secret_is_not_signed() -> None:
    # Fails if a delivery could go out unsigned (an empty signature header).
    with pytest.raises(ValueError):
        headers("evt_j_1", 0, BODY, [])
