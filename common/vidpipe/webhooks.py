"""What the API and the webhook dispatcher both need about endpoints: new secrets, new
deliveries, and which network addresses a webhook may never reach (the SSRF guard).

The API applies `address_refusal` to IP literals when an endpoint is registered; the dispatcher
applies it to every address a name resolves to, right before it connects. The documents
themselves are vidpipe.events.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address

from vidpipe.events import Delivery, Doc, delivery_id

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_webhook_id() -> str:
    return f"wh_{secrets.token_hex(12)}"


def new_delivery(event: str, webhook: str, owner: str, at: datetime) -> Delivery:
    """A delivery of `event` to `webhook`, due at `at`."""
    return Delivery(
        id=delivery_id(event, webhook),
        event_id=event,
        webhook_id=webhook,
        owner=owner,
        next_attempt_at=at,
        created_at=at,
    )


def delivery_insert(delivery: Delivery) -> tuple[Doc, Doc]:
    """Filter and update of an idempotent insert (`upsert=True`), like `outbox_insert`: the id
    is deterministic, so whoever creates a delivery twice (a replay, the dispatcher's fan-out)
    leaves one."""
    fields = delivery.model_dump(
        by_alias=True, exclude={"id"}
    )  # the upsert takes _id from the filter
    return {"_id": delivery.id}, {"$setOnInsert": fields}


def address_refusal(address: IPv4Address | IPv6Address) -> str | None:
    """Why a webhook may not go to this address; None for a public unicast address.

    An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is judged as the IPv4 address it carries.
    """
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local address (cloud metadata services live there)"
    if address.is_multicast:
        return "multicast address"
    if address.is_private:
        return "private address"
    if not address.is_global:
        return "not a public address"
    return None
