"""The retry schedule, Retry-After and what each answer means, as pure functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from vidpipe.events import DeliveryState
from vidpipe_dispatcher.schedule import (
    SPEC_SCHEDULE,
    Outcome,
    Policy,
    classify,
    decide,
    parse_retry_after,
    retry_delay,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED), (204, Outcome.DELIVERED), (299, Outcome.DELIVERED),
        (410, Outcome.GONE), (429, Outcome.SLOW_DOWN), (502, Outcome.SLOW_DOWN),
        (503, Outcome.SLOW_DOWN), (504, Outcome.SLOW_DOWN), (500, Outcome.RETRY),
        (404, Outcome.RETRY), (301, Outcome.RETRY), (302, Outcome.RETRY), (400, Outcome.RETRY),
        (None, Outcome.RETRY),
    ],
)  # fmt: skip
def test_answers_are_classified_as_the_spec_says(status: int | None, outcome: Outcome) -> None:
    # Fails if a redirect counted as delivered, 410 as a plain failure, or an overload answer
    # lost its slow-down meaning.
    assert classify(status) is outcome


def test_the_schedule_is_the_spec_example_and_ends() -> None:
    # Fails if the schedule drifted from Standard Webhooks' example or never ended.
    assert SPEC_SCHEDULE == (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    assert sum(SPEC_SCHEDULE) == 27 * 3600 + 35 * 60 + 5
    rng = random.Random(1)
    assert retry_delay(len(SPEC_SCHEDULE) + 1, SPEC_SCHEDULE, 0.2, rng) is None
    assert retry_delay(0, SPEC_SCHEDULE, 0.2, rng) is None


def test_jitter_stays_within_its_bounds_and_varies() -> None:
    # Fails if jitter were absent (endpoints failing together retry together) or unbounded.
    rng = random.Random(7)
    delays = [retry_delay(3, SPEC_SCHEDULE, 0.2, rng) for _ in range(200)]
    assert all(d is not None and 1440 <= d <= 2160 for d in delays)
    assert len({round(d or 0) for d in delays}) > 50


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("999999", 3600.0), (None, None), ("soon", None),
     ("-5", None), ("1.5", None), ("\u00b2", None), ("\u0661\u0662", None)],
)  # fmt: skip
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    # Fails if delta-seconds were misread, uncapped, or garbage taken for a delay; or if a
    # non-ASCII digit ("²", Arabic-Indic "١٢") raises: the attempt would go unrecorded and be
    # claimed again first, every minute, ahead of every other tenant's deliveries.
    assert parse_retry_after(header, NOW, cap=3600) == seconds


def test_retry_after_http_date() -> None:
    # Fails if an HTTP date were ignored, taken as absolute seconds, or a past date gave a
    # negative delay.
    assert (
        parse_retry_after(format_datetime(NOW + timedelta(seconds=90), usegmt=True), NOW, 3600)
        == 90
    )
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), usegmt=True), NOW, 3600) == 0
    assert (
        parse_retry_after(format_datetime(NOW + timedelta(days=2), usegmt=True), NOW, 3600) == 3600
    )


Decided = tuple[DeliveryState, float | None, str | None]


def _decide(
    outcome: Outcome,
    attempts: int = 1,
    streak: int = 1,
    retry_after: float | None = None,
    policy: Policy | None = None,
) -> Decided:
    d = decide(
        outcome,
        attempts_made=attempts,
        failure_streak=streak,
        retry_after=retry_after,
        now=NOW,
        policy=policy or Policy(),
        rng=random.Random(3),
    )
    wait = None if d.next_attempt_at is None else (d.next_attempt_at - NOW).total_seconds()
    return d.state, wait, d.disable_endpoint


def test_success_ends_the_delivery() -> None:
    # Fails if a 2xx scheduled another attempt.
    assert _decide(Outcome.DELIVERED, streak=0) == (DeliveryState.SUCCEEDED, None, None)


def test_a_failure_waits_for_the_next_step_of_the_schedule() -> None:
    # Fails if retry n did not wait schedule[n-1] (+-jitter), or the last failure kept going.
    state, wait, _ = _decide(Outcome.RETRY, attempts=1)
    assert state is DeliveryState.PENDING and wait is not None and 4 <= wait <= 6
    state, wait, _ = _decide(Outcome.RETRY, attempts=4)
    assert wait is not None and 5760 <= wait <= 8640
    assert _decide(Outcome.RETRY, attempts=8)[0] is DeliveryState.FAILED


def test_gone_disables_the_endpoint() -> None:
    # Fails if 410 were retried instead of switching the endpoint off.
    state, wait, reason = _decide(Outcome.GONE)
    assert (state, wait) == (DeliveryState.DISABLED, None)
    assert reason is not None and "410" in reason


def test_retry_after_is_a_floor_never_shortened_by_jitter() -> None:
    # Fails if the next attempt could come before the receiver's Retry-After.
    for attempts in range(1, 5):
        state, wait, _ = _decide(Outcome.SLOW_DOWN, attempts=attempts, retry_after=1000)
        assert state is DeliveryState.PENDING and wait is not None and wait >= 1000
    # Without slow-down, Retry-After is not ours to honour: the schedule decides.
    assert (_decide(Outcome.RETRY, retry_after=1000)[1] or 0) < 10


def test_a_long_failure_streak_disables_the_endpoint() -> None:
    # Fails if an endpoint failing every attempt were retried for ever.
    policy = Policy(failure_streak_limit=10)
    assert _decide(Outcome.RETRY, streak=9, policy=policy)[0] is DeliveryState.PENDING
    state, _, reason = _decide(Outcome.SLOW_DOWN, streak=10, policy=policy)
    assert state is DeliveryState.DISABLED and reason == "10 failed attempts in a row"
