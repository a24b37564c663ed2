"""The accept path shared by every upload route, and the job views returned to clients.

Order and undo (never lose an accepted upload, never leave orphans):
  1. the object is already in S3 (streamed or completed by the caller);
  2. probe it; a bad input deletes the object, nothing else exists yet;
  3. insert the MongoDB document (phase Pending, `cr_created: false`); if MongoDB fails the
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
from datetime import datetime
from enum import Enum
from typing import Any

from vidpipe.errors import ErrorCode, VidpipeError
from vidpipe.keys import (
    MANIFEST_NAME,
    METADATA_NAME,
    POSTER_NAME,
    STORYBOARD_IMAGE_NAME,
    STORYBOARD_VTT_NAME,
    output_prefix,
    source_key,
)
from vidpipe.models import Outputs, SourceObject, VideoJobSpec
from vidpipe.phases import SEED_STATUS, Phase
from vidpipe_api.cluster import Cluster
from vidpipe_api.db import Database, now, to_ms
from vidpipe_api.errors import ClusterUnavailable, VideoJobRejected
from vidpipe_api.metrics import Metrics
from vidpipe_api.options import outputs_document
from vidpipe_api.storage import Storage
from vidpipe_api.validation import Validator, media_summary

log = logging.getLogger(__name__)


def new_job_id() -> str:
    """Lowercase, DNS-label safe, starts with a letter, leaves room for suffixes (35 chars)."""
    return f"vj-{uuid.uuid4().hex}"


def spec_for(doc: dict[str, Any]) -> VideoJobSpec:
    return VideoJobSpec.model_validate(
        {
            "jobId": doc["_id"],
            "owner": doc["owner"],
            "source": doc["source"],
            "outputs": doc["options"],
        }
    )


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
        outputs: Outputs,
        size: int,
        filename: str | None,
        content_type: str | None,
        via: str,
        keep_source_if_unavailable: bool = False,
    ) -> dict[str, Any]:
        """Steps 2-4 for an object already stored under `source_key(job_id)`.

        A refused or failed upload's object is deleted, except that `keep_source_if_unavailable`
        keeps it when a dependency was only unavailable (503): a presigned upload's client sent
        its parts straight to S3 and can retry the completion, which must find them.
        """
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
        doc: dict[str, Any] = {
            "_id": job_id,
            "owner": owner,
            "phase": Phase.PENDING.value,
            "progress": 0,
            "source": SourceObject(bucket=self.storage.bucket, key=key).model_dump(),
            "options": outputs_document(outputs),
            "filename": filename,
            "content_type": content_type,
            "size_bytes": size,
            "media": media_summary(info),
            "uploaded_via": via,
            "created_at": at,
            "updated_at": at,
            "cr_created": False,
            "deleted": False,
        }
        spec = spec_for(doc)  # validates before anything is recorded
        try:
            await self.db.insert_job(doc)
        except VidpipeError as exc:
            await discard(exc)
            raise
        self.metrics.jobs_created.inc()
        if await self.submit(doc, spec) is Submission.REJECTED:
            # The record stays (Failed, with the reason) so the client can look it up.
            message = str(doc["error"]["message"])
            raise VidpipeError(ErrorCode.JOB_REJECTED, message, {"jobId": job_id})
        log.info("job accepted", extra={"job_id": job_id, "owner": owner, "size": size})
        return doc

    async def submit(self, doc: dict[str, Any], spec: VideoJobSpec | None = None) -> Submission:
        """Create the VideoJob and flag the record.

        DEFERRED (job kept Pending for the reconciler) if the Kubernetes API is down; REJECTED if
        it refused the VideoJob as invalid: the job is then Failed for good and its source deleted.
        """
        job_id = doc["_id"]
        try:
            await self.cluster.create(spec or spec_for(doc))
        except ClusterUnavailable:
            log.warning("videojob deferred to the reconciler", extra={"job_id": job_id})
            return Submission.DEFERRED
        except VideoJobRejected as exc:
            await self._reject(doc, exc)
            return Submission.REJECTED
        try:
            record = await self.db.flag_submitted(job_id)
        except VidpipeError:
            # The VideoJob exists; the reconciler will see the flag unset, get 409, and set it.
            return Submission.DEFERRED
        doc["cr_created"] = True
        if record is not None and record.get("cancel_requested"):
            # Cancelled while the VideoJob was being created: the cancel found none to stop.
            doc["cancel_requested"] = True
            if not await self.settle_cancel(doc):
                await self.db.update_job(job_id, {"cr_created": False})  # reconciler retries
                doc["cr_created"] = False
                return Submission.DEFERRED
        return Submission.CREATED

    async def cancel_unsubmitted(self, doc: dict[str, Any]) -> None:
        """Cancel a job recorded without a VideoJob (the cluster was down when it was accepted)."""
        await self.db.update_job(doc["_id"], {"cancel_requested": True})
        doc["cancel_requested"] = True
        if not await self.settle_cancel(doc):
            log.warning("cancel deferred to the reconciler", extra={"job_id": doc["_id"]})

    async def settle_cancel(self, doc: dict[str, Any]) -> bool:
        """Carry out a recorded cancel of a job; False while the Kubernetes API is down."""
        job_id = doc["_id"]
        try:
            exists = await self.cluster.request_cancel(job_id)
        except ClusterUnavailable:
            return False
        if exists:
            # The operator stops it, deletes its outputs and mirrors Cancelled.
            if not doc.get("cr_created"):
                await self.db.update_job(job_id, {"cr_created": True})
                doc["cr_created"] = True
            return True
        # Nothing ever ran: no outputs, and nothing will read the source again. The source goes
        # first, so a failure here leaves the request recorded for the reconciler to finish.
        await self.storage.delete(source_key(job_id))
        fields = {"phase": Phase.CANCELLED.value, "finished_at": now()}
        await self.db.update_job(job_id, fields)
        doc.update(fields)
        log.info("unsubmitted job cancelled", extra={"job_id": job_id})
        return True

    async def _reject(self, doc: dict[str, Any], exc: VideoJobRejected) -> None:
        log.warning(
            "videojob refused by the cluster", extra={"job_id": doc["_id"], "code": exc.code.value}
        )
        error = {"code": exc.code.value, "message": exc.message}
        fields = {"phase": Phase.FAILED.value, "error": error, "finished_at": now()}
        await self.storage.delete(source_key(doc["_id"]))
        await self.db.update_job(doc["_id"], fields)
        doc.update(fields)


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def job_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The public JSON of a job (no internal flags, no storage keys)."""
    phase = str(doc.get("phase", Phase.PENDING.value))
    media = doc.get("media") or {}
    return {
        "id": doc["_id"],
        "url": f"/v1/jobs/{doc['_id']}",
        "phase": phase,
        "seedStatus": SEED_STATUS.get(Phase(phase), phase) if phase in set(Phase) else phase,
        "progress": int(doc.get("progress") or 0),
        "filename": doc.get("filename"),
        "sizeBytes": doc.get("size_bytes"),
        "options": doc.get("options"),
        "media": media,
        "attempts": int(doc.get("attempts") or 0),
        "error": doc.get("error"),
        "cancelRequested": bool(doc.get("cancel_requested")),
        "submitted": bool(doc.get("cr_created")),
        "createdAt": _iso(doc.get("created_at")),
        "updatedAt": _iso(doc.get("updated_at")),
        "startedAt": _iso(doc.get("started_at")),
        "finishedAt": _iso(doc.get("finished_at")),
    }


def cursor_of(doc: dict[str, Any]) -> tuple[int, str]:
    return to_ms(doc["created_at"]), str(doc["_id"])


def classify_outputs(job_id: str, keys: list[str], presign: Any) -> dict[str, Any]:
    """Group the job's stored outputs into poster / storyboard / metadata / renditions links."""
    prefix = output_prefix(job_id)
    out: dict[str, Any] = {"renditions": {}}
    for key in sorted(keys):
        name = key[len(prefix) :]
        if "/" in name or not name:
            continue
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
