"""Webhook endpoints, the event log and deliveries through the real API (uvicorn), on FerretDB.

No cluster: these routes read and write MongoDB only, so the app runs with the Kubernetes API
down (`offline_api_factory`). Events are written the way the operator writes them
(`outbox_insert`); deliveries the way the dispatcher stores them (the `Delivery` model).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.database import Database as MongoDatabase

from tests.integration.api.conftest import Api
from vidpipe.events import (
    DEFAULT_EVENT_TYPES,
    Attempt,
    Delivery,
    DeliveryState,
    EventType,
    JobEvent,
    delivery_id,
    job_event,
    outbox_insert,
)
from vidpipe.webhooks import new_delivery
from vidpipe_api.db import now

pytestmark = pytest.mark.integration

Doc = dict[str, Any]
RECEIVER = "https://receiver.example.com/hooks"


@pytest.fixture(scope="module")
def api(offline_api_factory: Callable[..., Any]) -> Iterator[Api]:
    # Tests here register many endpoints for alice; the cap has its own test.
    with offline_api_factory(webhook_max_per_owner=100) as running:
        yield running


@pytest.fixture
def alice(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=api.headers("alice"), timeout=60) as c:
        yield c


@pytest.fixture
def bob(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers=api.headers("bob"), timeout=60) as c:
        yield c


_CLIENTS: dict[str, MongoClient[Doc]] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


def mongo(api: Api) -> MongoDatabase[Doc]:
    """The app's database, one client per app for the whole module."""
    name = api.settings.mongo_database
    if name not in _CLIENTS:
        _CLIENTS[name] = api.mongo()
    return _CLIENTS[name][name]


def create(client: httpx.Client, **body: Any) -> Doc:
    resp = client.post("/v1/webhooks", json={"url": RECEIVER, **body})
    assert resp.status_code == 201, resp.text
    created: Doc = resp.json()
    return created


def insert_events(api: Api, events: list[JobEvent]) -> None:
    """As the operator writes them: one idempotent upsert per event."""
    collection = mongo(api)["events"]
    for event in events:
        collection.update_one(*outbox_insert(event), upsert=True)


def event(owner: str, job: str, kind: EventType, at: datetime, attempt: int = 1) -> JobEvent:
    return job_event(
        kind, job_id=job, owner=owner, at=at, attempt=attempt, metadata={"order": job[-4:]}
    )


def fresh_job() -> str:
    import secrets

    return f"vj-{secrets.token_hex(16)}"


# -- endpoints ----------------------------------------------------------------------------------


def test_the_secret_is_shown_at_creation_and_never_read_back(api: Api, alice: httpx.Client) -> None:
    # Fails if the create answer lacks a Standard Webhooks secret, or a read answer (one, list)
    # carries the secret's value.
    created = create(alice, description="orders")
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    stored = mongo(api)["webhooks"].find_one({"_id": created["id"]})
    assert stored is not None and stored["secrets"][0]["value"] == secret
    one = alice.get(f"/v1/webhooks/{created['id']}")
    listed = alice.get("/v1/webhooks")
    assert one.status_code == listed.status_code == 200
    for text in (one.text, listed.text):
        assert secret not in text and secret[6:] not in text and "whsec_" not in text
    assert "secret" not in one.json()
    assert one.json()["secrets"] == [{"createdAt": created["createdAt"], "expiresAt": None}]
    assert created["id"] in [w["id"] for w in listed.json()["items"]]


def test_default_event_types_are_every_transition_without_progress(alice: httpx.Client) -> None:
    # Fails if an endpoint that names no types gets job.progress, or misses a transition.
    created = create(alice)
    assert set(created["eventTypes"]) == {t.value for t in DEFAULT_EVENT_TYPES}
    assert EventType.PROGRESS.value not in created["eventTypes"]
    picked = create(alice, eventTypes=["job.failed", "job.succeeded", "job.failed"])
    assert picked["eventTypes"] == ["job.failed", "job.succeeded"]
    unknown = alice.post("/v1/webhooks", json={"url": RECEIVER, "eventTypes": ["job.exploded"]})
    assert unknown.status_code == 422 and unknown.json()["code"] == "validation_failed"


