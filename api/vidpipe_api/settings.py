"""API configuration: one pydantic-settings class read from `VIDPIPE_API_*` environment variables.

The facts it shares with the operator and the processor (S3, MongoDB, media limits) come from
vidpipe.settings under their shared `VIDPIPE_*` names. Tests build `Settings(...)` directly and
hand it to `create_app`; the process uses `get_settings()`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from vidpipe.settings import MediaLimitSettings, MongoSettings, S3Settings

MiB = 1024 * 1024
# S3 requires every part but the last to be at least 5 MiB; 8 MiB matches boto3's default chunk.
MIN_PART_SIZE = 5 * MiB


class Settings(S3Settings, MongoSettings, MediaLimitSettings):
    model_config = SettingsConfigDict(env_prefix="VIDPIPE_API_", env_file=None, extra="ignore")

    # Object storage (bucket, endpoint, region and keys: S3Settings)
    s3_public_endpoint_url: Annotated[
        str | None,
        Field(description="Endpoint used in presigned URLs handed to clients, if it differs"),
    ] = None
    s3_connect_timeout_seconds: float = 3.0
    s3_read_timeout_seconds: float = 60.0
    s3_max_attempts: int = 2

    # MongoDB (URL and database: MongoSettings)
    mongo_timeout_ms: int = 3000

    # Kubernetes: a kubeconfig path, or in-cluster service account credentials when unset.
    kubeconfig: Path | None = None
    namespace: str = "vidpipe-jobs"
    kube_timeout_seconds: float = 5.0

    # Uploads
    max_upload_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * MiB
    part_size_bytes: Annotated[int, Field(ge=MIN_PART_SIZE)] = 8 * MiB
    # Parts uploaded concurrently per request; memory per upload is about (this + 1) parts.
    part_concurrency: Annotated[int, Field(ge=1, le=8)] = 4
    presign_ttl_seconds: Annotated[int, Field(ge=30, le=7 * 24 * 3600)] = 900
    upload_session_ttl_seconds: Annotated[int, Field(ge=60)] = 24 * 3600
    max_session_parts: Annotated[int, Field(ge=1, le=10_000)] = 10_000

    # Validation: the media limits and ffprobe's sandbox are MediaLimitSettings (shared with the
    # processor, which checks again).
    # ffprobe processes run at once; more requests wait, so a burst cannot fork-bomb the pod.
    probe_concurrency: Annotated[int, Field(ge=1)] = 4

    # `priority=high` outranks every other tenant's jobs (in Kueue mode it preempts them), so by
    # default only admin keys may ask for it; false lets every key (one trusted tenant).
    high_priority_admins_only: bool = True

    # Rate limits on job-creating requests; 0 disables that limit.
    rate_owner_per_minute: Annotated[int, Field(ge=0)] = 60
    rate_owner_per_day: Annotated[int, Field(ge=0)] = 2000
    rate_global_per_minute: Annotated[int, Field(ge=0)] = 600
    rate_global_per_day: Annotated[int, Field(ge=0)] = 50_000

    # -- Abuse limits (issue 11, item 6) ------------------------------------------------------
    # One client must not be able to exhaust the API's memory, slots or storage. docs/api.md
    # ("Abuse limits") gives the memory bound these defaults add up to.
    # Uploads streaming through this process at once (POST/PUT /v1/videos); past it: 429.
    max_concurrent_uploads: Annotated[int, Field(ge=1)] = 16
    # Of those, uploads one owner may stream through this process at once; past it: 429.
    max_concurrent_uploads_per_owner: Annotated[int, Field(ge=1)] = 4
    # Parts being sent to S3 at once across all uploads of this process (each holds a part).
    max_parts_in_flight: Annotated[int, Field(ge=1)] = 8
    # A request body that delivers no byte for this long is aborted (408 upload_timeout).
    upload_idle_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    # Wall-clock limit for receiving one streamed upload; slower clients use presigned sessions.
    upload_total_timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0
    # Every other body (the JSON of webhooks, presigned uploads, playback): FastAPI parses it
    # before any dependency runs, so before the API key is checked, and a parsed JSON body takes
    # many times its size in memory.
    max_request_body_bytes: Annotated[int, Field(ge=1024, le=64 * MiB)] = 1 * MiB
    # Non-file parts in a multipart form, and their bytes (values and part headers) together.
    form_max_fields: Annotated[int, Field(ge=1, le=1000)] = 16
    form_max_field_bytes: Annotated[int, Field(ge=1024, le=16 * MiB)] = 64 * 1024
    # Open (not completed, aborted or expired) presigned sessions per owner; past it: 429.
    max_open_sessions_per_owner: Annotated[int, Field(ge=1)] = 8
    # Background reaper of expired sessions, orphaned multipart uploads and sources without a
    # job record (0 disables it). It leaves anything younger than the grace period (plus the
    # upload time limit) alone, so it never races a request that is still storing or probing.
    reaper_interval_seconds: Annotated[float, Field(ge=0)] = 300.0
    reaper_grace_seconds: Annotated[float, Field(ge=0)] = 900.0
    # -- end of abuse limits ------------------------------------------------------------------

    # Background reconciler that submits VideoJobs the cluster refused (0 disables it).
    reconcile_interval_seconds: Annotated[float, Field(ge=0)] = 15.0
    reconcile_min_age_seconds: Annotated[float, Field(ge=0)] = 10.0

    # The replaced service's paths (`/api/video/...`, `/api/health/check`) for its old clients;
    # every one but health needs an API key like /v1, so on adds no capability (docs/api.md,
    # "Migrating from the replaced service"). Off removes the paths (404).
    compat_enabled: bool = True

    # -- Webhooks and the event log (issue 14) ------------------------------------------------
    # Endpoints one owner may register; each costs the dispatcher a delivery per event.
    webhook_max_per_owner: Annotated[int, Field(ge=1, le=1000)] = 10
    # Receivers that may be internal (in-cluster services): exact host names, `.suffix`es or
    # CIDRs, comma-separated. Empty: public addresses only. The dispatcher checks again after
    # DNS, with its own list.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = []
    # How long a rotated-out secret keeps signing (both are sent); a rotation may shorten it.
    webhook_secret_grace_seconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] = 24 * 3600
    # Events (and deliveries) older than this expire; a replay reaches back at most this far.
    event_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # Events one replay request queues; a longer window answers where to continue.
    webhook_replay_max_events: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    # -- end of webhooks ------------------------------------------------------------------------

    # -- Live job events (SSE, issue 15; vidpipe_api.streams) --------------------------------
    # Streams one API key may hold open on this process, and all keys together; past: 429.
    stream_max_per_key: Annotated[int, Field(ge=1, le=100)] = 4
    stream_max_total: Annotated[int, Field(ge=1)] = 200
    # A stream ends after this long (an `end` event); clients reconnect with Last-Event-ID.
    stream_max_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 300.0
    # One indexed query of at most `stream_poll_batch` jobs per stream per interval.
    stream_poll_seconds: Annotated[float, Field(gt=0)] = 1.0
    stream_poll_batch: Annotated[int, Field(ge=1, le=1000)] = 100
    # A comment line after this much silence keeps proxies from closing an idle stream.
    stream_heartbeat_seconds: Annotated[float, Field(gt=0)] = 15.0
    # How far each poll reaches behind the newest change seen: the writers' clock difference.
    stream_overlap_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    # -- end of live job events ---------------------------------------------------------------

    # -- Signed playback (issue 15; docs/api.md "Playback") -----------------------------------
    # HMAC key of playback tokens (at least 32 bytes; the chart generates one and keeps it).
    # Unset: a random key per process, so tokens die with the process and do not work across
    # replicas (fine for a laptop, logged as a warning).
    playback_signing_key: SecretStr | None = None
    # The key before a rotation: still verifies tokens (never signs) until they expire.
    playback_previous_signing_key: SecretStr | None = None
    # Token lifetime when the request names none, and the longest a request may ask for.
    playback_token_ttl_seconds: Annotated[int, Field(ge=60, le=30 * 24 * 3600)] = 3600
    playback_max_token_ttl_seconds: Annotated[int, Field(ge=60, le=365 * 24 * 3600)] = 7 * 24 * 3600
    # How long one process trusts what it read of a playback id (revoked or not, the job's
    # outputs): a revocation made through another replica takes effect within this bound.
    playback_state_cache_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    # Media (segments, poster, storyboard) go through the API ("proxy", Range supported) or as
    # presigned S3 URLs ("presign": the S3 endpoint must be reachable by players, with CORS
    # for browsers, and the URLs must outlive the longest watch: playback_presign_ttl_seconds).
    playback_media: Literal["proxy", "presign"] = "proxy"
    playback_presign_ttl_seconds: Annotated[int, Field(ge=30, le=7 * 24 * 3600)] = 3600
    # -- end of playback ------------------------------------------------------------------------

    # Prometheus metrics are served on this port only (0: on the public port, for development).
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9090

    log_level: str = "INFO"

    @field_validator("playback_signing_key", "playback_previous_signing_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        # A short or placeholder key makes every token forgeable: refuse to start with one.
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("a playback signing key needs at least 32 bytes")
        return value

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        for entry in value if isinstance(value, list) else []:
            if "/" in str(entry):
                ipaddress.ip_network(str(entry).strip(), strict=False)  # a typo fails start-up
        return value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
