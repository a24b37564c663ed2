"""Webhook endpoints, the event log and deliveries in MongoDB, for the API's routes.

The documents are vidpipe.events (shared with the operator, which writes events, and the
dispatcher, which creates and works deliveries). Every query here is scoped to one owner: a
tenant never reads or changes another's endpoints, events or deliveries. Calls run in worker
threads through `Database.run`, like the job queries.

URLs are checked before they are stored (`check_url`): the form, then the host, refusing IP
literals that are not public and names that only resolve inside a cluster or host. Names that
resolve to such addresses are the dispatcher's to refuse, after DNS, at every delivery.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from vidpipe.events import (
    DELIVERIES_COLLECTION,
    EVENTS_COLLECTION,
    WEBHOOKS_COLLECTION,
    Delivery,
    DeliveryState,
    EventType,
    JobEvent,
    WebhookEndpoint,
    WebhookSecret,
    delivery_id,
)
from vidpipe.webhooks import (
    AllowList,
    IPAddress,
    address_refusal,
    delivery_insert,
    internal_name,
    new_delivery,
)
from vidpipe_api.db import Database
from vidpipe_api.errors import WebhookUrlRefused
from vidpipe_api.pagination import Cursor

log = logging.getLogger(__name__)
Doc = dict[str, Any]
M = TypeVar("M", JobEvent, Delivery, WebhookEndpoint)

URL_MAX_LENGTH = 2048
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Replays write deliveries in batches of this many (one round trip each).
REPLAY_BATCH = 500


def to_ms(t: datetime) -> int:
    """Milliseconds since the epoch, exactly (a float timestamp can be 1 ms off)."""
    return (t - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


# -- URLs -------------------------------------------------------------------------------------


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # Forms resolvers accept as IPv4 (`127.1`, `0x7f000001`, `2130706433`) are literals too.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_url(url: str, allowed: Sequence[str] = ()) -> str:
    """The URL if webhooks may be sent to it; `WebhookUrlRefused` saying why otherwise.

    `allowed` (the `webhook_allowed_hosts` setting) lets listed internal hosts through: exact
    names, `.suffix`es, and IPs or CIDRs for IP literals.
    """
    if len(url) > URL_MAX_LENGTH:
        raise WebhookUrlRefused(f"longer than {URL_MAX_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise WebhookUrlRefused("contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError as exc:
        raise WebhookUrlRefused("not a valid URL") from exc
    if parts.scheme not in ("https", "http"):
        raise WebhookUrlRefused("the scheme must be https or http")
    if "@" in parts.netloc:
        raise WebhookUrlRefused("credentials in the URL are not allowed (verify the signature)")
    if parts.fragment:
        raise WebhookUrlRefused("a fragment is never sent; remove it")
    raw_host = (parts.hostname or "").rstrip(".")
    if not raw_host:
        raise WebhookUrlRefused("no host")
    address = _ip_literal(raw_host)
    if address is None:
        try:
            # IDNA maps look-alike dots (U+3002, ...) to '.', as the HTTP client will.
            host = raw_host.encode("idna").decode("ascii").lower().rstrip(".")
        except UnicodeError as exc:
            raise WebhookUrlRefused("not a valid host name") from exc
        address = _ip_literal(host)
    else:
        host = raw_host
    allow = AllowList.parse(allowed)
    if allow.allows_host(host) or (address is not None and allow.allows_address(address)):
        return url
    if address is not None:
        reason = address_refusal(address)
        if reason is not None:
            raise WebhookUrlRefused(f"{reason} (allow it with webhook_allowed_hosts)")
        return url
    if "." not in host:
        raise WebhookUrlRefused("a single-label host name (resolved with internal search domains)")
    if internal_name(host):
        raise WebhookUrlRefused("a local or cluster-internal host name")
    if host.rsplit(".", 1)[1].isdigit():
        raise WebhookUrlRefused("a numeric host that is not an IP address")
    return url


# -- the store --------------------------------------------------------------------------------


def _page_filter(field: str, after: Cursor | None, newest_first: bool) -> Doc:
    """Everything strictly beyond the cursor's (time, id) in the listing's order."""
    if after is None:
        return {}
    at = from_ms(after.created_ms)
    op = "$lt" if newest_first else "$gt"
    return {"$or": [{field: {op: at}}, {field: at, "_id": {op: after.job_id}}]}


def _parse(model: type[M], docs: Any) -> list[M]:
    items: list[M] = []
    for doc in docs:
        try:
            items.append(model.model_validate(doc))
        except ValidationError:
            # One unreadable document must not hide every other one of the page.
            log.error("unreadable document", extra={"kind": model.__name__, "id": doc.get("_id")})
    return items


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        database = db.jobs.database
        self.webhooks: Collection[Doc] = database[WEBHOOKS_COLLECTION]
        self.events: Collection[Doc] = database[EVENTS_COLLECTION]
        self.deliveries: Collection[Doc] = database[DELIVERIES_COLLECTION]

    def ensure_indexes(self, retention: timedelta) -> None:
        """The indexes of the owner-scoped listings below (sync, at start-up)."""
        self.webhooks.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
        self.events.create_index([("owner", ASCENDING), ("time", DESCENDING), ("_id", DESCENDING)])
        self.events.create_index([("owner", ASCENDING), ("job_id", ASCENDING), ("time", ASCENDING)])
        self.deliveries.create_index(
            [("webhook_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
        )
        self.deliveries.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
        seconds = int(retention.total_seconds())
        for collection, field in ((self.events, "time"), (self.deliveries, "created_at")):
            try:
                # The retention: old events and deliveries expire where TTL indexes exist.
                collection.create_index(field, expireAfterSeconds=seconds, name=f"{field}_ttl")
            except PyMongoError as exc:
                log.info(
                    "no TTL index; events are kept",
                    extra={"collection": collection.name, "error": type(exc).__name__},
                )

    # -- endpoints ------------------------------------------------------------------------------

    async def count(self, owner: str) -> int:
        return await self.db.run(self.webhooks.count_documents, {"owner": owner})

    async def insert(self, endpoint: WebhookEndpoint) -> None:
        await self.db.run(self.webhooks.insert_one, endpoint.model_dump(by_alias=True))

    async def get(self, owner: str, webhook_id: str) -> WebhookEndpoint | None:
        doc = await self.db.run(self.webhooks.find_one, {"_id": webhook_id, "owner": owner})
        return None if doc is None else WebhookEndpoint.model_validate(doc)

    async def list_endpoints(self, owner: str) -> list[WebhookEndpoint]:
        def _find() -> list[WebhookEndpoint]:
            found = self.webhooks.find({"owner": owner}).sort("created_at", DESCENDING)
            return _parse(WebhookEndpoint, found)

        return await self.db.run(_find)

    async def update(self, owner: str, webhook_id: str, fields: Doc) -> WebhookEndpoint | None:
        doc = await self.db.run(
            self.webhooks.find_one_and_update,
            {"_id": webhook_id, "owner": owner},
            {"$set": fields},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else WebhookEndpoint.model_validate(doc)

    async def swap_secrets(
        self, endpoint: WebhookEndpoint, secrets: list[WebhookSecret], at: datetime
    ) -> bool:
        """Store `secrets` if nobody changed the endpoint since it was read (False: re-read)."""
        result = await self.db.run(
            self.webhooks.update_one,
            {"_id": endpoint.id, "owner": endpoint.owner, "updated_at": endpoint.updated_at},
            {"$set": {"secrets": [s.model_dump() for s in secrets], "updated_at": at}},
        )
        return result.matched_count == 1

    async def delete(self, owner: str, webhook_id: str) -> bool:
        """The endpoint first, so no new delivery is made for it; then its delivery log."""
        result = await self.db.run(self.webhooks.delete_one, {"_id": webhook_id, "owner": owner})
        if result.deleted_count == 0:
            return False
        await self.db.run(self.deliveries.delete_many, {"webhook_id": webhook_id, "owner": owner})
        return True

    # -- events ---------------------------------------------------------------------------------

    async def list_events(
        self,
        owner: str,
        *,
        job_id: str | None,
        types: Sequence[EventType],
        after: Cursor | None,
        limit: int,
        newest_first: bool,
    ) -> list[JobEvent]:
        query: Doc = {"owner": owner, **_page_filter("time", after, newest_first)}
        if job_id is not None:
            query["job_id"] = job_id
        if types:
            query["type"] = {"$in": [t.value for t in types]}
        order = DESCENDING if newest_first else ASCENDING

        def _find() -> list[JobEvent]:
            found = self.events.find(query).sort([("time", order), ("_id", order)]).limit(limit)
            return _parse(JobEvent, found)

        return await self.db.run(_find)

    async def event_types(self, owner: str, event_ids: Sequence[str]) -> dict[str, str]:
        def _find() -> dict[str, str]:
            found = self.events.find({"_id": {"$in": list(event_ids)}, "owner": owner}, {"type": 1})
            return {str(d["_id"]): str(d.get("type")) for d in found}

        return await self.db.run(_find) if event_ids else {}

    # -- deliveries -----------------------------------------------------------------------------

    async def list_deliveries(
        self,
        endpoint: WebhookEndpoint,
        *,
        states: Sequence[DeliveryState],
        after: Cursor | None,
        limit: int,
    ) -> list[Delivery]:
        query: Doc = {
            "webhook_id": endpoint.id,
            "owner": endpoint.owner,
            **_page_filter("created_at", after, newest_first=True),
        }
        if states:
            query["state"] = {"$in": [s.value for s in states]}

        def _find() -> list[Delivery]:
            order = [("created_at", DESCENDING), ("_id", DESCENDING)]
            return _parse(Delivery, self.deliveries.find(query).sort(order).limit(limit))

        return await self.db.run(_find)

    async def get_delivery(self, endpoint: WebhookEndpoint, delivery: str) -> Delivery | None:
        doc = await self.db.run(
            self.deliveries.find_one,
            {"_id": delivery, "webhook_id": endpoint.id, "owner": endpoint.owner},
        )
        return None if doc is None else Delivery.model_validate(doc)

    async def requeue(self, endpoint: WebhookEndpoint, delivery: str, at: datetime) -> bool:
        """Make the delivery pending and due at `at`, unless a dispatcher holds a live claim on a
        pending one (False then, or when there is no such delivery). Its attempts stay."""
        result = await self.db.run(
            self.deliveries.update_one,
            {
                "_id": delivery,
                "webhook_id": endpoint.id,
                "owner": endpoint.owner,
                "$or": [
                    {"state": {"$ne": DeliveryState.PENDING.value}},
                    {"claimed_until": None},
                    {"claimed_until": {"$lte": at}},
                ],
            },
            {
                "$set": {
                    "state": DeliveryState.PENDING.value,
                    "next_attempt_at": at,
                    "claimed_by": None,
                    "claimed_until": None,
                }
            },
        )
        return result.matched_count == 1

    async def replay(
        self,
        endpoint: WebhookEndpoint,
        *,
        since: datetime,
        until: datetime,
        types: Sequence[EventType],
        at: datetime,
        max_events: int,
    ) -> tuple[int, int, int, datetime | None]:
        """Queue the endpoint's events of [since, until], oldest first: a delivery for each event
        that has none, and the failed, refused or disabled ones again (a pending or succeeded
        delivery is left alone, so a second replay queues nothing new).

        Returns (events, created, requeued, where to continue or None when the window is done).
        """
        wanted = [
            t.value for t in types if endpoint.wants(t) and t is not EventType.WEBHOOK_DISABLED
        ]
        query: Doc = {
            "owner": endpoint.owner,
            "time": {"$gte": since, "$lte": until},
            "type": {"$in": wanted},
            "job_id": {"$ne": None},
        }
        final = [
            DeliveryState.FAILED.value,
            DeliveryState.REFUSED.value,
            DeliveryState.DISABLED.value,
        ]

        def _replay() -> tuple[int, int, int, datetime | None]:
            found = self.events.find(query, {"_id": 1, "time": 1})
            found = found.sort([("time", ASCENDING), ("_id", ASCENDING)]).limit(max_events + 1)
            rows = list(found)
            more = rows[max_events]["time"] if len(rows) > max_events else None
            rows = rows[:max_events]
            created = requeued = 0
            for start in range(0, len(rows), REPLAY_BATCH):
                ids = [str(r["_id"]) for r in rows[start : start + REPLAY_BATCH]]
                inserts = [
                    UpdateOne(
                        *delivery_insert(new_delivery(e, endpoint.id, endpoint.owner, at)),
                        upsert=True,
                    )
                    for e in ids
                ]
                created += self.deliveries.bulk_write(inserts, ordered=False).upserted_count
                again = self.deliveries.update_many(
                    {
                        "_id": {"$in": [delivery_id(e, endpoint.id) for e in ids]},
                        "owner": endpoint.owner,
                        "state": {"$in": final},
                    },
                    {
                        "$set": {
                            "state": DeliveryState.PENDING.value,
                            "next_attempt_at": at,
                            "claimed_by": None,
                            "claimed_until": None,
                        }
                    },
                )
                requeued += again.modified_count
            return len(rows), created, requeued, more

        return await self.db.run(_replay)
