"""Operator settings: one typed class read from `VIDPIPE_OPERATOR_*` environment variables.

The facts it shares with the API and the processor (S3, MongoDB, media limits, x264 preset) come
from vidpipe.settings under their shared `VIDPIPE_*` names; the operator hands the limits and the
preset on to every processor Job. docs/operator.md lists every setting; tests build instances
directly instead of patching env.
"""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from vidpipe.settings import EncodeSettings, MediaLimitSettings, MongoSettings, S3Settings


class OperatorSettings(S3Settings, MongoSettings, MediaLimitSettings, EncodeSettings):
    model_config = SettingsConfigDict(env_prefix="VIDPIPE_OPERATOR_", frozen=True, extra="ignore")

    # What to watch. Empty means every namespace (cluster-wide RBAC needed).
    namespaces: list[str] = Field(default_factory=list)

    # The processor container.
    processor_image: str = "vidpipe-processor:latest"
    processor_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    processor_command: list[str] | None = None
    processor_args: list[str] | None = None
    processor_uid: int = Field(default=65532, ge=1)
    processor_cpu_request: str = "500m"
    processor_cpu_limit: str = "2"
    processor_memory_request: str = "512Mi"
    processor_memory_limit: str = "2Gi"
    # Where processor Pods may run, e.g. {"vidpipe.io/transcode": "true"} for dedicated nodes.
    processor_node_selector: dict[str, str] = Field(default_factory=dict)
    # Tolerations of processor Pods (Kubernetes' shape), for tainted dedicated transcode nodes.
    processor_tolerations: list[dict[str, str | int]] = Field(default_factory=list)
    processor_work_dir_size: str = "20Gi"
    processor_tmp_size: str = "1Gi"

    # Queueing (docs/queueing.md): "builtin" starts at most max_running_per_namespace Jobs per
    # namespace, fairly between owners; "kueue" hands every Job to Kueue (its LocalQueue per
    # owner points at kueue_cluster_queue; spec.priority names a WorkloadPriorityClass).
    queueing_mode: Literal["builtin", "kueue"] = "builtin"
    kueue_cluster_queue: str = "vidpipe"
    # Waiting jobs' positions come from one listing of the namespace's Workloads at most this old
    # (listing.SharedListing); each job's own Workload (its eviction) is always read fresh.
    kueue_listing_max_age_seconds: float = Field(default=5.0, ge=0)
    kueue_priority_classes: dict[str, str] = Field(
        default_factory=lambda: {p: f"vidpipe-{p}" for p in ("low", "normal", "high")}
    )

    # Job policy.
    max_running_per_namespace: int = Field(default=4, ge=1)
    backoff_limit: int = Field(default=3, ge=0, le=20)
    default_active_deadline_seconds: int = Field(default=3600, ge=30)
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    termination_grace_period_seconds: int = Field(default=30, ge=0)
    # How often a VideoJob waiting for a slot re-checks; slots freed by a finishing Job are
    # handed out at once, so this only bounds the delay after missed events.
    slot_retry_seconds: float = Field(default=10.0, gt=0)
    # How long a new Job may go without a Pod before its VideoJob records Pending/JobCreated;
    # normally the first Pod event records Running sooner, in one write instead of two.
    job_settle_seconds: float = Field(default=2.0, gt=0)
    # Safety-net re-read of unfinished VideoJobs in case a watch event was lost.
    resync_seconds: float = Field(default=60.0, gt=0)

    # Object storage (S3Settings): the operator reads manifests, deletes the outputs of failed
    # and cancelled jobs, and presigns the URLs that are a processor's only access to S3
    # (access.py). Presigned URLs are signed with its keys, so they must be long-lived keys, not
    # session credentials that expire before the Job's deadline.
    # The endpoint in the URLs handed to processor Pods (the host is part of the signature);
    # defaults to s3_endpoint_url (differs when the operator runs outside the cluster network).
    processor_s3_endpoint_url: str | None = None
    # The processor's URLs stay valid for the Job's activeDeadlineSeconds plus this margin
    # (Pod start, retries' last upload), capped at SigV4's 7 days.
    presign_margin_seconds: int = Field(default=900, ge=60)

    # MongoDB read model (MongoSettings).
    mongo_timeout_ms: int = Field(default=5000, ge=100)
    # Most job updates in one `update` command; a batch that times out halves it (batching.py).
    # Below FerretDB's connection pool (SQLite: 100, PostgreSQL: 50 by default): FerretDB v1.24
    # holds a connection per matched statement until the command ends, so a batch as large as
    # its pool stops it for good (bench/ferretdb_batch.py); halving cannot undo that.
    mongo_batch_max: int = Field(default=32, ge=1, le=1000)

    # Leader election on a coordination.k8s.io Lease: only the holder runs handlers.
    leader_election: bool = True
    lease_name: str = "vidpipe-operator"
    lease_namespace: str = "default"
    lease_duration_seconds: int = Field(default=15, ge=5)
    # Stable across a container restart in the same Pod, so a crashed leader can re-take its own
    # Lease at once instead of waiting for it to expire.
    identity: str = Field(default_factory=socket.gethostname)

    # Threads for blocking SDK calls (kubernetes client, pymongo, boto3), kept off the loop.
    io_threads: int = Field(default=16, ge=2)
    # kopf's per-object workers running at once (kopf: unbounded). An event storm (a restart's
    # initial listing of every VideoJob and Job) then queues instead of starting a task per
    # object; each handler only triages and kicks a reconcile, so a worker is busy for
    # microseconds and the cap costs no latency.
    kopf_worker_limit: int = Field(default=500, ge=10)
    # /healthz on its own port (liveness.py; 0 disables it): it fails once no watch event and no
    # resync round happened for liveness_stale_seconds, so a stalled operator is restarted.
    liveness_port: int = Field(default=8081, ge=0, le=65535)
    liveness_stale_seconds: float = Field(default=300.0, gt=0)
    metrics_port: int = Field(default=8080, ge=0, le=65535)  # 0 disables the endpoint
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @model_validator(mode="after")
    def _stale_after_resync(self) -> OperatorSettings:
        # The resync loop beats the heartbeat once per round: a shorter limit would restart a
        # healthy idle operator.
        if self.liveness_stale_seconds <= self.resync_seconds:
            raise ValueError("liveness_stale_seconds must be longer than resync_seconds")
        return self

    @model_validator(mode="after")
    def _every_priority_has_a_class(self) -> OperatorSettings:
        missing = {"low", "normal", "high"} - set(self.kueue_priority_classes)
        if missing:
            raise ValueError(f"kueue_priority_classes lacks {', '.join(sorted(missing))}")
        return self

    @property
    def processor_endpoint(self) -> str | None:
        return self.processor_s3_endpoint_url or self.s3_endpoint_url