def test_another_owners_endpoint_is_a_404_everywhere(
    api: Api, alice: httpx.Client, bob: httpx.Client
) -> None:
    # Fails if bob can see, change, delete, rotate, list deliveries of, retry or replay alice's
    # endpoint, or can tell it apart from one that does not exist.
    hook = create(alice)["id"]
    delivery = new_delivery(f"evt_{fresh_job()}_1", hook, "alice", now())
    mongo(api)["deliveries"].insert_one(delivery.model_dump(by_alias=True))
    calls = [
        ("GET", f"/v1/webhooks/{hook}", None),
        ("PATCH", f"/v1/webhooks/{hook}", {"enabled": False}),
        ("DELETE", f"/v1/webhooks/{hook}", None),
        ("POST", f"/v1/webhooks/{hook}/rotate-secret", None),
        ("GET", f"/v1/webhooks/{hook}/deliveries", None),
        ("POST", f"/v1/webhooks/{hook}/deliveries/{delivery.id}/retry", None),
        ("POST", f"/v1/webhooks/{hook}/replay", {"since": "2020-01-01T00:00:00Z"}),
    ]
    for method, path, body in calls:
        theirs = bob.request(method, path, json=body)
        missing = bob.request(method, path.replace(hook, "wh_000000000000000000000000"), json=body)
        assert theirs.status_code == 404, (method, path, theirs.text)
        assert theirs.json()["code"] == missing.json()["code"] == "webhook_not_found"
    assert hook not in [w["id"] for w in bob.get("/v1/webhooks").json()["items"]]
    after = alice.get(f"/v1/webhooks/{hook}").json()
    assert after["enabled"] is True and len(after["secrets"]) == 1
    assert mongo(api)["deliveries"].count_documents({"webhook_id": hook}) == 1


