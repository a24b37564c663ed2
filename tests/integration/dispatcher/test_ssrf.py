"""SSRF attempts through the real dispatcher process: refused before any connection, and each
refusal visible in the delivery's attempts with its reason."""

from __future__ import annotations

from collections.abc import Callable
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
from vidpipe.events import DELIVERIES_COLLECTION

pytestmark = pytest.mark.integration
Doc = dict[str, Any]


def test_internal_addresses_and_names_are_refused_without_the_allow_list(
    db: Database[Doc],
    receivers: Callable[..., Receiver],
    dispatchers: Callable[..., DispatcherProcess],
) -> None:
    # Fails if any of these reached the receiver listening on 127.0.0.1, or a refusal were
    # retried or recorded without its reason.
    rx = receivers([])
    port = rx.port
    urls = {
        f"http://127.0.0.1:{port}/ok/": "loopback",
        "http://169.254.169.254/latest/meta-data/": "metadata",
        f"http://localhost:{port}/ok/": "internal or local name",
        f"http://127.1:{port}/ok/": "resolves to 127.0.0.1",  # a name getaddrinfo maps to loopback
        f"http://[::ffff:127.0.0.1]:{port}/ok/": "loopback",
        f"http://[::1]:{port}/ok/": "loopback",
        f"http://user:pw@127.0.0.1:{port}/ok/": "user information",
        f"http://receiver.default.svc.cluster.local:{port}/ok/": "internal or local name",
    }
    endpoints = {add_endpoint(db, url).id: why for url, why in urls.items()}
    insert_event(db, job_life("j1")[0])
    dispatchers()  # no allow-list
    wait_until(
        lambda: db[DELIVERIES_COLLECTION].count_documents({"state": "refused"}) == len(urls),
        what="every delivery refused",
    )
    for delivery in db[DELIVERIES_COLLECTION].find():
        (attempt,) = delivery["attempts"]
        assert attempt.get("status_code") is None
        assert attempt["error"].startswith("refused: ")
        assert endpoints[delivery["webhook_id"]] in attempt["error"]
    assert rx.records() == []


def test_a_redirect_is_a_failed_attempt_never_followed(
    db: Database[Doc],
    receiving: Receiving,
    dispatchers: Callable[..., DispatcherProcess],
) -> None:
    # Fails if the dispatcher followed a 302 (the receiver would record a request to /stolen)
    # or counted it as delivered.
    _, rx = receiving("/redirect/")
    insert_event(db, job_life("j1")[0])
    dispatchers(ALLOWED_HOSTS="127.0.0.1/32", RETRY_SCHEDULE_SECONDS="[0.2, 0.2]")
    wait_until(
        lambda: db[DELIVERIES_COLLECTION].count_documents({"state": "failed"}) == 1,
        what="the delivery failed after its schedule",
    )
    delivery = db[DELIVERIES_COLLECTION].find_one()
    assert delivery is not None
    assert len(delivery["attempts"]) == 3
    for attempt in delivery["attempts"]:
        assert attempt["status_code"] == 302
        assert attempt["error"] == f"redirect to http://127.0.0.1:{rx.port}/stolen not followed"
    paths = [r["path"] for r in rx.records()]
    assert paths == ["/redirect/"] * 3
