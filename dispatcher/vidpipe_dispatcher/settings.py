"""Dispatcher settings: one typed class read from `VIDPIPE_DISPATCHER_*` environment variables.

The MongoDB URL and database are the shared `VIDPIPE_MONGO_*` (vidpipe.settings). docs/webhooks.md
lists every setting; tests build instances directly or set the variables of a real process.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from vidpipe.settings import MongoSettings
from vidpipe.webhooks import AllowList
from vidpipe_dispatcher.schedule import SPEC_SCHEDULE, Policy


def _replica_id() -> str:
    # Unique per process: a restarted replica must not take its dead self's claims for its own
    # in-flight ones (they free themselves when claim_seconds run out).
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class DispatcherSettings(MongoSettings):
    model_config = SettingsConfigDict(env_prefix="VIDPIPE_DISPATCHER_", frozen=True, extra="ignore")

    # Seconds before each retry, after the immediate first attempt (Standard Webhooks' example).
    retry_schedule_seconds: tuple[float, ...] = Field(default=SPEC_SCHEDULE, min_length=1)
    # Each retry delay is multiplied by a random factor in [1 - jitter, 1 + jitter].
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    # A receiver's Retry-After is honoured up to this long.
    retry_after_max_seconds: float = Field(default=3600.0, gt=0)
    # Consecutive failed attempts (any delivery) after which an endpoint is disabled.
    failure_streak_limit: int = Field(default=100, ge=1)
    # One attempt, connection to the last byte read.
    timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    # Receivers that may be internal (in-cluster services), comma-separated as the API's
    # webhook_allowed_hosts: exact host names, `.suffix`es, IPs or CIDRs (for the addresses a
    # name resolves to). Empty: public addresses only.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # A PEM file of the CAs that HTTPS receivers' certificates must chain to, instead of the
    # system's (receivers with a private CA); None: the system's.
    ca_file: str | None = None
    # Attempts in flight in this replica, and to one endpoint.
    max_in_flight: int = Field(default=32, ge=1, le=1000)
    max_per_endpoint: int = Field(default=4, ge=1)
    # How long a claimed delivery stays this replica's; after a crash, others wait this long.
    claim_seconds: float = Field(default=60.0, gt=0)
    # How often an idle replica looks for new events and due deliveries.
    poll_seconds: float = Field(default=0.25, gt=0, le=10)
    # Events fanned out per round.
    fanout_batch: int = Field(default=200, ge=1, le=5000)
    mongo_timeout_ms: int = Field(default=5000, ge=100)
    # /metrics (Prometheus) and /healthz on one port; 0 disables it.
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    # /healthz fails once the loop has not finished a round for this long.
    liveness_stale_seconds: float = Field(default=60.0, gt=0)
    log_level: str = "info"
    replica_id: str = Field(default_factory=_replica_id)

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _claim_outlives_attempt(self) -> DispatcherSettings:
        # A claim that ends before the attempt does would let a second replica send it again.
        if self.claim_seconds <= self.timeout_seconds:
            raise ValueError("claim_seconds must be longer than timeout_seconds")
        return self

    @property
    def policy(self) -> Policy:
        return Policy(
            schedule=self.retry_schedule_seconds,
            jitter=self.retry_jitter,
            retry_after_cap=self.retry_after_max_seconds,
            failure_streak_limit=self.failure_streak_limit,
        )

    @property
    def allow(self) -> AllowList:
        return AllowList.parse(self.allowed_hosts)
