"""Request and response bodies of /v1/webhooks and /v1/events, as the OpenAPI document shows them.

Served shapes are built from the stored documents (vidpipe.events) by the `of` constructors, so
a stored field reaches a client only when it is named here: a secret's value is in
`WebhookWithSecret` alone, the answer of a create or a rotation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from vidpipe.events import Attempt, Delivery, DeliveryState, EventType, JobEvent, WebhookEndpoint
from vidpipe_api.webhooks import URL_MAX_LENGTH

EXAMPLE_WEBHOOK = "wh_5f0c6e1d2b3a49788a1c2d3e"
EXAMPLE_EVENT = "evt_vj-3f2b1c0d9e8f4a7b6c5d4e3f2a1b0c9d_1000000"
DESCRIPTION_MAX = 256

URL: dict[str, Any] = dict(
    # A bound for the body; past URL_MAX_LENGTH the check answers `webhook_url_refused`.
    max_length=4 * URL_MAX_LENGTH,
    description="https (or http) URL of the receiver; internal addresses are refused",
    examples=["https://example.com/hooks/vidpipe"],
)
EVENT_TYPES: dict[str, Any] = dict(
    min_length=1,
    max_length=len(EventType),
    description="Event types to receive; default every job transition without job.progress. "
    "webhook.disabled is always sent",
    examples=[["job.succeeded", "job.failed"]],
)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(**URL)
    eventTypes: list[EventType] | None = Field(default=None, **EVENT_TYPES)
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    enabled: bool = True


class WebhookPatch(BaseModel):
    """Only the fields sent change; `enabled: true` also clears the disabled reason and the
    failure streak."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": True}]})

    url: str | None = Field(default=None, **URL)
    eventTypes: list[EventType] | None = Field(default=None, **EVENT_TYPES)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    enabled: bool | None = None


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    graceSeconds: int | None = Field(
        default=None,
        ge=0,
        description="How long the old secret keeps signing (both are sent); at most and by "
        "default the server's grace period (24 h unless configured)",
    )


class SecretOut(BaseModel):
    createdAt: datetime
    expiresAt: datetime | None = Field(
        default=None, description="When this rotated-out secret stops signing"
    )


class WebhookOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_WEBHOOK,
                    "url": "https://example.com/hooks/vidpipe",
                    "eventTypes": ["job.succeeded", "job.failed"],
                    "description": "orders service",
                    "enabled": True,
                    "disabledReason": None,
                    "failureStreak": 0,
                    "secrets": [{"createdAt": "2026-11-30T17:00:00Z", "expiresAt": None}],
                    "createdAt": "2026-11-30T17:00:00Z",
                    "updatedAt": "2026-11-30T17:00:00Z",
                }
            ]
        }
    )

    id: str
    url: str
    eventTypes: list[EventType]
    description: str
    enabled: bool
    disabledReason: str | None = Field(
        default=None,
        description="Why the dispatcher (410 Gone, a failure streak) or the owner switched it off",
    )
    failureStreak: int = 0
    secrets: list[SecretOut] = Field(description="The signing secrets' dates, never their values")
    createdAt: datetime
    updatedAt: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            eventTypes=endpoint.event_types,
            description=endpoint.description,
            enabled=endpoint.enabled,
            disabledReason=endpoint.disabled_reason,
            failureStreak=endpoint.failure_streak,
            secrets=[
                SecretOut(createdAt=s.created_at, expiresAt=s.expires_at) for s in endpoint.secrets
            ],
            createdAt=endpoint.created_at,
            updatedAt=endpoint.updated_at,
        )


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="The new signing secret (`whsec_` + base64 key, Standard Webhooks); shown "
        "only in this response, store it now",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )

    @classmethod
    def with_secret(cls, endpoint: WebhookEndpoint, secret: str) -> WebhookWithSecret:
        return cls(**WebhookOut.of(endpoint).model_dump(), secret=secret)


class WebhookList(BaseModel):
    items: list[WebhookOut]


class EventOut(BaseModel):
    """An event as endpoints receive it (`type`, `timestamp`, `data`), with its id and sequence
    number at the top for convenience."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_EVENT,
                    "seq": 1000000,
                    "type": "job.succeeded",
                    "timestamp": "2026-11-30T17:02:10.123Z",
                    "data": {
                        "id": EXAMPLE_EVENT,
                        "jobId": "vj-3f2b1c0d9e8f4a7b6c5d4e3f2a1b0c9d",
                        "owner": "acme",
                        "seq": 1000000,
                        "metadata": {"order": "1234"},
                        "phase": "Succeeded",
                    },
                }
            ]
        }
    )

    id: str
    seq: int
    type: EventType
    timestamp: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: JobEvent) -> EventOut:
        return cls(id=event.id, seq=event.seq, **event.payload())


class EventList(BaseModel):
    items: list[EventOut]
    nextCursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


class AttemptOut(BaseModel):
    at: datetime
    statusCode: int | None = Field(default=None, description="None: no HTTP answer")
    latencyMs: float | None = None
    error: str | None = None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(
            at=attempt.at,
            statusCode=attempt.status_code,
            latencyMs=attempt.latency_ms,
            error=attempt.error,
        )


class DeliveryOut(BaseModel):
    id: str
    eventId: str
    eventType: EventType | None = Field(default=None, description="None once the event expired")
    webhookId: str
    state: DeliveryState
    attempts: list[AttemptOut]
    nextAttemptAt: datetime | None = Field(default=None, description="When it is tried next")
    createdAt: datetime

    @classmethod
    def of(cls, delivery: Delivery, event_type: str | None) -> DeliveryOut:
        return cls(
            id=delivery.id,
            eventId=delivery.event_id,
            eventType=EventType(event_type) if event_type in set(EventType) else None,
            webhookId=delivery.webhook_id,
            state=delivery.state,
            attempts=[AttemptOut.of(a) for a in delivery.attempts],
            nextAttemptAt=delivery.next_attempt_at,
            createdAt=delivery.created_at,
        )


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    nextCursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


class ReplayIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"since": "2026-11-30T00:00:00Z", "types": None}]},
    )

    since: AwareDatetime = Field(
        description="RFC 3339 with a time zone; moved forward to the event retention"
    )
    until: AwareDatetime | None = Field(default=None, description="Default: now")
    types: list[EventType] | None = Field(
        default=None, min_length=1, description="Default: every type the endpoint receives"
    )


class ReplayOut(BaseModel):
    events: int = Field(description="Events of the window the endpoint receives (this request)")
    created: int = Field(description="Deliveries created (the events had none)")
    requeued: int = Field(description="Failed, refused or disabled deliveries queued again")
    since: datetime = Field(description="The window's start as applied (after the retention)")
    until: datetime
    nextSince: datetime | None = Field(
        default=None,
        description="Set when the window held more events than one replay queues: replay again "
        "from here (repeating it is harmless)",
    )
