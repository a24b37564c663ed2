"""Names vulture (make lint) must not call dead: each is used by something it cannot see.

Grouped by file, each with why. A new entry needs the same: dead code is deleted, not listed.
Excluded from ruff and mypy (vulture's whitelist syntax, not importable code).
"""

# api/vidpipe_api/cluster.py: kubernetes client configuration: read by the client
_.retries

# api/vidpipe_api/compat.py: the replaced service's response models and constants: pydantic fields serialised to JSON
internal_status_code
task_status
truncated
task_status
queue_depth
processing
tasks_by_status
jobs_by_phase
service
dependencies
THUMBNAIL

# api/vidpipe_api/main.py: anyio's thread limiter: read by anyio
_.total_tokens

# api/vidpipe_api/schemas.py: response models: pydantic fields serialised to JSON
seedStatus
cancelRequested
queuePosition
submitted
createdAt
updatedAt
startedAt
finishedAt
uploadId
jobId
partSize
completeUrl
expiresAt

# api/vidpipe_api/webhook_schemas.py: webhook, event and delivery response models: pydantic fields serialised to JSON
disabledReason
failureStreak
statusCode
latencyMs
eventId
eventType
webhookId
nextAttemptAt
nextSince

# common/vidpipe/errors.py: the catalogue's bad-input set, the tests' oracle for exit code 65
BAD_INPUT_CODES

# common/vidpipe/events.py: MongoDB document fields the dispatcher queries and sets by name (outbox flag, claims)
dispatched
claimed_by
claimed_until

# common/vidpipe/models.py: CRD models: fields read by the API server (the generated schema), and the CEL twins used as the tests' oracle
spec_update_violations
user_metadata
last_transition_time
observed_generation
observed_generation
evicted_pods

# common/vidpipe/record.py: MongoDB record fields written by the API and kept for audit
uploaded_via
deleted_at

# operator/vidpipe_operator/kube.py: kubernetes client configuration: read by the client
_.connection_pool_maxsize

# operator/vidpipe_operator/startup.py: kopf settings and the DiffBaseStorage interface: read by kopf
extra_fields
_.fetch
_.store
_.worker_limit
_.idle_timeout
essence
_.diffbase_storage
_.standalone
_.disabled
_.reporting_component
_.reporting_instance
_.server_timeout
_.client_timeout
_.reconnect_backoff
_.request_timeout
_.default_backoff
_.max_workers

# processor/vidpipe_processor/main.py: signal handler signature
frame

# processor/vidpipe_processor/storage.py: access file fields: pydantic model of what the operator writes
expires_at

# api/vidpipe_api/routers/playback.py: PlaybackOut, a response model's field
playbackId

# processor/vidpipe_processor/hls.py: MediaPlaylist.target_duration, the declared target the
# HLS validity tests compare every segment with (the parser enforces it on its own input)
target_duration
