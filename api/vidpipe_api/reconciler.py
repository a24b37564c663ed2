"""Finish what an outage interrupted: create VideoJobs for recorded jobs that have none yet, or
carry out the cancel of such a job instead of creating it.

Runs as a periodic asyncio task inside every API replica. It is idempotent (creation by name,
409 means done), so several replicas running it at once only cost a few duplicate calls.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from vidpipe.errors import VidpipeError
from vidpipe_api.db import now
from vidpipe_api.jobs import Ingest, Submission

log = logging.getLogger(__name__)


async def reconcile_once(ingest: Ingest, min_age_seconds: float) -> int:
    """Submit every Pending job without a VideoJob older than `min_age_seconds`; returns count."""
    # The age gate leaves jobs whose upload request is still creating the VideoJob alone.
    cutoff = now() - timedelta(seconds=min_age_seconds)
    created = 0
    for record in await ingest.db.jobs_missing_cr(cutoff):
        if record.cancel_requested:
            try:
                if await ingest.settle_cancel(record) is None:
                    break  # the Kubernetes API is still down
            except Exception:
                log.exception("cancel failed", extra={"job_id": record.id})
            continue
        try:
            outcome, _ = await ingest.submit(record)
        except Exception:
            # One bad record (one that no longer builds a spec, a failed delete) must not stop
            # every job queued behind it: log it and go on to the next.
            log.exception("resubmission failed", extra={"job_id": record.id})
            continue
        if outcome is Submission.DEFERRED:
            break  # the Kubernetes API is still down; try again next round
        if outcome is Submission.REJECTED:
            continue  # failed for good by submit(); no longer Pending, never picked again
        created += 1
        ingest.metrics.reconciled.inc()
        log.info("videojob created by reconciler", extra={"job_id": record.id})
    return created


async def run_forever(ingest: Ingest, interval: float, min_age_seconds: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await reconcile_once(ingest, min_age_seconds)
        except VidpipeError as exc:
            log.warning("reconcile round skipped", extra={"code": exc.code.value})
        except Exception:
            log.exception("reconcile round failed")