def test_patch_changes_fields_and_re_enabling_clears_the_dispatchers_verdict(
    api: Api, alice: httpx.Client
) -> None:
    # Fails if PATCH ignores a field, stores a refused URL, or re-enabling leaves the disabled
    # reason or the failure streak behind.
    hook = create(alice)["id"]
    changed = alice.patch(
        f"/v1/webhooks/{hook}",
        json={
            "url": "https://other.example.org/h",
            "eventTypes": ["job.progress"],
            "description": "x",
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["url"], body["eventTypes"], body["description"]) == (
        "https://other.example.org/h",
        ["job.progress"],
        "x",
    )
    refused = alice.patch(f"/v1/webhooks/{hook}", json={"url": "http://10.0.0.1/"})
    assert refused.status_code == 422 and refused.json()["code"] == "webhook_url_refused"
    assert alice.get(f"/v1/webhooks/{hook}").json()["url"] == "https://other.example.org/h"
    off = alice.patch(f"/v1/webhooks/{hook}", json={"enabled": False}).json()
    assert off["enabled"] is False and off["disabledReason"] == "disabled by the owner"
    # What the dispatcher writes when a receiver answers 410 Gone.
    mongo(api)["webhooks"].update_one(
        {"_id": hook}, {"$set": {"disabled_reason": "410 Gone", "failure_streak": 7}}
    )
    on = alice.patch(f"/v1/webhooks/{hook}", json={"enabled": True}).json()
    assert (on["enabled"], on["disabledReason"], on["failureStreak"]) == (True, None, 0)
    extra = alice.patch(f"/v1/webhooks/{hook}", json={"secrets": []})
    assert extra.status_code == 422


def test_delete_removes_the_endpoint_and_its_delivery_log(api: Api, alice: httpx.Client) -> None:
    # Fails if a deleted endpoint can still be read or leaves deliveries the dispatcher would
    # keep attempting, or if deleting touches another endpoint's deliveries.
    hook, other = create(alice)["id"], create(alice)["id"]
    db = mongo(api)
    for target in (hook, other):
        d = new_delivery(f"evt_{fresh_job()}_1", target, "alice", now())
        db["deliveries"].insert_one(d.model_dump(by_alias=True))
    assert alice.delete(f"/v1/webhooks/{hook}").status_code == 204
    assert alice.get(f"/v1/webhooks/{hook}").json()["code"] == "webhook_not_found"
    assert alice.delete(f"/v1/webhooks/{hook}").status_code == 404
    assert db["deliveries"].count_documents({"webhook_id": hook}) == 0
    assert db["deliveries"].count_documents({"webhook_id": other}) == 1


def test_the_per_owner_cap(offline_api_factory: Callable[..., Any]) -> None:
    # Fails if an owner can register more endpoints than the setting allows, or if one owner's
    # endpoints count against another's.
    with (
        offline_api_factory(webhook_max_per_owner=2) as api,
        httpx.Client(base_url=api.url, timeout=60) as http,
    ):
        for _ in range(2):
            ok = http.post("/v1/webhooks", json={"url": RECEIVER}, headers=api.headers())
            assert ok.status_code == 201
        over = http.post("/v1/webhooks", json={"url": RECEIVER}, headers=api.headers())
        assert over.status_code == 409
        assert over.json()["code"] == "webhook_limit_reached"
        assert over.json()["details"] == {"limit": 2}
        theirs = http.post("/v1/webhooks", json={"url": RECEIVER}, headers=api.headers("bob"))
        assert theirs.status_code == 201


def test_rotation_keeps_the_old_secret_signing_until_it_expires(
    api: Api, alice: httpx.Client
) -> None:
    # Fails if a rotation drops the old secret at once, lets it sign past the grace period
    # (default or asked), returns no new secret, or keeps expired secrets forever.
    created = create(alice)
    hook, first = created["id"], created["secret"]
    before = now()
    rotated = alice.post(f"/v1/webhooks/{hook}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"]
    assert second.startswith("whsec_") and second != first
    stored = mongo(api)["webhooks"].find_one({"_id": hook})
    assert stored is not None
    secrets = {s["value"]: s for s in stored["secrets"]}
    assert set(secrets) == {first, second}
    assert secrets[second]["expires_at"] is None
    grace = timedelta(seconds=api.settings.webhook_secret_grace_seconds)
    assert before + grace <= secrets[first]["expires_at"] <= now() + grace
    shown = alice.get(f"/v1/webhooks/{hook}").json()["secrets"]
    assert sorted(s["expiresAt"] is None for s in shown) == [False, True]

    # A shorter grace asked for applies to every secret still signing; one longer than the
    # server's is cut to it.
    third = alice.post(f"/v1/webhooks/{hook}/rotate-secret", json={"graceSeconds": 60}).json()
    stored = mongo(api)["webhooks"].find_one({"_id": hook})
    assert stored is not None
    expiries = {s["value"]: s["expires_at"] for s in stored["secrets"]}
    assert set(expiries) == {first, second, third["secret"]}
    assert expiries[third["secret"]] is None
    assert expiries[first] == expiries[second] <= now() + timedelta(seconds=60)
    # graceSeconds 0 ends the others now; the next rotation forgets them.
    alice.post(f"/v1/webhooks/{hook}/rotate-secret", json={"graceSeconds": 0})
    last = alice.post(f"/v1/webhooks/{hook}/rotate-secret", json={"graceSeconds": 10**9})
    assert last.status_code == 200
    stored = mongo(api)["webhooks"].find_one({"_id": hook})
    assert stored is not None
    assert len(stored["secrets"]) == 2
    kept = [s for s in stored["secrets"] if s["expires_at"] is not None]
    assert kept[0]["expires_at"] <= now() + grace


# -- URL checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/h",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/h",
        "http://[::1]:8080/h",
        "http://[::ffff:127.0.0.1]/h",
        "http://2130706433/h",  # 127.0.0.1 as one number, which resolvers accept
        "http://0x7f.1/h",
        "http://api.vidpipe.svc/h",
        "http://api.vidpipe.svc.cluster.local./h",
        "http://localhost:8080/h",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://kubernetes/h",
        "https://user:pass@receiver.example.com/h",
        "https://token@receiver.example.com/h",
        "ftp://receiver.example.com/h",
        "file:///etc/passwd",
        "https://receiver.example.com/h#frag",
        "https://receiver.example.com:99999/h",
        "https://" + "a" * 2040 + ".example.com/",
    ],
)
def test_internal_or_malformed_urls_are_refused(api: Api, alice: httpx.Client, url: str) -> None:
    # Fails if a URL that would reach an internal address, carry credentials or use another
    # scheme is stored, or the refusal has another code or echoes the URL back.
    before = mongo(api)["webhooks"].count_documents({})
    resp = alice.post("/v1/webhooks", json={"url": url})
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "webhook_url_refused"
    assert "pass" not in resp.text and "token@" not in resp.text
    assert mongo(api)["webhooks"].count_documents({}) == before


