"""What happens when a VideoJob is created, resumed, cancelled, changes or is deleted."""

from __future__ import annotations

from typing import Any

import kopf

from vidpipe.phases import Phase
from vidpipe_operator import metrics
from vidpipe_operator.reconcile import (
    Entries,
    WaitingForSlot,
    cancel,
    reconcile,
    start_next,
    start_now,
)
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.status import VIDEOJOB_DELETED, now


async def handle_reconcile_videojob(
    rt: Runtime,
    namespace: str,
    name: str,
    *,
    entries: Entries,
    logger: kopf.Logger,
    trigger: str,
    force_mirror: bool,
    body: dict[str, Any] | None = None,
) -> None:
    """Creation, resume, cancel and resync all converge through the same reconcile."""
    if trigger == "create" and (namespace, name) in rt.started:
        rt.started.discard((namespace, name))
        return  # reconciled from its first event already (see handle_videojob_event)
    try:
        await reconcile(
            rt,
            namespace,
            name,
            entries=entries,
            logger=logger,
            force_mirror=force_mirror,
            body=body,
        )
    except WaitingForSlot as exc:
        metrics.RECONCILES.labels(trigger=trigger, result="waiting").inc()
        # "Not yet": kopf retries the handler; a freed slot also starts us at once (start_next).
        raise kopf.TemporaryError(str(exc), delay=rt.settings.slot_retry_seconds) from exc
    except Exception:
        metrics.RECONCILES.labels(trigger=trigger, result="error").inc()
        raise
    metrics.RECONCILES.labels(trigger=trigger, result="ok").inc()


async def handle_delete_videojob(
    rt: Runtime, body: dict[str, Any], *, entries: Entries, logger: kopf.Logger
) -> None:
    """Deleting an unfinished VideoJob cancels it: Job and Pods stopped, MongoDB says
    Cancelled, partial outputs removed. Finished jobs keep their outputs and record."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    async with rt.lock(namespace, name):
        phase = Phase((body.get("status") or {}).get("phase") or Phase.PENDING.value)
        if not phase.terminal:
            await cancel(rt, body, reason=VIDEOJOB_DELETED, logger=logger)
    rt.forget(namespace, name)
    start_next(rt, namespace, entries)


async def handle_videojob_event(
    rt: Runtime, event_type: str | None, body: dict[str, Any], *, entries: Entries
) -> None:
    """Every VideoJob event: hand out freed slots and mirror processor progress to MongoDB."""
    meta, status = body["metadata"], body.get("status") or {}
    namespace, name = meta["namespace"], meta["name"]
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    if not status and event_type in {None, "ADDED"} and not meta.get("deletionTimestamp"):
        # A brand-new VideoJob: start it now rather than after kopf's finalizer round trip.
        # The creation handler runs the same idempotent reconcile next and owns the retries.
        start_now(rt, body, entries)
        return
    if event_type == "DELETED" or phase.terminal or (body.get("spec") or {}).get("cancel"):
        start_next(rt, namespace, entries)
        return
    progress = int(status.get("progress") or 0)
    key = (namespace, name)
    if phase is Phase.RUNNING and rt.progress.get(key, 0) != progress:
        # Progress is the processor's field; the operator only copies it to the read model,
        # and only while the document is not terminal (see mirror.progress_update).
        await rt.mirror.write_progress(body["spec"]["jobId"], progress, now())
        rt.progress[key] = progress
