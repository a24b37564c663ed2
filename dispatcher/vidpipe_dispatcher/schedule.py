"""When to try a delivery again, and what an answer means: pure functions of the attempt.

The schedule is the Standard Webhooks specification's example: after the immediate first try,
retries 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after the previous failure (27 h 35 min in
all), each stretched or shrunk by a random jitter so that endpoints failing together do not get
their retries back together. `Retry-After` (seconds or an HTTP date) on a slow-down answer is a
floor for the next try, capped so that a receiver cannot park a delivery for ever.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Final

from vidpipe.events import DeliveryState

# Seconds before retry n (n = 1, 2, ...), counted from the failure before it.
SPEC_SCHEDULE: Final = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
SLOW_DOWN_STATUSES: Final = frozenset({429, 502, 503, 504})


class Outcome(StrEnum):
    DELIVERED = "delivered"  # 2xx
    GONE = "gone"  # 410: the receiver asks us to stop for good
    SLOW_DOWN = "slow_down"  # 429/502/503/504: overloaded, honour Retry-After
    RETRY = "retry"  # any other answer, a redirect, a timeout, a connection error


def classify(status: int | None) -> Outcome:
    """What an HTTP answer (None: no answer at all) means for the delivery."""
    if status is not None and 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 410:
        return Outcome.GONE
    if status in SLOW_DOWN_STATUSES:
        return Outcome.SLOW_DOWN
    return Outcome.RETRY


def parse_retry_after(value: str | None, now: datetime, cap: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), at most
    `cap`; None when absent or unreadable (then the schedule alone decides)."""
    if value is None:
        return None
    text = value.strip()
    # ASCII digits only: str.isdigit() also accepts "²" and other digits float() refuses, and a
    # receiver's header must never make the attempt fail before it is recorded.
    if text.isascii() and text.isdigit():
        return min(float(text), cap)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; parsedate gives naive for "-0000"
        return None
    return min(max((when - now).total_seconds(), 0.0), cap)


def retry_delay(
    retry: int, schedule: tuple[float, ...], jitter: float, rng: random.Random
) -> float | None:
    """Seconds before retry number `retry` (1 = the first retry), jittered by +-`jitter`
    (a fraction); None once the schedule is spent."""
    if retry < 1 or retry > len(schedule):
        return None
    return schedule[retry - 1] * rng.uniform(1.0 - jitter, 1.0 + jitter)


@dataclass(frozen=True)
class Decision:
    state: DeliveryState
    next_attempt_at: datetime | None = None
    # Set when the endpoint must be switched off, with the reason recorded on it.
    disable_endpoint: str | None = None


@dataclass(frozen=True)
class Policy:
    schedule: tuple[float, ...] = SPEC_SCHEDULE
    jitter: float = 0.2
    retry_after_cap: float = 3600.0
    failure_streak_limit: int = 100


def decide(
    outcome: Outcome,
    *,
    attempts_made: int,
    failure_streak: int,
    retry_after: float | None,
    now: datetime,
    policy: Policy,
    rng: random.Random,
) -> Decision:
    """The delivery's next state after an attempt.

    `attempts_made` counts this one; `failure_streak` is the endpoint's consecutive failures
    including this one (0 after a success).
    """
    if outcome is Outcome.DELIVERED:
        return Decision(DeliveryState.SUCCEEDED)
    if outcome is Outcome.GONE:
        return Decision(DeliveryState.DISABLED, disable_endpoint="the endpoint answered 410 Gone")
    if failure_streak >= policy.failure_streak_limit:
        reason = f"{failure_streak} failed attempts in a row"
        return Decision(DeliveryState.DISABLED, disable_endpoint=reason)
    delay = retry_delay(attempts_made, policy.schedule, policy.jitter, rng)
    if delay is None:
        return Decision(DeliveryState.FAILED)
    if outcome is Outcome.SLOW_DOWN and retry_after is not None:
        delay = max(delay, retry_after)  # never before the receiver said it is ready
    return Decision(DeliveryState.PENDING, next_attempt_at=now + timedelta(seconds=delay))
