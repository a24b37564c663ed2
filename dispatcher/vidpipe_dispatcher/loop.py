"""The dispatcher's loop: fan new events out to deliveries, claim the due ones, attempt them.

One thread polls MongoDB (there is no change stream on every MongoDB-protocol server) and hands
claimed deliveries to a bounded thread pool; a per-endpoint count keeps one slow receiver from
taking every worker. All state lives in MongoDB, so a replica killed mid-attempt loses nothing:
its claims run out and any replica attempts those deliveries again (receivers deduplicate on
`webhook-id`).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database
from pymongo.errors import PyMongoError

from vidpipe.events import Attempt, Delivery, DeliveryState, JobEvent, WebhookEndpoint
from vidpipe_dispatcher import deliver, signing, store
from vidpipe_dispatcher.metrics import ATTEMPT_SECONDS, BACKLOG_AGE, DELIVERIES, EVENT_TO_DELIVERY
from vidpipe_dispatcher.schedule import Outcome, classify, decide, parse_retry_after
from vidpipe_dispatcher.settings import DispatcherSettings

log = logging.getLogger("vidpipe_dispatcher")
_BACKLOG_EVERY = 1.0  # seconds between backlog-age queries


def body_of(event: JobEvent) -> bytes:
    return json.dumps(event.payload(), separators=(",", ":"), ensure_ascii=False).encode()


def _now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(self, settings: DispatcherSettings, db: Database[dict[str, Any]]) -> None:
        self.settings = settings
        self.db = db
        self._policy = settings.policy
        self._allow = settings.allow
        self._rng = random.Random()
        self._pool = ThreadPoolExecutor(settings.max_in_flight, thread_name_prefix="deliver")
        self._lock = threading.Lock()
        self._per_endpoint: Counter[str] = Counter()
        self._in_flight = 0
        self._last_round = time.monotonic()
        self._last_backlog = 0.0

    def alive(self) -> tuple[bool, float]:
        age = time.monotonic() - self._last_round
        return age < self.settings.liveness_stale_seconds, age

    def run(self, stop: threading.Event) -> None:
        store.ensure_indexes(self.db)
        try:
            while not stop.is_set():
                busy = False
                try:
                    busy = self.round()
                    self._last_round = time.monotonic()
                except PyMongoError as exc:
                    # An outage, not a stuck loop: alive, waiting for MongoDB to come back.
                    self._last_round = time.monotonic()
                    log.warning("MongoDB unavailable; retrying", extra={"error": str(exc)[:300]})
                except Exception:
                    # A bug: keep trying, but /healthz goes stale if it never clears.
                    log.exception("dispatch round failed")
                if not busy:
                    stop.wait(self.settings.poll_seconds)
        finally:
            self._pool.shutdown(wait=True)  # let attempts in flight record their outcome

    def round(self) -> bool:
        """One pass; True when it found work (then the next pass starts at once)."""
        now = _now()
        events = store.undispatched(self.db, self.settings.fanout_batch)
        owners: dict[str, list[WebhookEndpoint]] = {}  # one read per owner and round
        for event in events:
            if event.owner not in owners:
                owners[event.owner] = store.endpoints_of(self.db, event.owner)
            store.fan_out(self.db, event, owners[event.owner], now)
        claimed = 0
        while True:
            with self._lock:
                if self._in_flight >= self.settings.max_in_flight:
                    break
                limit = self.settings.max_per_endpoint
                skip = {w for w, n in self._per_endpoint.items() if n >= limit}
            delivery = store.claim(
                self.db, self.settings.replica_id, _now(), self.settings.claim_seconds, skip
            )
            if delivery is None:
                break
            with self._lock:
                self._in_flight += 1
                self._per_endpoint[delivery.webhook_id] += 1
            self._pool.submit(self._work, delivery)
            claimed += 1
        if time.monotonic() - self._last_backlog >= _BACKLOG_EVERY:
            self._last_backlog = time.monotonic()
            oldest = store.oldest_due(self.db, _now())
            BACKLOG_AGE.set(0 if oldest is None else max((_now() - oldest).total_seconds(), 0))
        return bool(events) or claimed > 0

    def _work(self, delivery: Delivery) -> None:
        try:
            self.attempt(delivery)
        except Exception:
            # The claim runs out and the delivery is attempted again; nothing is lost.
            log.exception("delivery attempt failed", extra={"delivery": delivery.id})
        finally:
            with self._lock:
                self._in_flight -= 1
                self._per_endpoint[delivery.webhook_id] -= 1
                if self._per_endpoint[delivery.webhook_id] <= 0:
                    del self._per_endpoint[delivery.webhook_id]

    def _record(
        self,
        delivery: Delivery,
        attempt: Attempt | None,
        state: DeliveryState,
        next_at: datetime | None = None,
    ) -> None:
        store.record(self.db, delivery, self.settings.replica_id, attempt, state, next_at)

    def attempt(self, delivery: Delivery) -> None:
        """Attempt one claimed delivery and store what happened."""
        now = _now()
        event = store.event(self.db, delivery.event_id)
        endpoint = store.endpoint(self.db, delivery.webhook_id)
        if event is None or endpoint is None or not endpoint.enabled:
            # Deleted endpoint or event, or a disabled endpoint (also on a manual retry).
            DELIVERIES.labels("disabled").inc()
            self._record(delivery, None, DeliveryState.DISABLED)
            return
        body = body_of(event)
        try:
            live = signing.signing_secrets(endpoint.secrets, now)
            headers = signing.headers(event.id, int(now.timestamp()), body, live)
        except ValueError:  # no live secret, or one that is not base64
            failed = Attempt(at=now, error="the endpoint has no usable secret")
            DELIVERIES.labels("failed").inc()
            self._record(delivery, failed, DeliveryState.FAILED)
            return
        result = deliver.attempt(
            endpoint.url,
            body,
            headers,
            allow=self._allow,
            timeout=self.settings.timeout_seconds,
            ca_file=self.settings.ca_file,
        )
        latency_ms = None if result.latency_s is None else round(result.latency_s * 1000, 1)
        done = Attempt(at=now, status_code=result.status, latency_ms=latency_ms, error=result.error)
        fields = {"delivery": delivery.id, "webhook": endpoint.id, "status": result.status}
        if result.refused:
            DELIVERIES.labels("refused").inc()
            log.warning("delivery refused", extra={**fields, "error": result.error})
            self._record(delivery, done, DeliveryState.REFUSED)
            return
        if result.status is not None and result.latency_s is not None:
            ATTEMPT_SECONDS.observe(result.latency_s)
        outcome = classify(result.status)
        streak = store.count_failure(self.db, endpoint.id, outcome is not Outcome.DELIVERED)
        decision = decide(
            outcome,
            attempts_made=len(delivery.attempts) + 1,
            failure_streak=streak,
            retry_after=parse_retry_after(result.retry_after, now, self._policy.retry_after_cap),
            now=_now(),
            policy=self._policy,
            rng=self._rng,
        )
        self._record(delivery, done, decision.state, decision.next_attempt_at)
        if decision.state is DeliveryState.SUCCEEDED:
            EVENT_TO_DELIVERY.observe(max((_now() - event.time).total_seconds(), 0))
        label = outcome.value if decision.state is DeliveryState.PENDING else decision.state.value
        DELIVERIES.labels(label).inc()
        log.info("delivery attempt", extra={**fields, "outcome": label, "ms": latency_ms})
        if decision.disable_endpoint:
            disabled = store.disable(self.db, endpoint.id, decision.disable_endpoint, _now())
            if disabled is not None:
                log.warning(
                    "endpoint disabled",
                    extra={"webhook": endpoint.id, "reason": decision.disable_endpoint},
                )
