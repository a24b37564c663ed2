"""How reconciles get started: from watch events, from freed slots, and from a periodic resync.

The operator uses no kopf change-detection handlers, hence no finalizer and no annotations on
VideoJobs: each VideoJob costs the API server its Job create and the status writes, nothing else,
and deleting a VideoJob never waits for an operator. What kopf's handlers gave is rebuilt here on
the level-triggered `reconcile`:
- retries: `kick` runs one reconcile per VideoJob at a time, retried with a capped backoff, and
  runs it again if another trigger arrived meanwhile;
- resume after a restart: kopf's initial listing kicks every VideoJob;
- lost events and waiting jobs: `resync_forever` hands out free slots every SLOT_RETRY_SECONDS
  and re-reads every unfinished VideoJob every RESYNC_SECONDS;
- deletions missed while no operator ran: `sweep_deleted` finds unfinished MongoDB documents
  whose VideoJob is gone and records them Cancelled (the owner reference already removed the
  Job and its Pods).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vidpipe_operator.liveness import HEARTBEAT
from vidpipe_operator.mirror import deleted_update
from vidpipe_operator.reconcile import Entries, WaitingForSlot, reconcile
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.scheduler import Slot, next_in_line
from vidpipe_operator.status import now

Body = dict[str, Any]
log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0


async def reconcile_with_retries(
    rt: Runtime,
    namespace: str,
    name: str,
    *,
    entries: Entries,
    body: Body | None = None,
    job: Body | None = None,
    force_mirror: bool = True,
) -> None:
    """Reconcile until it succeeds or must wait for a slot; errors back off up to a minute.

    `body` and `job` are used for the first attempt only (see `reconcile`): after a failure we
    re-read, and mirror what we find.
    """
    delay = 1.0
    while True:
        try:
            await reconcile(
                rt,
                namespace,
                name,
                entries=entries,
                logger=log,
                force_mirror=force_mirror,
                body=body,
                job=job,
            )
            return
        except WaitingForSlot:
            return  # its waiting status is written; a freed slot kicks it again
        except Exception as exc:
            log.warning(f"reconcile of {namespace}/{name} failed, retrying in {delay:.0f}s: {exc}")
            body = job = None
            # The failed attempt may have patched the VideoJob and then failed to write MongoDB
            # (down): the retry sees no status difference, so it must mirror all the same.
            force_mirror = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)


def kick(
    rt: Runtime,
    namespace: str,
    name: str,
    *,
    entries: Entries,
    body: Body | None = None,
    job: Body | None = None,
    force_mirror: bool = True,
) -> None:
    """Reconcile VideoJob `name` in the background, at most one run at a time per VideoJob.

    A trigger arriving while a run is in progress is not dropped: the run goes once more, from
    a fresh read, so a cancel that lands mid-reconcile is still seen.
    """
    key = (namespace, name)
    if key in rt.kicking:
        rt.rerun.add(key)
        return
    rt.kicking.add(key)

    async def run() -> None:
        first, first_job = body, job
        try:
            while True:
                rt.rerun.discard(key)
                await reconcile_with_retries(
                    rt,
                    namespace,
                    name,
                    entries=entries,
                    body=first,
                    job=first_job,
                    force_mirror=force_mirror,
                )
                first = first_job = None
                if key not in rt.rerun:
                    return
        finally:
            rt.kicking.discard(key)

    rt.spawn(run())


def start_next(rt: Runtime, namespace: str, entries: Entries) -> None:
    """Hand free slots to the oldest waiting VideoJobs now."""
    for name in next_in_line(entries(namespace), rt.settings.max_running_per_namespace):
        if (namespace, name) not in rt.kicking:
            kick(rt, namespace, name, entries=entries, force_mirror=False)


async def sweep_deleted(rt: Runtime, namespace: str | None) -> int:
    """Record as Cancelled the unfinished jobs whose VideoJob was deleted while no operator
    watched (None: every namespace). Returns how many it found.

    MongoDB is read before the VideoJobs are listed: a document the operator mirrored had its
    VideoJob then, so absent from the later list means deleted, never "not created yet".
    """
    docs = await rt.mirror.unfinished(namespace)
    if not docs:
        return 0
    alive = await rt.kube.videojob_job_ids(namespace)
    gone = [doc for doc in docs if doc["_id"] not in alive]
    for doc in gone:
        await rt.mirror.write(str(doc["_id"]), deleted_update(doc, now()))
        removed = await rt.storage.delete_outputs(str(doc["_id"]))
        ref = doc.get("videojob") or {}
        log.info(
            f"VideoJob {ref.get('namespace')}/{ref.get('name')} was deleted while the operator "
            f"was away: job {doc['_id']} recorded Cancelled, {removed} partial output(s) deleted"
        )
    return len(gone)


async def _resync(rt: Runtime) -> None:
    watched: list[str | None] = list(rt.settings.namespaces) or [None]
    for namespace in watched:
        try:
            await sweep_deleted(rt, namespace)
        except Exception as exc:  # MongoDB or the API server down: try again next round
            log.warning(f"sweep of deleted VideoJobs failed: {exc}")
    for namespace in rt.namespaces():
        for entry in rt.entries(namespace):
            if entry.slot is not Slot.RELEASED:
                kick(rt, namespace, entry.name, entries=rt.entries)


async def resync_forever(rt: Runtime) -> None:
    """Every SLOT_RETRY_SECONDS hand out free slots; every RESYNC_SECONDS (and once shortly after
    start-up) sweep deleted VideoJobs and re-reconcile the unfinished ones."""
    tick = min(rt.settings.slot_retry_seconds, rt.settings.resync_seconds)
    since_resync = rt.settings.resync_seconds - tick  # first full resync after one tick
    while True:
        await asyncio.sleep(tick)
        if not await rt.may_act():
            return  # the Lease is lost: the process is stopping
        since_resync += tick
        if since_resync >= rt.settings.resync_seconds:
            since_resync = 0.0
            await _resync(rt)
            HEARTBEAT.beat()  # the loop and the resync are alive (liveness.py)
        else:
            for namespace in rt.namespaces():
                start_next(rt, namespace, rt.entries)
