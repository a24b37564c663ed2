"""The dispatcher's MongoDB reads and writes (pymongo, blocking: loop.py calls them from its
worker threads). Every write is safe to repeat and safe for several replicas at once: deliveries
are inserted by deterministic id, a delivery is claimed by one replica through a unique insert,
and an endpoint is disabled by the write that still finds it enabled.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError
from pymongo import ASCENDING, MongoClient, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from vidpipe.events import (
    DELIVERIES_COLLECTION,
    EVENTS_COLLECTION,
    WEBHOOKS_COLLECTION,
    Attempt,
    Delivery,
    DeliveryState,
    EventType,
    JobEvent,
    WebhookEndpoint,
    outbox_insert,
)
from vidpipe.webhooks import delivery_insert, new_delivery

Doc = dict[str, Any]
M = TypeVar("M", JobEvent, Delivery, WebhookEndpoint)
log = logging.getLogger("vidpipe_dispatcher")
# One document per claim won (see `claim`); the dispatcher's own collection.
CLAIMS_COLLECTION = "delivery_claims"


def connect(url: str, database: str, timeout_ms: int) -> Database[Doc]:
    client: MongoClient[Doc] = MongoClient(
        url,
        tz_aware=True,
        tzinfo=UTC,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 2, 10_000),
    )
    return client[database]


def ensure_indexes(db: Database[Doc]) -> None:
    """The indexes of the dispatcher's own queries (polled several times a second)."""
    db[EVENTS_COLLECTION].create_index([("dispatched", ASCENDING), ("time", ASCENDING)])
    db[WEBHOOKS_COLLECTION].create_index([("owner", ASCENDING)])
    db[DELIVERIES_COLLECTION].create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
    db[DELIVERIES_COLLECTION].create_index([("webhook_id", ASCENDING), ("state", ASCENDING)])
    try:
        # A claim's number is contended for milliseconds; a day later its record is garbage.
        db[CLAIMS_COLLECTION].create_index("at", expireAfterSeconds=86400, name="at_ttl")
    except PyMongoError as exc:  # a server without TTL indexes: the records are kept
        log.info("no TTL index on claims", extra={"error": type(exc).__name__})


