"""What happens on each VideoJob watch event: start, cancel, hand out slots, mirror progress."""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from vidpipe import constants
from vidpipe.phases import Phase
from vidpipe_operator import metrics
from vidpipe_operator.reconcile import Entries, cancel
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.status import VIDEOJOB_DELETED, now
from vidpipe_operator.triggers import kick, start_next

LEGACY_FINALIZER = f"{constants.GROUP}/finalizer"


async def handle_videojob_event(
    rt: Runtime,
    event_type: str | None,
    body: dict[str, Any],
    *,
    entries: Entries,
    logger: kopf.Logger,
) -> None:
    """Every event costs nothing unless it asks for something: a new VideoJob, a cancel, a
    finished job (its slot is free), or processor progress to copy into MongoDB."""
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    namespace, name = meta["namespace"], meta["name"]
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    if event_type == "DELETED":
        await handle_videojob_deleted(rt, body, entries=entries, logger=logger)
        return
    if LEGACY_FINALIZER in (meta.get("finalizers") or []):
        # Set by the chart 0.1 operator (kopf change handlers); nothing waits on it now,
        # and left in place it would keep a deleted VideoJob Terminating for ever.
        try:
            await rt.kube.remove_finalizer(namespace, name, LEGACY_FINALIZER)
        except ApiException as exc:  # e.g. 409: changed meanwhile; its next event retries
            logger.warning(f"could not remove the finalizer {LEGACY_FINALIZER}: {exc.reason}")
    if event_type is None:
        # kopf's initial listing after a (re)start: MongoDB may lag the CR (killed between the
        # two writes) and Jobs may have moved while no one watched.
        metrics.RECONCILES.labels(trigger="resume", result="queued").inc()
        kick(rt, namespace, name, entries=entries, force_mirror=True)
        return
    if phase.terminal:
        start_next(rt, namespace, entries)
        return
    if meta.get("deletionTimestamp"):
        return  # its DELETED event follows
    if spec.get("cancel"):
        kick(rt, namespace, name, entries=entries, force_mirror=True)
        return
    if not status and event_type == "ADDED":
        # A brand-new VideoJob: reconcile from this very body, nothing newer exists yet.
        metrics.RECONCILES.labels(trigger="create", result="queued").inc()
        kick(rt, namespace, name, entries=entries, body=body, force_mirror=False)
        return
    progress = int(status.get("progress") or 0)
    key = (namespace, name)
    if phase is Phase.RUNNING and rt.progress.get(key, 0) != progress:
        # Progress is the processor's field; the operator only copies it to the read model,
        # and only while the document is not terminal (see mirror.progress_update).
        try:
            await rt.mirror.write_progress(spec["jobId"], progress, now())
        except Exception as exc:
            # MongoDB is away. The processor may send nothing more for minutes, so hand the
            # report to a reconcile, which mirrors the whole status (progress included) and
            # retries with backoff until MongoDB is back, instead of waiting for the resync.
            logger.warning(f"progress {progress} not mirrored ({exc}); retrying in a reconcile")
            kick(rt, namespace, name, entries=entries, force_mirror=True)
            return
        rt.progress[key] = progress


async def handle_videojob_deleted(
    rt: Runtime, body: dict[str, Any], *, entries: Entries, logger: kopf.Logger
) -> None:
    """Deleting an unfinished VideoJob cancels it: Job and Pods stopped, MongoDB says
    Cancelled, partial outputs removed. Finished jobs keep their outputs and record.

    There is no finalizer, so this runs after the object is gone; if it fails (or no operator
    ran at the time), the periodic sweep (triggers.sweep_deleted) finishes the job.
    """
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        async with rt.lock(namespace, name):
            phase = Phase((body.get("status") or {}).get("phase") or Phase.PENDING.value)
            if not phase.terminal:
                await cancel(rt, body, reason=VIDEOJOB_DELETED, logger=logger)
    except Exception as exc:
        logger.warning(f"recording the deletion failed ({exc}); the periodic sweep retries")
    finally:
        rt.forget(namespace, name)
        start_next(rt, namespace, entries)
