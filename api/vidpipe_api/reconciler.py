"""Finish what an outage interrupted: create VideoJobs for recorded jobs that have none yet.

Runs as a periodic asyncio task inside every API replica. It is idempotent (creation by name,
409 means done), so several replicas running it at once only cost a few duplicate calls.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from vidpipe.errors import VidpipeError
from vidpipe_api.db import now
from vidpipe_api.jobs import Ingest

log = logging.getLogger(__name__)


async def reconcile_once(ingest: Ingest, min_age_seconds: float) -> int:
    """Submit every Pending job without a VideoJob older than `min_age_seconds`; returns count."""
    # The age gate leaves jobs whose upload request is still creating the VideoJob alone.
    cutoff = now() - timedelta(seconds=min_age_seconds)
    created = 0
    for doc in await ingest.db.jobs_missing_cr(cutoff):
        if not await ingest.submit(doc):
            break  # the API is still down; try again next round
        created += 1
        ingest.metrics.reconciled.inc()
        log.info("videojob created by reconciler", extra={"job_id": doc["_id"]})
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
