"""Job events, webhook endpoints and deliveries: the documents the API, the operator and the
webhook dispatcher share (MongoDB collections `events`, `webhooks`, `deliveries`).

The event log is also the outbox. Whoever records a state change in the job record writes the
event of that state in the same step, as an insert keyed by a deterministic id (job id and
sequence number): writing it twice (a retry, a replay after a crash, the API and the operator
both seeing a job submitted) leaves one event. The dispatcher fans each new event out to the
owner's endpoints (one delivery per endpoint) and delivers it.

Sequence numbers follow the job's life, so they are the same whoever computes them and events
sort into the order things happened (gaps are normal):

    job.submitted 1 · job.running 1000 x attempt · job.progress 1000 x attempt + percent
    · job.succeeded / job.failed / job.cancelled 1,000,000 · job.deleted 1,000,001
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vidpipe.phases import Phase

Doc = dict[str, Any]

EVENTS_COLLECTION = "events"
WEBHOOKS_COLLECTION = "webhooks"
DELIVERIES_COLLECTION = "deliveries"

# A client's metadata: a small free-form map attached at upload, echoed in the job and every
# event (the Standard Webhooks payload limit leaves room for it).
METADATA_MAX_KEYS = 16
METADATA_MAX_KEY_LENGTH = 64
METADATA_MAX_VALUE_LENGTH = 512


class EventType(StrEnum):
    SUBMITTED = "job.submitted"
    RUNNING = "job.running"
    PROGRESS = "job.progress"  # throttled; sent only to endpoints that ask for it
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"
    DELETED = "job.deleted"
    WEBHOOK_DISABLED = "webhook.disabled"  # an endpoint of the owner was switched off


# Event types an endpoint gets when it names none: every job transition, no progress.
DEFAULT_EVENT_TYPES = frozenset(EventType) - {EventType.PROGRESS}

TERMINAL_SEQUENCE = 1_000_000
_BY_PHASE = {
    Phase.SUCCEEDED: EventType.SUCCEEDED,
    Phase.FAILED: EventType.FAILED,
    Phase.CANCELLED: EventType.CANCELLED,
}


def sequence(event_type: EventType, *, attempt: int = 0, progress: int = 0) -> int:
    """The event's place in its job's life (see the module docstring)."""
    if event_type is EventType.SUBMITTED:
        return 1
    if event_type is EventType.RUNNING:
        return 1000 * max(1, attempt)
    if event_type is EventType.PROGRESS:
        return 1000 * max(1, attempt) + min(max(progress, 1), 99)
    if event_type is EventType.DELETED:
        return TERMINAL_SEQUENCE + 1
    if event_type is EventType.WEBHOOK_DISABLED:
        raise ValueError("webhook.disabled belongs to no job")
    return TERMINAL_SEQUENCE


def event_id(job_id: str, seq: int) -> str:
    """The event's id: the Standard Webhooks `webhook-id`, on which receivers deduplicate."""
    return f"evt_{job_id}_{seq}"


class JobEvent(BaseModel):
    """One event as stored (`_id` is `event_id`) and, minus `dispatched`, as delivered."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    id: str = Field(alias="_id")
    type: EventType
    job_id: str | None = None  # None only for webhook.disabled
    owner: str
    seq: int = 0
    time: datetime
    data: Doc = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    # The outbox flag: False until the dispatcher has created this event's deliveries.
    dispatched: bool = False

    def payload(self) -> Doc:
        """The JSON body sent to endpoints (Standard Webhooks: `type`, `timestamp`, `data`)."""
        return {
            "type": self.type.value,
            "timestamp": self.time.isoformat().replace("+00:00", "Z"),
            "data": {
                "id": self.id,
                "jobId": self.job_id,
                "owner": self.owner,
                "seq": self.seq,
                "metadata": self.metadata,
                **self.data,
            },
        }


def job_event(
    event_type: EventType,
    *,
    job_id: str,
    owner: str,
    at: datetime,
    metadata: dict[str, str] | None = None,
    attempt: int = 0,
    progress: int = 0,
    data: Doc | None = None,
) -> JobEvent:
    seq = sequence(event_type, attempt=attempt, progress=progress)
    return JobEvent(
        id=event_id(job_id, seq),
        type=event_type,
        job_id=job_id,
        owner=owner,
        seq=seq,
        time=at,
        data=data or {},
        metadata=metadata or {},
    )


def phase_event_type(phase: Phase) -> EventType:
    """The event that says a job reached `phase` (Pending: it was submitted)."""
    if phase is Phase.RUNNING:
        return EventType.RUNNING
    return _BY_PHASE.get(phase, EventType.SUBMITTED)


def outbox_insert(event: JobEvent) -> tuple[Doc, Doc]:
    """Filter and update of an idempotent insert (`upsert=True`): a second write of the same
    event changes nothing, so the event is in the log exactly once."""
    return {"_id": event.id}, {"$setOnInsert": event.model_dump(by_alias=True, mode="python")}


class WebhookSecret(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: str  # whsec_ + base64 of the key bytes (Standard Webhooks)
    created_at: datetime
    # Set on the old secret when it is rotated: both sign until then (receivers switch over).
    expires_at: datetime | None = None


class WebhookEndpoint(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    id: str = Field(alias="_id")  # wh_<hex>
    owner: str
    url: str
    event_types: list[EventType] = Field(default_factory=lambda: sorted(DEFAULT_EVENT_TYPES))
    enabled: bool = True
    description: str = ""
    secrets: list[WebhookSecret]
    created_at: datetime
    updated_at: datetime
    # Why the dispatcher switched it off (410 Gone, a long failure streak); None when enabled.
    disabled_reason: str | None = None
    failure_streak: int = 0

    def wants(self, event_type: EventType) -> bool:
        return self.enabled and (
            event_type is EventType.WEBHOOK_DISABLED or event_type in self.event_types
        )


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
    SUCCEEDED = "succeeded"  # a 2xx came back
    FAILED = "failed"  # every attempt of the schedule failed
    REFUSED = "refused"  # never sent: the URL resolves to a forbidden address (SSRF guard)
    DISABLED = "disabled"  # the endpoint was disabled before it could be delivered


class Attempt(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    status_code: int | None = None  # None: no HTTP answer (refused, timeout, connection error)
    latency_ms: float | None = None
    error: str | None = None  # never the response body, never a secret


class Delivery(BaseModel):
    """One event for one endpoint (`_id` = `<event id>.<webhook id>`)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    id: str = Field(alias="_id")
    event_id: str
    webhook_id: str
    owner: str
    state: DeliveryState = DeliveryState.PENDING
    attempts: list[Attempt] = Field(default_factory=list)
    next_attempt_at: datetime | None = None
    created_at: datetime
    # The dispatcher replica working on it and until when (a claim; expired claims are free).
    claimed_by: str | None = None
    claimed_until: datetime | None = None


def delivery_id(event: str, webhook: str) -> str:
    return f"{event}.{webhook}"