def _read(model: type[M], doc: Doc) -> M | None:
    """The document as `model`, or None (logged) when it does not fit: one malformed document
    must not stop every delivery behind it."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        log.error(
            "unreadable document",
            extra={"kind": model.__name__, "id": str(doc.get("_id")), "errors": exc.error_count()},
        )
        return None


def undispatched(db: Database[Doc], limit: int) -> list[JobEvent]:
    cursor = db[EVENTS_COLLECTION].find({"dispatched": False}).sort("time", ASCENDING).limit(limit)
    events = []
    for doc in cursor:
        event = _read(JobEvent, doc)
        if event is None:  # set aside, or it would head every batch for ever
            db[EVENTS_COLLECTION].update_one({"_id": doc["_id"]}, {"$set": {"dispatched": True}})
        else:
            events.append(event)
    return events


def endpoints_of(db: Database[Doc], owner: str) -> list[WebhookEndpoint]:
    found = (_read(WebhookEndpoint, d) for d in db[WEBHOOKS_COLLECTION].find({"owner": owner}))
    return [e for e in found if e is not None]


def fan_out(
    db: Database[Doc], event: JobEvent, endpoints: list[WebhookEndpoint], now: datetime
) -> int:
    """One pending delivery per endpoint of the owner (`endpoints`, from `endpoints_of`) that
    wants the event, then the event is dispatched. A crash in between repeats the inserts,
    which change nothing the second time."""
    made = 0
    for endpoint in endpoints:
        if not endpoint.wants(event.type):
            continue
        delivery = new_delivery(event.id, endpoint.id, event.owner, now)
        query, insert = delivery_insert(delivery)
        try:
            result = db[DELIVERIES_COLLECTION].update_one(query, insert, upsert=True)
            made += result.upserted_id is not None
        except DuplicateKeyError:
            pass  # another replica's upsert of the same delivery won the race
    db[EVENTS_COLLECTION].update_one({"_id": event.id}, {"$set": {"dispatched": True}})
    return made


def claim(
    db: Database[Doc], replica: str, now: datetime, seconds: float, skip: set[str]
) -> Delivery | None:
    """The most overdue pending delivery, now this replica's for `seconds`; endpoints in `skip`
    (at their concurrency limit here) are passed over.

    Not one find-and-modify: FerretDB runs it as a read then a write, and two replicas were
    measured sending the same delivery (tests/integration/dispatcher/test_crash.py). A claim is
    won by inserting `<delivery id>:<claim number>` into `delivery_claims`; a unique `_id` is
    the one write every MongoDB-protocol server makes atomic, so exactly one replica wins each
    claim number, and the winner then moves the delivery's number on. After a crash the claim
    runs out and the next number is free to win.
    """
    query: Doc = {
        "state": DeliveryState.PENDING.value,
        "next_attempt_at": {"$lte": now},
        "$or": [{"claimed_until": None}, {"claimed_until": {"$lte": now}}],
    }
    if skip:
        query["webhook_id"] = {"$nin": sorted(skip)}
    # A few candidates: replicas racing for the first one move on to the next.
    candidates = db[DELIVERIES_COLLECTION].find(query).sort("next_attempt_at", ASCENDING).limit(8)
    for doc in candidates:
        number = int(doc.get("claims", 0))
        try:
            db[CLAIMS_COLLECTION].insert_one(
                {"_id": f"{doc['_id']}:{number}", "by": replica, "at": now}
            )
        except DuplicateKeyError:
            _skip_orphan(db, doc["_id"], number, now - timedelta(seconds=seconds))
            continue  # another replica won this claim
        until = now + timedelta(seconds=seconds)
        db[DELIVERIES_COLLECTION].update_one(
            {"_id": doc["_id"]},
            {"$set": {"claimed_by": replica, "claimed_until": until, "claims": number + 1}},
        )
        delivery = _read(Delivery, {**doc, "claimed_by": replica, "claimed_until": until})
        if delivery is None:
            failed = {"state": DeliveryState.FAILED.value, "next_attempt_at": None}
            db[DELIVERIES_COLLECTION].update_one({"_id": doc["_id"]}, {"$set": failed})
            continue
        return delivery
    return None


def _skip_orphan(db: Database[Doc], delivery: str, number: int, expired: datetime) -> None:
    """A claim won by a replica that died before recording it on the delivery holds its number
    for ever; once it is older than a claim lasts, move the delivery on to the next number.
    Every replica that sees it writes the same value, and the next number is won once."""
    won = db[CLAIMS_COLLECTION].find_one({"_id": f"{delivery}:{number}"})
    if won is not None and won["at"] <= expired:
        db[DELIVERIES_COLLECTION].update_one(
            {"_id": delivery, "claims": {"$in": [number, None]}}, {"$set": {"claims": number + 1}}
        )


def event(db: Database[Doc], event_id: str) -> JobEvent | None:
    doc = db[EVENTS_COLLECTION].find_one({"_id": event_id})
    return None if doc is None else _read(JobEvent, doc)


def endpoint(db: Database[Doc], webhook_id: str) -> WebhookEndpoint | None:
    doc = db[WEBHOOKS_COLLECTION].find_one({"_id": webhook_id})
    return None if doc is None else _read(WebhookEndpoint, doc)


def record(
    db: Database[Doc],
    delivery: Delivery,
    replica: str,
    attempt: Attempt | None,
    state: DeliveryState,
    next_attempt_at: datetime | None,
) -> bool:
    """Store an attempt and the delivery's next state, releasing the claim; False when the
    claim had been lost (expired and taken by another replica), which then owns the outcome."""
    update: Doc = {
        "$set": {
            "state": state.value,
            "next_attempt_at": next_attempt_at,
            "claimed_by": None,
            "claimed_until": None,
        }
    }
    if attempt is not None:
        update["$push"] = {"attempts": attempt.model_dump(mode="python")}
    result = db[DELIVERIES_COLLECTION].update_one(
        {"_id": delivery.id, "claimed_by": replica}, update
    )
    return result.modified_count == 1


def count_failure(db: Database[Doc], webhook_id: str, failed: bool) -> int:
    """The endpoint's consecutive failures after this attempt (0 after a success)."""
    update: Doc = {"$inc": {"failure_streak": 1}} if failed else {"$set": {"failure_streak": 0}}
    doc = db[WEBHOOKS_COLLECTION].find_one_and_update(
        {"_id": webhook_id}, update, return_document=ReturnDocument.AFTER
    )
    return 0 if doc is None else int(doc.get("failure_streak", 0))


def disable(db: Database[Doc], webhook_id: str, reason: str, now: datetime) -> JobEvent | None:
    """Log `webhook.disabled` to the owner, switch the endpoint off and stop its pending
    deliveries; None when it was already off.

    The event goes first, under an id numbered by the endpoint's disables: a crash before the
    switch leaves an enabled endpoint, whose next failure disables it again and writes the same
    event id (one event); the other order could lose the event for good. Replicas racing to
    disable it write the same id too.
    """
    doc = db[WEBHOOKS_COLLECTION].find_one({"_id": webhook_id, "enabled": True})
    if doc is None:
        return None
    number = int(doc.get("disabled_count", 0)) + 1
    disabled = JobEvent(
        id=f"evt_webhook_{webhook_id}_{number}",
        type=EventType.WEBHOOK_DISABLED,
        job_id=None,
        owner=str(doc["owner"]),
        time=now,
        data={"webhookId": webhook_id, "reason": reason},
    )
    query, update = outbox_insert(disabled)
    db[EVENTS_COLLECTION].update_one(query, update, upsert=True)
    db[WEBHOOKS_COLLECTION].update_one(
        {"_id": webhook_id, "enabled": True},
        {
            "$set": {
                "enabled": False,
                "disabled_reason": reason,
                "disabled_count": number,
                "updated_at": now,
            }
        },
    )
    db[DELIVERIES_COLLECTION].update_many(
        {"webhook_id": webhook_id, "state": DeliveryState.PENDING.value},
        {"$set": {"state": DeliveryState.DISABLED.value, "next_attempt_at": None}},
    )
    return disabled


def oldest_due(db: Database[Doc], now: datetime) -> datetime | None:
    """When the longest-waiting due delivery became due (the backlog's age)."""
    doc = db[DELIVERIES_COLLECTION].find_one(
        {"state": DeliveryState.PENDING.value, "next_attempt_at": {"$lte": now}},
        sort=[("next_attempt_at", ASCENDING)],
        projection={"next_attempt_at": 1},
    )
    return None if doc is None else doc["next_attempt_at"]
