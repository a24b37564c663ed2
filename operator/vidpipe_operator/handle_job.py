"""What happens when a processor Job changes: recompute its VideoJob from the API server."""

from __future__ import annotations

from typing import Any

import kopf

from vidpipe import constants
from vidpipe.phases import Phase
from vidpipe_operator.jobs import LABEL_VIDEOJOB
from vidpipe_operator.reconcile import Entries
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.status import view_job
from vidpipe_operator.triggers import kick


def owner_name(job: dict[str, Any]) -> str | None:
    """The VideoJob that owns `job` (owner reference first: labels are truncated to 63)."""
    meta = job.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == constants.KIND and ref.get("apiVersion") == constants.API_VERSION:
            return str(ref["name"])
    label = (meta.get("labels") or {}).get(LABEL_VIDEOJOB)
    return str(label) if label else None


async def handle_job_event(
    rt: Runtime,
    event_type: str | None,
    job: dict[str, Any],
    *,
    entries: Entries,
    logger: kopf.Logger,
) -> None:
    meta = job["metadata"]
    namespace, jname = meta["namespace"], meta["name"]
    videojob = owner_name(job)
    if videojob is None:
        return
    key = (namespace, jname)
    if event_type == "DELETED":
        rt.seen_jobs.pop(key, None)
        await _after_job_deleted(rt, job, namespace, videojob, entries, logger)
        return
    view = view_job(job)
    fingerprint = (view.outcome.value, view.attempts)
    if rt.seen_jobs.get(key) == fingerprint:
        return  # e.g. a `ready` count change: nothing the VideoJob status shows
    rt.seen_jobs[key] = fingerprint
    # Runs in a task so this Job's later events are not held up behind its retries.
    kick(rt, namespace, videojob, entries=entries, job=job)


async def _after_job_deleted(
    rt: Runtime,
    job: dict[str, Any],
    namespace: str,
    videojob: str,
    entries: Entries,
    logger: kopf.Logger,
) -> None:
    """A cancelled job's Job is deleted in the foreground, so its DELETED event means all its
    Pods are gone: remove anything a Pod uploaded during its termination grace period."""
    body = await rt.kube.get_videojob(namespace, videojob)
    job_id = (job["metadata"].get("labels") or {}).get(constants.LABEL_JOB_ID)
    if not job_id:
        return
    if body is None:
        doc = await rt.mirror.get(job_id)
        cancelled = doc is not None and doc.get("phase") == Phase.CANCELLED.value
    else:
        cancelled = (body.get("status") or {}).get("phase") == Phase.CANCELLED.value
        phase = Phase((body.get("status") or {}).get("phase") or Phase.PENDING.value)
        if not phase.terminal:
            # Deleted by hand while unfinished: the reconcile creates it again.
            kick(rt, namespace, videojob, entries=entries)
            return
    if cancelled:
        removed = await rt.storage.delete_outputs(job_id)
        if removed:
            logger.info(f"removed {removed} late partial output(s) of cancelled job {job_id}")
