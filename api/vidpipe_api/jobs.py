"""The accept path shared by every upload route, and the job views returned to clients.

The views render a parsed `vidpipe.record.JobRecord`; the API writes `phase` only for a job that
never reached the cluster (see that module), and download links come from the record's
`outputs` only.

Order and undo (never lose an accepted upload, never leave orphans):
  1. the object is already in S3 (streamed or completed by the caller);
  2. probe it; a bad input deletes the object, nothing else exists yet;
  3. insert the job record (phase Pending, `cr_created: false`); if MongoDB fails the
     object is deleted and the client gets 503;
  4. create the VideoJob; on success set `cr_created: true`. If the Kubernetes API is down the
     upload is still accepted (202): the record is the durable promise, and the reconciler in
     this process creates the missing VideoJob once the API answers again. If the API server
     refuses the VideoJob as invalid (400/422: a CEL rule without a model-side twin), the job is
     Failed with `job_rejected`, its source deleted, and the client gets 422.

Cancel of a job that has no VideoJob yet is recorded first (`cancel_requested`), then settled: a
VideoJob found after all is cancelled by the operator; none means nothing ever ran, so the job is
Cancelled here and its source deleted. While the cluster is down the job stays Pending with the
request recorded, and the reconciler settles it instead of creating the VideoJob. A creation
racing with the cancel reads the request back when it flags the record, and passes it on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from vidpipe.errors import ErrorCode, VidpipeError
from vidpipe.events import EventType, record_event
from vidpipe.keys import (
    MANIFEST_NAME,
    METADATA_NAME,
    POSTER_NAME,
    STORYBOARD_IMAGE_NAME,
    STORYBOARD_VTT_NAME,
    output_key,
    output_prefix,
    source_key,
)
from vidpipe.models import JobError, SourceObject, VideoJobSpec
from vidpipe.phases import SEED_STATUS
from vidpipe.record import JobRecord, rejected_fields, unsubmitted_cancel_fields
from vidpipe_api.cluster import Cluster
from vidpipe_api.db import Database, now, to_ms
from vidpipe_api.errors import ClusterUnavailable, VideoJobRejected
from vidpipe_api.metrics import Metrics
from vidpipe_api.options import JobOptions, outputs_document
from vidpipe_api.storage import Storage
from vidpipe_api.validation import Validator, media_summary

log = logging.getLogger(__name__)


def new_job_id() -> str:
    """Lowercase, DNS-label safe, starts with a letter, leaves room for suffixes (35 chars)."""
    return f"vj-{uuid.uuid4().hex}"


def spec_for(record: JobRecord) -> VideoJobSpec:
    fields: dict[str, Any] = {
        "jobId": record.id,
        "owner": record.owner,
        "source": record.source,
        "userMetadata": record.metadata,
        "priority": record.priority,
        "preset": record.preset,
    }
    if record.options is not None:
        fields["outputs"] = record.options
    return VideoJobSpec.model_validate(fields)


class Submission(Enum):
    CREATED = "created"
    DEFERRED = "deferred"
    REJECTED = "rejected"


class Ingest:
    def __init__(
        self,
        storage: Storage,
        db: Database,
        cluster: Cluster,
        validator: Validator,
        metrics: Metrics,
    ) -> None:
        self.storage = storage
        self.db = db
        self.cluster = cluster
        self.validator = validator
        self.metrics = metrics

    async def accept(
        self,
        *,
        job_id: str,
        owner: str,
        options: JobOptions,
        size: int,
        filename: str | None,
        content_type: str | None,
        via: str,
        metadata: dict[str, str] | None = None,
        keep_source_if_unavailable: bool = False,
    ) -> JobRecord:
        """Steps 2-4 for an object already stored under `source_key(job_id)`.

        A refused or failed upload's object is deleted, except that `keep_source_if_unavailable`
        keeps it when a dependency was only unavailable (503): a presigned upload's client sent
        its parts straight to S3 and can retry the completion, which must find them.
        """
        if options.preset_name is not None:
            raise ValueError("resolve the preset (vidpipe_api.presets) before accepting")
        key = source_key(job_id)

        async def discard(exc: VidpipeError) -> None:
            if not (keep_source_if_unavailable and exc.http_status == 503):
                await self.storage.delete(key)

        try:
            info = await self.validator.validate(key)
        except VidpipeError as exc:
            await discard(exc)
            raise
        at = now()
        record = JobRecord(
            id=job_id,
            owner=owner,
            source=SourceObject(bucket=self.storage.bucket, key=key),
            options=outputs_document(options.outputs),
            priority=options.priority,
            preset=options.preset,
            filename=filename,
            content_type=content_type,
            size_bytes=size,
            media=media_summary(info),
            metadata=metadata or {},
            uploaded_via=via,
            created_at=at,
            updated_at=at,
        )
        spec = spec_for(record)  # validates before anything is recorded
        try:
            await self.db.insert_job(record)
        except VidpipeError as exc:
            await discard(exc)
            raise
        self.metrics.jobs_created.inc()
        outcome, record = await self.submit(record, spec)
        if outcome is Submission.REJECTED:
            # The record stays (Failed, with the reason) so the client can look it up.
            message = record.error.message if record.error else ""
            raise VidpipeError(ErrorCode.JOB_REJECTED, message, {"jobId": job_id})
        log.info("job accepted", extra={"job_id": job_id, "owner": owner, "size": size})
        return record

    async def submit(
        self, record: JobRecord, spec: VideoJobSpec | None = None
    ) -> tuple[Submission, JobRecord]:
        """Create the VideoJob and flag the record; returns the outcome and the record now.

        DEFERRED (job kept Pending for the reconciler) if the Kubernetes API is down; REJECTED if
        it refused the VideoJob as invalid: the job is then Failed for good and its source deleted.
        """
        job_id = record.id
        # Every submission attempt (this request's, or the reconciler's after a crash between
        # the insert and here) logs job.submitted; the event's id makes it one event.
        await self.db.record_event(record_event(record, EventType.SUBMITTED, record.created_at))
        try:
            await self.cluster.create(spec or spec_for(record))
        except ClusterUnavailable:
            log.warning("videojob deferred to the reconciler", extra={"job_id": job_id})
            return Submission.DEFERRED, record
        except VideoJobRejected as exc:
            return Submission.REJECTED, await self._reject(record, exc)
        try:
            stored = await self.db.flag_submitted(job_id)
        except VidpipeError:
            # The VideoJob exists; the reconciler will see the flag unset, get 409, and set it.
            return Submission.DEFERRED, record
        record = record.updated({"cr_created": True})
        if stored is not None and stored.cancel_requested:
            # Cancelled while the VideoJob was being created: the cancel found none to stop.
            record = record.updated({"cancel_requested": True})
            settled = await self.settle_cancel(record)
            if settled is None:
                await self.db.update_job(job_id, {"cr_created": False})  # reconciler retries
                return Submission.DEFERRED, record.updated({"cr_created": False})
            return Submission.CREATED, settled
        return Submission.CREATED, record

    async def cancel_unsubmitted(self, record: JobRecord) -> JobRecord:
        """Cancel a job recorded without a VideoJob (the cluster was down when it was accepted)."""
        await self.db.update_job(record.id, {"cancel_requested": True})
        record = record.updated({"cancel_requested": True})
        settled = await self.settle_cancel(record)
        if settled is None:
            log.warning("cancel deferred to the reconciler", extra={"job_id": record.id})
            return record
        return settled

    async def settle_cancel(self, record: JobRecord) -> JobRecord | None:
        """Carry out a recorded cancel of a job; the record then, or None while the Kubernetes
        API is down."""
        job_id = record.id
        try:
            exists = await self.cluster.request_cancel(job_id)
        except ClusterUnavailable:
            return None
        if exists:
            # The operator stops it, deletes its outputs and records Cancelled: the phase is
            # its to write now that the job reached the cluster.
            if not record.cr_created:
                await self.db.update_job(job_id, {"cr_created": True})
                record = record.updated({"cr_created": True})
            return record
        # Nothing ever ran: no outputs, and nothing will read the source again. The source goes
        # first, so a failure here leaves the request recorded for the reconciler to finish.
        await self.storage.delete(source_key(job_id))
        fields = unsubmitted_cancel_fields(now())
        record = record.updated(fields)
        # The event first: killed in between, the reconciler repeats the recorded cancel and
        # logs the same event (one id); the other order could lose it.
        await self.db.record_event(record_event(record, EventType.CANCELLED, now()))
        await self.db.update_job(job_id, fields)
        log.info("unsubmitted job cancelled", extra={"job_id": job_id})
        return record

    async def _reject(self, record: JobRecord, exc: VideoJobRejected) -> JobRecord:
        log.warning(
            "videojob refused by the cluster", extra={"job_id": record.id, "code": exc.code.value}
        )
        fields = rejected_fields(JobError(code=exc.code.value, message=exc.message), now())
        await self.storage.delete(source_key(record.id))
        record = record.updated(fields)
        # The event first (see settle_cancel): the reconciler resubmits a job not yet recorded
        # Failed, is refused again and logs the same event.
        await self.db.record_event(record_event(record, EventType.FAILED, now()))
        await self.db.update_job(record.id, fields)
        return record


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_view(record: JobRecord) -> dict[str, Any]:
    """The public JSON of a job (no internal flags, no storage keys)."""
    return {
        "id": record.id,
        "url": f"/v1/jobs/{record.id}",
        "phase": record.phase.value,
        "seedStatus": SEED_STATUS[record.phase].value,
        "progress": record.progress,
        "filename": record.filename,
        "sizeBytes": record.size_bytes,
        "options": record.options,
        "metadata": record.metadata,
        "priority": record.priority.value,
        "preset": record.preset.model_dump() if record.preset else None,
        "media": record.media,
        "attempts": record.attempts,
        "queue": record.queue,
        "queuePosition": record.queue_position,
        "error": record.error.model_dump() if record.error else None,
        "cancelRequested": record.cancel_requested,
        "submitted": record.cr_created,
        "createdAt": _iso(record.created_at),
        "updatedAt": _iso(record.updated_at),
        "startedAt": _iso(record.started_at),
        "finishedAt": _iso(record.finished_at),
    }


def cursor_of(record: JobRecord) -> tuple[int, str]:
    return to_ms(record.created_at), record.id


def downloads(record: JobRecord, presign: Callable[[str], str]) -> dict[str, Any] | None:
    """Presigned links to what the job produced, grouped as poster / storyboard / metadata /
    manifest / renditions: None until it runs (Pending, Queued, Admitted), no links unless
    Succeeded.

    The record's `outputs` (the manifest's list, recorded by the operator) is the only source:
    an object under the job's prefix that the manifest does not list, such as a rendition still
    uploading while the job runs, is never offered. The manifest itself is offered with them.
    """
    if record.phase.waiting:
        return None
    out: dict[str, Any] = {"renditions": {}}
    if not record.succeeded or not record.outputs:
        return out
    prefix = output_prefix(record.id)
    for key in sorted({*record.outputs, output_key(record.id, MANIFEST_NAME)}):
        name = key.removeprefix(prefix)
        if not key.startswith(prefix) or "/" in name or not name:
            continue  # not one of this job's own files
        if name == POSTER_NAME:
            out["poster"] = presign(key)
        elif name == STORYBOARD_IMAGE_NAME:
            out.setdefault("storyboard", {})["image"] = presign(key)
        elif name == STORYBOARD_VTT_NAME:
            out.setdefault("storyboard", {})["vtt"] = presign(key)
        elif name == METADATA_NAME:
            out["metadata"] = presign(key)
        elif name == MANIFEST_NAME:
            out["manifest"] = presign(key)
        elif name.endswith(".mp4"):
            out["renditions"][name.removesuffix(".mp4")] = presign(key)
    return out
