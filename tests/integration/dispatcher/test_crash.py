"""kill -9 of the dispatcher in the middle of a burst: nothing is lost, because every fact
(which events are fanned out, which deliveries are claimed, by whom and until when) is in
MongoDB, and a dead replica's claims run out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.database import Database

from tests.integration.dispatcher.conftest import (
    DispatcherProcess,
    Receiving,
    insert_event,
    wait_until,
)
from vidpipe.events import DELIVERIES_COLLECTION, EventType, job_event
from vidpipe.webhooks import delivery_insert, new_delivery
from vidpipe_dispatcher.store import CLAIMS_COLLECTION

pytestmark = pytest.mark.integration
Doc = dict[str, Any]


def test_every_event_of_a_burst_is_delivered_after_a_kill_9(
    db: Database[Doc],
    receiving: Receiving,
    dispatchers: Callable[..., DispatcherProcess],
) -> None:
    # Fails if a kill -9 mid-burst lost any of 60 events (claims held by the dead process
    # never freed, an event marked dispatched without its deliveries, an attempt in flight
    # forgotten), or if two replicas at once sent the same delivery twice outside a crash.
    _, rx = receiving("/slow/", delay="0.1")
    first = dispatchers(ALLOWED_HOSTS="127.0.0.1/32", MAX_PER_ENDPOINT="2")
    t0 = datetime.now(UTC)
    ids = []
    for i in range(60):
        kind = EventType.SUBMITTED if i % 2 == 0 else EventType.RUNNING
        event = job_event(
            kind,
            job_id=f"j{i // 2:02}",
            owner="alice",
            at=t0 + timedelta(milliseconds=i),
            attempt=1,
        )
        insert_event(db, event)
        ids.append(event.id)
    wait_until(lambda: len(rx.delivered_ids()) >= 10, what="the burst under way")
    first.kill()
    assert len(rx.delivered_ids()) < 60, "the kill came before the end of the burst"
    # Two replicas from now on: they share the work without sending a delivery twice.
    dispatchers(ALLOWED_HOSTS="127.0.0.1/32", MAX_PER_ENDPOINT="2")
    dispatchers(ALLOWED_HOSTS="127.0.0.1/32", MAX_PER_ENDPOINT="2")
    wait_until(lambda: rx.delivered_ids() == set(ids), timeout=180, what="all 60 delivered")
    wait_until(
        lambda: db[DELIVERIES_COLLECTION].count_documents({"state": "succeeded"}) == 60,
        what="every delivery recorded as succeeded",
    )
    counts: dict[str, int] = {}
    for r in rx.records():
        counts[r["id"]] = counts.get(r["id"], 0) + 1
    # Only what was in flight at the kill may arrive twice (at most 2 per endpoint then).
    assert sum(n - 1 for n in counts.values()) <= 2


def test_a_claim_won_by_a_replica_that_died_before_recording_it_expires(
    db: Database[Doc],
    receiving: Receiving,
    dispatchers: Callable[..., DispatcherProcess],
) -> None:
    # Fails if a replica killed between winning a claim and writing it on the delivery left
    # that delivery unclaimable for ever (its claim number is taken; nobody moves it on).
    endpoint, rx = receiving("/ok/")
    now = datetime.now(UTC)
    event = job_event(EventType.SUBMITTED, job_id="j1", owner="alice", at=now)
    delivery = new_delivery(event.id, endpoint.id, "alice", now)
    query, update = delivery_insert(delivery)
    db[DELIVERIES_COLLECTION].update_one(query, update, upsert=True)
    # What the dead replica left: claim number 0 won a minute ago, never recorded.
    db[CLAIMS_COLLECTION].insert_one(
        {"_id": f"{delivery.id}:0", "by": "dead", "at": now - timedelta(minutes=1)}
    )
    insert_event(db, event)
    dispatchers(ALLOWED_HOSTS="127.0.0.1/32")
    wait_until(lambda: rx.delivered_ids() == {event.id}, what="the delivery sent after all")
