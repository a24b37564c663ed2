"""What receivers tell the dispatcher: 410 switches an endpoint off (and the owner's log says
so), Retry-After delays the next try, and a rotated secret keeps deliveries verifiable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.database import Database

from tests.integration.dispatcher.conftest import (
    DispatcherProcess,
    Receiver,
    Receiving,
    add_endpoint,
    insert_event,
    job_life,
    wait_until,
)
from vidpipe.events import (
    DELIVERIES_COLLECTION,
    EVENTS_COLLECTION,
    WEBHOOKS_COLLECTION,
    EventType,
    WebhookSecret,
    job_event,
)
from vidpipe.webhooks import new_secret

pytestmark = pytest.mark.integration
ALLOW = {"ALLOWED_HOSTS": "127.0.0.1/32"}
Doc = dict[str, Any]


def test_410_disables_the_endpoint_and_logs_webhook_disabled(
    db: Database[Doc],
    receivers: Callable[..., Receiver],
    dispatchers: Callable[..., DispatcherProcess],
) -> None:
    # Fails if 410 were retried, the endpoint stayed enabled, its other deliveries kept going,
    # or the owner's event log (and its other endpoints) never heard about it.
    gone = add_endpoint(db, "")
    watcher = add_endpoint(db, "")
    rx = receivers([gone.secrets[0].value, watcher.secrets[0].value])
    db[WEBHOOKS_COLLECTION].update_one({"_id": gone.id}, {"$set": {"url": rx.url("/gone/a")}})
    db[WEBHOOKS_COLLECTION].update_one({"_id": watcher.id}, {"$set": {"url": rx.url("/ok/b")}})
    for event in job_life("j1"):
        insert_event(db, event)
    dispatchers(**ALLOW)

    def disabled() -> bool:
        doc = db[WEBHOOKS_COLLECTION].find_one({"_id": gone.id})
        return doc is not None and doc["enabled"] is False

    wait_until(disabled, what="the endpoint disabled")
    doc = db[WEBHOOKS_COLLECTION].find_one({"_id": gone.id})
    assert doc is not None and "410" in doc["disabled_reason"]
    # Logged before the switch: an endpoint that is off always has its event.
    assert db[EVENTS_COLLECTION].count_documents({"type": "webhook.disabled"}) == 1
    logged = db[EVENTS_COLLECTION].find_one({"type": "webhook.disabled"})
    assert logged is not None
    assert logged["_id"] == f"evt_webhook_{gone.id}_1"
    assert (logged["owner"], logged.get("job_id")) == ("alice", None)
    assert logged["data"]["webhookId"] == gone.id
    wait_until(
        lambda: any(r["body"]["type"] == "webhook.disabled" for r in rx.records()),
        what="webhook.disabled delivered to the owner's other endpoint",
    )
    wait_until(
        lambda: (
            db[DELIVERIES_COLLECTION].count_documents({"webhook_id": gone.id, "state": "pending"})
            == 0
        ),
        what="no pending delivery left for the disabled endpoint",
    )
    to_gone = [r for r in rx.records() if r["path"].startswith("/gone")]
    states = {d["state"] for d in db[DELIVERIES_COLLECTION].find({"webhook_id": gone.id})}
    assert states == {"disabled"}
    # At most the attempts already in flight when the first 410 came back (4 per endpoint).
    assert 1 <= len(to_gone) <= 4
    # A later event is not even fanned out to it.
    insert_event(db, job_event(EventType.DELETED, job_id="j1", owner="alice", at=datetime.now(UTC)))
    wait_until(lambda: any(r["body"]["type"] == "job.deleted" for r in rx.records()))
    assert db[DELIVERIES_COLLECTION].count_documents({"webhook_id": gone.id}) == 3


def test_retry_after_is_honoured(
    db: Database[Doc],
    receiving: Receiving,
    dispatchers: Callable[..., DispatcherProcess],
) -> None:
    # Fails if the next attempt after a 503 with `Retry-After: 2` came sooner than 2 s (the
    # schedule alone would retry after 0.2 s).
    _, rx = receiving("/busy/", retry_after="2")
    events = job_life("j1")[:2]
    for event in events:
        insert_event(db, event)
    dispatchers(**ALLOW)
    wait_until(lambda: rx.delivered_ids() == {e.id for e in events}, what="both delivered")
    wait_until(
        lambda: db[DELIVERIES_COLLECTION].count_documents({"state": "succeeded"}) == 2,
        what="both recorded as succeeded",
    )
    for event in events:
        tries = sorted((r for r in rx.records() if r["id"] == event.id), key=lambda r: r["at"])
        assert [r["status"] for r in tries] == [503, 200]
        assert tries[1]["at"] - tries[0]["at"] >= 2.0
        delivery = db[DELIVERIES_COLLECTION].find_one({"event_id": event.id})
        assert delivery is not None
        first, second = delivery["attempts"]
        assert first["status_code"] == 503
        assert (second["at"] - first["at"]).total_seconds() >= 2.0


def test_a_retry_after_with_a_non_ascii_digit_is_ignored_and_the_attempt_recorded(
    db: Database[Doc],
    receiving: Receiving,
    dispatchers: Callable[..., DispatcherProcess],
) -> None:
    # Fails if `Retry-After: ²` (a digit to str.isdigit, not to float) makes the attempt raise
    # before it is recorded: the 503 would be missing from the delivery's attempts, and the
    # delivery would be claimed again first every minute, ahead of every other tenant's.
    _, rx = receiving("/busy/", retry_after="\u00b2")
    (event,) = job_life("j1")[:1]
    insert_event(db, event)
    dispatchers(**ALLOW)
    wait_until(
        lambda: db[DELIVERIES_COLLECTION].count_documents({"state": "succeeded"}) == 1,
        what="the delivery recorded as succeeded",
    )
    delivery = db[DELIVERIES_COLLECTION].find_one({"event_id": event.id})
    assert delivery is not None
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 200]
    assert sorted(r["status"] for r in rx.records() if r["id"] == event.id) == [200, 503]


def test_rotation_signs_with_both_secrets_during_the_grace_period(
    db: Database[Doc],
    receivers: Callable[..., Receiver],
    dispatchers: Callable[..., DispatcherProcess],
) -> None:
    # Fails if a receiver holding only the new secret (or only the old one) could not verify
    # during the grace period, or the old secret still signed after it ended.
    now = datetime.now(UTC)
    old = WebhookSecret(
        value=new_secret(), created_at=now - timedelta(days=30), expires_at=now + timedelta(hours=1)
    )
    new = WebhookSecret(value=new_secret(), created_at=now)
    endpoint = add_endpoint(db, "", secrets_=[old, new])
    only_new = receivers([new.value])
    only_old = receivers([old.value])
    db[WEBHOOKS_COLLECTION].update_one(
        {"_id": endpoint.id}, {"$set": {"url": only_new.url("/ok/")}}
    )
    first = job_life("j1")[0]
    insert_event(db, first)
    dispatchers(**ALLOW)
    wait_until(lambda: only_new.delivered_ids() == {first.id}, what="verified with the new secret")
    (got,) = only_new.records()
    assert len(got["signatures"]) == 2
    # The same delivery to a receiver still on the old secret verifies too.
    db[WEBHOOKS_COLLECTION].update_one(
        {"_id": endpoint.id}, {"$set": {"url": only_old.url("/ok/")}}
    )
    second = job_life("j2")[0]
    insert_event(db, second)
    wait_until(lambda: only_old.delivered_ids() == {second.id}, what="verified with the old secret")
    # The grace period ends: only the new secret signs.
    expired = old.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    db[WEBHOOKS_COLLECTION].update_one(
        {"_id": endpoint.id},
        {
            "$set": {
                "url": only_new.url("/ok/"),
                "secrets": [expired.model_dump(), new.model_dump()],
            }
        },
    )
    third = job_life("j3")[0]
    insert_event(db, third)
    wait_until(
        lambda: third.id in only_new.delivered_ids(), what="delivered after the grace period"
    )
    last = next(r for r in only_new.records() if r["id"] == third.id)
    assert len(last["signatures"]) == 1


def test_a_long_failure_streak_disables_the_endpoint(
    db: Database[Doc],
    receiving: Receiving,
    dispatchers: Callable[..., DispatcherProcess],
) -> None:
    # Fails if an endpoint failing every attempt were retried without end, or were disabled
    # without a reason and a webhook.disabled event.
    endpoint, rx = receiving("/flaky/", fail_rate="1.0")
    for event in job_life("j1"):
        insert_event(db, event)
    dispatchers(**ALLOW, FAILURE_STREAK_LIMIT="5")
    wait_until(
        lambda: db[WEBHOOKS_COLLECTION].count_documents({"enabled": False}) == 1,
        what="the endpoint disabled",
    )
    wait_until(
        lambda: db[DELIVERIES_COLLECTION].count_documents({"state": "pending"}) == 0,
        what="nothing left pending",
    )
    assert db[EVENTS_COLLECTION].count_documents({"type": "webhook.disabled"}) == 1
    doc = db[WEBHOOKS_COLLECTION].find_one({"_id": endpoint.id})
    assert doc is not None and doc["enabled"] is False
    assert doc["disabled_reason"].endswith("failed attempts in a row")
    assert {d["state"] for d in db[DELIVERIES_COLLECTION].find()} == {"disabled"}
    # The limit plus what was in flight then; without the limit, 3 deliveries x 13 attempts.
    assert 5 <= len(rx.records()) <= 20