def test_the_allow_list_lets_listed_internal_receivers_through(
    offline_api_factory: Callable[..., Any],
) -> None:
    # Fails if the allow-list setting is ignored, or lets through more than it lists.
    allowed = "127.0.0.1/32,.svc.cluster.local,receiver"
    with (
        offline_api_factory(webhook_allowed_hosts=allowed) as api,
        httpx.Client(base_url=api.url, headers=api.headers(), timeout=60) as http,
    ):
        for url in (
            "http://127.0.0.1:9000/h",
            "http://hooks.apps.svc.cluster.local/h",
            "http://receiver:8080/h",
        ):
            assert http.post("/v1/webhooks", json={"url": url}).status_code == 201, url
        for url in ("http://127.0.0.2/h", "http://hooks.apps.svc/h", "http://[::1]/h"):
            resp = http.post("/v1/webhooks", json={"url": url})
            assert resp.json()["code"] == "webhook_url_refused", url


# -- the event log --------------------------------------------------------------------------------


def page_through(client: httpx.Client, params: Doc) -> list[Doc]:
    items: list[Doc] = []
    cursor = None
    for _ in range(50):
        resp = client.get("/v1/events", params={**params, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        items += resp.json()["items"]
        cursor = resp.json()["nextCursor"]
        if cursor is None:
            return items
    raise AssertionError("the cursor never ended")


def test_events_are_paginated_in_both_orders_and_scoped_to_the_owner(
    api: Api, alice: httpx.Client, bob: httpx.Client
) -> None:
    # Fails if a page repeats or skips an event (including events of the same millisecond), if
    # the two orders disagree, if an event written twice shows twice, or bob's events show.
    mongo(api)["events"].delete_many({})
    t0 = now() - timedelta(minutes=10)
    job_a, job_b = fresh_job(), fresh_job()
    mine = [
        event("alice", job_a, EventType.SUBMITTED, t0),
        event("alice", job_a, EventType.RUNNING, t0 + timedelta(seconds=1)),
        event("alice", job_b, EventType.SUBMITTED, t0 + timedelta(seconds=1)),  # same ms
        event("alice", job_b, EventType.RUNNING, t0 + timedelta(seconds=1)),  # same ms
        event("alice", job_a, EventType.SUCCEEDED, t0 + timedelta(seconds=2)),
        event("alice", job_b, EventType.FAILED, t0 + timedelta(seconds=3)),
        event("alice", job_b, EventType.DELETED, t0 + timedelta(seconds=4)),
    ]
    theirs = [
        event("bob", fresh_job(), EventType.SUBMITTED, t0 + timedelta(seconds=s)) for s in (1, 5)
    ]
    insert_events(api, mine + theirs)
    insert_events(api, mine[:3])  # the operator writing the same states again
    expected = [e.id for e in sorted(mine, key=lambda e: (e.time, e.id))]

    oldest = page_through(alice, {"order": "oldest", "limit": 2})
    newest = page_through(alice, {"limit": 3})
    assert [e["id"] for e in oldest] == expected
    assert [e["id"] for e in newest] == expected[::-1]
    assert [e["id"] for e in page_through(bob, {"limit": 1})] == [e.id for e in theirs[::-1]]


def test_events_filter_by_job_and_type_and_have_the_delivered_shape(
    api: Api, alice: httpx.Client
) -> None:
    # Fails if a filter lets other jobs' or other types' events through, or an event is served
    # in another shape than the one endpoints receive (payload plus id and seq).
    t0 = now() - timedelta(minutes=5)
    job_a, job_b = fresh_job(), fresh_job()
    events = [
        event("alice", job_a, EventType.SUBMITTED, t0),
        event("alice", job_a, EventType.RUNNING, t0 + timedelta(seconds=1)),
        event("alice", job_a, EventType.FAILED, t0 + timedelta(seconds=2)),
        event("alice", job_b, EventType.SUBMITTED, t0 + timedelta(seconds=3)),
        event("alice", job_b, EventType.SUCCEEDED, t0 + timedelta(seconds=4)),
    ]
    insert_events(api, events)
    only_a = page_through(alice, {"jobId": job_a, "order": "oldest"})
    assert [e["id"] for e in only_a] == [e.id for e in events[:3]]
    assert only_a[0] == {"id": events[0].id, "seq": events[0].seq, **events[0].payload()}
    assert only_a[2]["data"]["jobId"] == job_a and only_a[2]["data"]["metadata"] == {
        "order": job_a[-4:]
    }
    ends = page_through(alice, {"type": ["job.failed", "job.succeeded"], "order": "oldest"})
    ours = [e["id"] for e in ends if e["data"]["jobId"] in (job_a, job_b)]
    assert ours == [events[2].id, events[4].id]
    assert {e["type"] for e in ends} <= {"job.failed", "job.succeeded"}
    assert alice.get("/v1/events", params={"type": "job.nope"}).status_code == 422
    assert alice.get("/v1/events", params={"cursor": "!!"}).json()["code"] == "validation_failed"


# -- deliveries -----------------------------------------------------------------------------------


def store_delivery(api: Api, delivery: Delivery) -> None:
    mongo(api)["deliveries"].insert_one(delivery.model_dump(by_alias=True))


def test_the_delivery_log_lists_attempts_newest_first_with_a_state_filter(
    api: Api, alice: httpx.Client
) -> None:
    # Fails if the log shows another endpoint's deliveries, loses attempts (status, latency,
    # error) or the event's type, repeats or skips across pages, or ignores the state filter.
    hook, other = create(alice)["id"], create(alice)["id"]
    t0 = now() - timedelta(minutes=3)
    job = fresh_job()
    evs = [
        event("alice", job, t, t0 + timedelta(seconds=i))
        for i, t in enumerate([EventType.SUBMITTED, EventType.RUNNING, EventType.SUCCEEDED])
    ]
    insert_events(api, evs)
    failed = Delivery(
        id=delivery_id(evs[0].id, hook),
        event_id=evs[0].id,
        webhook_id=hook,
        owner="alice",
        state=DeliveryState.FAILED,
        attempts=[
            Attempt(at=t0, status_code=500, latency_ms=12.5),
            Attempt(at=t0 + timedelta(seconds=1), error="timed out after 15 s"),
        ],
        created_at=t0,
    )
    ok = failed.model_copy(
        update={
            "id": delivery_id(evs[1].id, hook),
            "event_id": evs[1].id,
            "state": DeliveryState.SUCCEEDED,
            "attempts": [Attempt(at=t0, status_code=204, latency_ms=3.0)],
            "created_at": t0 + timedelta(seconds=1),
        }
    )
    pending = new_delivery(evs[2].id, hook, "alice", t0 + timedelta(seconds=1))  # same ms as ok
    for d in (failed, ok, pending, new_delivery(evs[2].id, other, "alice", t0)):
        store_delivery(api, d)

    seen: list[Doc] = []
    cursor = None
    while True:
        params: Doc = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = alice.get(f"/v1/webhooks/{hook}/deliveries", params=params).json()
        seen += page["items"]
        if (cursor := page["nextCursor"]) is None:
            break
    assert [d["id"] for d in seen] == [*sorted([ok.id, pending.id], reverse=True), failed.id]
    by_id = {d["id"]: d for d in seen}
    assert by_id[failed.id]["attempts"] == [
        {
            "at": by_id[failed.id]["attempts"][0]["at"],
            "statusCode": 500,
            "latencyMs": 12.5,
            "error": None,
        },
        {
            "at": by_id[failed.id]["attempts"][1]["at"],
            "statusCode": None,
            "latencyMs": None,
            "error": "timed out after 15 s",
        },
    ]
    assert by_id[failed.id]["eventType"] == "job.submitted"
    assert by_id[pending.id]["nextAttemptAt"] is not None
    only = alice.get(
        f"/v1/webhooks/{hook}/deliveries", params={"state": ["failed", "succeeded"]}
    ).json()["items"]
    assert sorted(d["id"] for d in only) == sorted([failed.id, ok.id])


def test_retry_queues_a_finished_delivery_again_but_not_one_in_flight(
    api: Api, alice: httpx.Client
) -> None:
    # Fails if a manual retry leaves a failed delivery failed or not due, drops its attempts,
    # steals a live claim from a dispatcher, or finds deliveries of another endpoint.
    hook, other = create(alice)["id"], create(alice)["id"]
    past = now() - timedelta(hours=2)
    failed = new_delivery(f"evt_{fresh_job()}_1", hook, "alice", past).model_copy(
        update={
            "state": DeliveryState.FAILED,
            "next_attempt_at": None,
            "attempts": [Attempt(at=past, status_code=503)],
        }
    )
    claimed = new_delivery(f"evt_{fresh_job()}_1", hook, "alice", past).model_copy(
        update={"claimed_by": "dispatcher-0", "claimed_until": now() + timedelta(minutes=5)}
    )
    stale = claimed.model_copy(
        update={"id": delivery_id(f"evt_{fresh_job()}_1", hook), "claimed_until": past}
    )
    elsewhere = new_delivery(f"evt_{fresh_job()}_1", other, "alice", past)
    for d in (failed, claimed, stale, elsewhere):
        store_delivery(api, d)
    base = f"/v1/webhooks/{hook}/deliveries"

    before = now()
    resp = alice.post(f"{base}/{failed.id}/retry")
    assert resp.status_code == 202, resp.text
    doc = mongo(api)["deliveries"].find_one({"_id": failed.id})
    assert doc is not None and doc["state"] == "pending"
    assert before <= doc["next_attempt_at"] <= now()
    assert len(doc["attempts"]) == 1 and resp.json()["attempts"][0]["statusCode"] == 503

    busy = alice.post(f"{base}/{claimed.id}/retry")
    assert busy.status_code == 409 and busy.json()["code"] == "delivery_in_progress"
    doc = mongo(api)["deliveries"].find_one({"_id": claimed.id})
    assert doc is not None and doc["claimed_by"] == "dispatcher-0"
    assert alice.post(f"{base}/{stale.id}/retry").status_code == 202
    for missing in (elsewhere.id, "evt_nope.wh_nope"):
        gone = alice.post(f"{base}/{missing}/retry")
        assert gone.status_code == 404 and gone.json()["code"] == "delivery_not_found"
    alice.patch(f"/v1/webhooks/{hook}", json={"enabled": False})
    off = alice.post(f"{base}/{failed.id}/retry")
    assert off.status_code == 409 and off.json()["code"] == "webhook_disabled"


def test_replay_creates_each_delivery_once(api: Api, alice: httpx.Client) -> None:
    # Fails if a replay misses an event of the window the endpoint wants, sends one outside it,
    # of a type it does not want or of another owner, creates a delivery twice when run twice,
    # leaves a failed delivery failed, or reaches back past the event retention.
    hook = create(alice, eventTypes=["job.submitted", "job.succeeded"])["id"]
    t0 = now() - timedelta(hours=1)
    job = fresh_job()
    inside = [
        event("alice", job, EventType.SUBMITTED, t0 + timedelta(minutes=1)),
        event("alice", job, EventType.SUCCEEDED, t0 + timedelta(minutes=3)),
    ]
    noise = [
        event("alice", job, EventType.RUNNING, t0 + timedelta(minutes=2)),  # not wanted
        event("alice", fresh_job(), EventType.SUBMITTED, t0 - timedelta(minutes=1)),  # before
        event("bob", fresh_job(), EventType.SUBMITTED, t0 + timedelta(minutes=2)),  # not hers
    ]
    insert_events(api, inside + noise)
    window = {"since": t0.isoformat(), "until": (t0 + timedelta(minutes=10)).isoformat()}
    db = mongo(api)["deliveries"]

    first = alice.post(f"/v1/webhooks/{hook}/replay", json=window)
    assert first.status_code == 202, first.text
    assert (first.json()["events"], first.json()["created"], first.json()["requeued"]) == (2, 2, 0)
    made = {d["_id"]: d for d in db.find({"webhook_id": hook})}
    assert set(made) == {delivery_id(e.id, hook) for e in inside}
    assert {d["state"] for d in made.values()} == {"pending"}

    again = alice.post(f"/v1/webhooks/{hook}/replay", json=window).json()
    assert (again["created"], again["requeued"]) == (0, 0)
    assert db.count_documents({"webhook_id": hook}) == 2
    db.update_one({"_id": delivery_id(inside[0].id, hook)}, {"$set": {"state": "failed"}})
    third = alice.post(f"/v1/webhooks/{hook}/replay", json={**window, "types": ["job.submitted"]})
    assert (third.json()["events"], third.json()["created"], third.json()["requeued"]) == (1, 0, 1)
    assert db.find_one({"_id": delivery_id(inside[0].id, hook)})["state"] == "pending"  # type: ignore[index]

    ancient = alice.post(f"/v1/webhooks/{hook}/replay", json={"since": "2000-01-01T00:00:00Z"})
    applied = datetime.fromisoformat(ancient.json()["since"])
    retention = timedelta(days=api.settings.event_retention_days)
    assert now() - retention - timedelta(minutes=1) <= applied <= now() - retention
    backwards = alice.post(
        f"/v1/webhooks/{hook}/replay", json={"since": window["until"], "until": window["since"]}
    )
    assert backwards.status_code == 422
    naive = alice.post(f"/v1/webhooks/{hook}/replay", json={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422


def test_a_long_replay_says_where_to_continue(offline_api_factory: Callable[..., Any]) -> None:
    # Fails if one replay queues more events than the setting allows, or following `nextSince`
    # misses an event of the window.
    with (
        offline_api_factory(webhook_replay_max_events=3) as api,
        httpx.Client(base_url=api.url, headers=api.headers(), timeout=60) as http,
    ):
        hook = create(http)["id"]
        t0 = now() - timedelta(minutes=30)
        evs = [
            event("alice", fresh_job(), EventType.SUBMITTED, t0 + timedelta(seconds=i))
            for i in range(7)
        ]
        insert_events(api, evs)
        since: str | None = (t0 - timedelta(seconds=1)).isoformat()
        rounds = 0
        while since is not None:
            body = http.post(f"/v1/webhooks/{hook}/replay", json={"since": since}).json()
            assert body["events"] <= 3
            since = body["nextSince"]
            rounds += 1
        assert rounds == 3
        made = {d["event_id"] for d in mongo(api)["deliveries"].find({"webhook_id": hook})}
        assert made == {e.id for e in evs}


def test_openapi_documents_the_routes_and_hides_secrets_from_reads(api: Api) -> None:
    # Fails if a route is missing from the OpenAPI document or a read answer's schema carries a
    # secret field.
    spec = httpx.get(f"{api.url}/openapi.json", timeout=60).json()
    for path in (
        "/v1/webhooks",
        "/v1/webhooks/{webhook_id}",
        "/v1/webhooks/{webhook_id}/rotate-secret",
        "/v1/webhooks/{webhook_id}/deliveries",
        "/v1/webhooks/{webhook_id}/deliveries/{delivery}/retry",
        "/v1/webhooks/{webhook_id}/replay",
        "/v1/events",
    ):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert "secret" in schemas["WebhookWithSecret"]["properties"]
    assert "secret" not in schemas["WebhookOut"]["properties"]
    ok = spec["paths"]["/v1/webhooks/{webhook_id}"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/WebhookOut")
