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

from vidpipe.errors import BAD_INPUT_CODES, ErrorCode
from vidpipe.phases import Phase
from vidpipe.record import JobRecord, storable_metadata

Doc = dict[str, Any]

EVENTS_COLLECTION = "events"
WEBHOOKS_COLLECTION = "webhooks"
DELIVERIES_COLLECTION = "deliveries"


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
    fields = event.model_dump(by_alias=True, exclude={"id"})  # the upsert takes _id from the filter
    return {"_id": event.id}, {"$setOnInsert": fields}


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


# Submitting the same input again cannot succeed: the input is bad or the cluster refused it.
_FINAL_CODES = BAD_INPUT_CODES | {ErrorCode.JOB_REJECTED}


def _error_data(error: Doc | None) -> Doc | None:
    """The error of a failed job, with whether submitting the same input again may succeed."""
    if not error:
        return None
    code = str(error.get("code") or "")
    return {"code": code, "message": error.get("message"), "retryable": code not in _FINAL_CODES}


def status_event(spec: Doc, status: Doc, at: datetime, *, facts: Doc | None = None) -> JobEvent:
    """The event of the state a VideoJob `status` records (the operator writes it with every
    mirror of that status; the id makes the repeats one event). `facts`: what the processor's
    manifest says about the outputs (durationSeconds, renditions), for job.succeeded."""
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    event_type = phase_event_type(phase)
    attempts = int(status.get("attempts") or 0)
    data: Doc = {"phase": phase.value, "attempts": attempts}
    if phase is Phase.RUNNING and status.get("startedAt"):
        data["startedAt"] = status["startedAt"]
    if phase.terminal:
        data["finishedAt"] = status.get("finishedAt")
    if phase is Phase.SUCCEEDED:
        data["outputs"] = list(status.get("outputs") or [])
        if facts:
            data["media"] = facts
    error = _error_data(status.get("error"))
    if error is not None and phase is not Phase.SUCCEEDED:
        data["error"] = error
    return _spec_event(spec, event_type, at, attempt=attempts, data=data)


def status_events(
    spec: Doc, status: Doc, at: datetime, *, facts: Doc | None = None
) -> list[JobEvent]:
    """What the operator logs with a mirror of `status`: its state's event, preceded, for a job
    that ran and ended, by the job.running of its last attempt. A Job can start and finish while
    no operator watches (a restart, a short job between two events): the status then goes
    straight to its end, and a receiver waiting for job.running must still see it. Repeats are
    one event each (deterministic ids)."""
    last = status_event(spec, status, at, facts=facts)
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    started = status.get("startedAt")
    if not (phase.terminal and started):
        return [last]
    attempts = max(1, int(status.get("attempts") or 0))
    ran = {"phase": Phase.RUNNING.value, "startedAt": started}
    try:  # the event's time is when it ran, if the status says so readably
        ran_at = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    except ValueError:
        ran_at = at
    running = status_event(spec, {**ran, "attempts": attempts}, ran_at)
    return [running, last]


def record_event(record: JobRecord, event_type: EventType, at: datetime) -> JobEvent:
    """An event the API records from its job record: job.submitted when it submits the job,
    job.failed / job.cancelled for a job that never reached the cluster, job.deleted."""
    data: Doc = {"phase": record.phase.value, "attempts": record.attempts}
    if event_type is EventType.SUBMITTED:
        data |= {"filename": record.filename, "sizeBytes": record.size_bytes, "media": record.media}
    error = _error_data(record.error.model_dump() if record.error else None)
    if error is not None and event_type is EventType.FAILED:
        data["error"] = error
    return job_event(
        event_type,
        job_id=record.id,
        owner=record.owner,
        at=at,
        metadata=record.metadata,
        attempt=record.attempts,
        data=data,
    )


def progress_event(spec: Doc, attempt: int, progress: int, at: datetime) -> JobEvent | None:
    """job.progress once per tenth reached (10 %, 20 %, ... 90 %; reports skip values, so
    the tenth is the one `progress` is in): at most nine per attempt, so a receiver sees
    movement without a request per percent. None below 10 % and at 100 % (job.succeeded says
    that)."""
    tenth = progress // 10 * 10
    if tenth < 10 or progress >= 100:
        return None
    data = {"phase": Phase.RUNNING.value, "progress": progress, "attempts": max(1, attempt)}
    return _spec_event(spec, EventType.PROGRESS, at, attempt=attempt, progress=tenth, data=data)


def _spec_event(
    spec: Doc, event_type: EventType, at: datetime, *, attempt: int, data: Doc, progress: int = 0
) -> JobEvent:
    """An event of the job a VideoJob `spec` describes (id, owner and metadata from it)."""
    return job_event(
        event_type,
        job_id=str(spec["jobId"]),
        owner=str(spec.get("owner") or ""),
        at=at,
        metadata=storable_metadata(spec.get("userMetadata")),
        attempt=attempt,
        progress=progress,
        data=data,
    )
