"""When and how often each VideoJob is reconciled: event triage, one run at a time per VideoJob,
retries, freed slots, the periodic resync and the sweep of VideoJobs deleted while no operator ran.

The operator uses no kopf change-detection handlers, hence no finalizer and no annotations on
VideoJobs: each VideoJob costs the API server its Job create and the status writes, nothing else,
and deleting a VideoJob never waits for an operator. What kopf's handlers gave is rebuilt here on
the level-triggered `reconcile.reconcile`:
- retries: `kick` runs one reconcile per VideoJob at a time, retried with a capped backoff, and
  runs it again if another trigger arrived meanwhile;
- resume after a restart: kopf's initial listing kicks every VideoJob;
- lost events and waiting jobs: `resync_forever` hands out free slots every SLOT_RETRY_SECONDS
  and re-reads every VideoJob holding a Job every RESYNC_SECONDS;
- deletions missed while no operator ran: `sweep_deleted` finds unfinished MongoDB documents
  whose VideoJob is gone and records them Cancelled (the owner reference already removed the
  Job and its Pods); it lists every VideoJob the first round and every SWEEP_LISTING_EVERY
  rounds, and otherwise trusts the watch's index.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from vidpipe import constants
from vidpipe.events import EventType, job_event, progress_event
from vidpipe.phases import Phase
from vidpipe.record import deleted_update
from vidpipe_operator import metrics
from vidpipe_operator.liveness import HEARTBEAT
from vidpipe_operator.logs import videojob_fields, videojob_logger
from vidpipe_operator.mongo import deferred_writes
from vidpipe_operator.names import LABEL_VIDEOJOB, VIDEOJOB_DELETED
from vidpipe_operator.offload import Urgency, urgency
from vidpipe_operator.queue import Slot, next_in_line
from vidpipe_operator.reconcile import Logger, Result, cancel, reconcile
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.status import now, view_job

Body = dict[str, Any]
log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0
# The sweep reads back at most this many VideoJobs one by one; more, and it lists them.
SWEEP_GETS_MAX = 50
# One resync round in this many sweeps with a listing of every VideoJob (the first one too).
SWEEP_LISTING_EVERY = 10


# --- watch events -------------------------------------------------------------------------


async def on_videojob_event(
    rt: Runtime, event_type: str | None, body: Body, logger: Logger
) -> None:
    """Every event costs nothing unless it asks for something: a new VideoJob, a cancel, a
    finished job (its slot is free), or processor progress to copy into MongoDB."""
    meta, spec, status = body["metadata"], body.get("spec") or {}, body.get("status") or {}
    namespace, name = meta["namespace"], meta["name"]
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    if event_type == "DELETED":
        await on_videojob_deleted(rt, body, logger)
        return
    if event_type is None:
        # kopf's initial listing after a (re)start: MongoDB may lag the CR (killed between the
        # two writes) and Jobs may have moved while no one watched. A finished VideoJob's status
        # never changes again, so the listed one is mirrored as it is, with no read: a restart
        # with 10,000 finished VideoJobs would otherwise GET every one of them.
        metrics.RECONCILES.labels(trigger="resume", result="queued").inc()
        listed = body if phase.terminal else None
        kick(
            rt, namespace, name, body=listed, force_mirror=True, urgent=bool(status.get("jobName"))
        )
        return
    if phase.terminal:
        start_next(rt, namespace)
        return
    if meta.get("deletionTimestamp"):
        return  # its DELETED event follows
    if spec.get("cancel"):
        kick(rt, namespace, name, force_mirror=True, urgent=True)
        return
    if not status and event_type == "ADDED":
        # A brand-new VideoJob: reconcile from this very body, nothing newer exists yet.
        metrics.RECONCILES.labels(trigger="create", result="queued").inc()
        kick(rt, namespace, name, body=body, force_mirror=False)
        return
    progress = int(status.get("progress") or 0)
    key = (namespace, name)
    previous = rt.progress.get(key, 0)
    if phase is Phase.RUNNING and previous != progress:
        # Progress is the processor's field; the operator only copies it to the read model,
        # and only while the document is not terminal (see mirror.progress_update). A new
        # tenth also goes to the event log (job.progress; a retry starts lower, and its tenths
        # are events of their own).
        at = now()
        attempt = int(status.get("attempts") or 1)
        event = (
            progress_event(spec, attempt, progress, at)
            if progress // 10 != previous // 10
            else None
        )
        try:
            await rt.mirror.write_progress(spec["jobId"], progress, at, event)
        except Exception as exc:
            # MongoDB is away. The processor may send nothing more for minutes, so hand the
            # report to a reconcile, which mirrors the whole status (progress included) and
            # retries with backoff until MongoDB is back, instead of waiting for the resync.
            logger.warning(f"progress {progress} not mirrored ({exc}); retrying in a reconcile")
            kick(rt, namespace, name, force_mirror=True)
            return
        rt.progress[key] = progress


async def on_videojob_deleted(rt: Runtime, body: Body, logger: Logger) -> None:
    """Deleting an unfinished VideoJob cancels it: Job and Pods stopped, MongoDB says
    Cancelled, partial outputs removed. Finished jobs keep their outputs and record.

    There is no finalizer, so this runs after the object is gone; if it fails (or no operator
    ran at the time), the periodic sweep (`sweep_deleted`) finishes the job.
    """
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        async with rt.lock(namespace, name):
            phase = Phase((body.get("status") or {}).get("phase") or Phase.PENDING.value)
            if not phase.terminal:
                with urgency(Urgency(urgent=True)):
                    await cancel(rt, body, reason=VIDEOJOB_DELETED, logger=logger)
    except Exception as exc:
        logger.warning(f"recording the deletion failed ({exc}); the periodic sweep retries")
    finally:
        rt.forget(namespace, name)
        start_next(rt, namespace)


def owner_name(job: Body) -> str | None:
    """The VideoJob that owns `job` (owner reference first: labels are truncated to 63)."""
    meta = job.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == constants.KIND and ref.get("apiVersion") == constants.API_VERSION:
            return str(ref["name"])
    label = (meta.get("labels") or {}).get(LABEL_VIDEOJOB)
    return str(label) if label else None


async def on_job_event(rt: Runtime, event_type: str | None, job: Body, logger: Logger) -> None:
    """A processor Job changed: reconcile its VideoJob if the change shows in its status."""
    meta = job["metadata"]
    namespace, jname = meta["namespace"], meta["name"]
    videojob = owner_name(job)
    if videojob is None:
        return
    key = (namespace, jname)
    if event_type == "DELETED":
        rt.seen_jobs.pop(key, None)
        await _after_job_deleted(rt, job, namespace, videojob, logger)
        return
    view = view_job(job)
    fingerprint = (view.outcome.value, view.attempts)
    if rt.seen_jobs.get(key) == fingerprint:
        return  # e.g. a `ready` count change: nothing the VideoJob status shows
    rt.seen_jobs[key] = fingerprint
    # Runs in a task so this Job's later events are not held up behind its retries; ahead of
    # starting waiting jobs, so a finish is recorded within seconds however long the queue.
    kick(rt, namespace, videojob, job=job, urgent=True)


async def _after_job_deleted(
    rt: Runtime, job: Body, namespace: str, videojob: str, logger: Logger
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
            kick(rt, namespace, videojob)
            return
    if cancelled:
        removed = await rt.storage.delete_outputs(job_id)
        if removed:
            logger.info(f"removed {removed} late partial output(s) of cancelled job {job_id}")


# --- one reconcile at a time per VideoJob, retried -----------------------------------------


async def _reconcile_once(
    rt: Runtime,
    namespace: str,
    name: str,
    *,
    body: Body | None,
    job: Body | None,
    force_mirror: bool,
) -> Result | None:
    """One reconcile under the VideoJob's lock, then what its result asks of the controller.
    None: the Lease is lost and the process is stopping."""
    if not await rt.may_act():
        return None
    async with rt.lock(namespace, name):
        with deferred_writes() as writes:
            result = await reconcile(
                rt,
                namespace,
                name,
                logger=videojob_logger(namespace, name),
                force_mirror=force_mirror,
                body=body,
                job=job,
            )
    if writes:
        rt.spawn(_confirm_mirror(rt, namespace, name, writes))
    if result.job_name is not None and result.job_facts is not None:
        # Job events carrying what was just written need no second look (on_job_event).
        rt.seen_jobs[(namespace, result.job_name)] = result.job_facts
    if result.created:
        rt.spawn(_record_later(rt, namespace, name))
    return result


async def _confirm_mirror(
    rt: Runtime, namespace: str, name: str, writes: list[Awaitable[object]]
) -> None:
    """Wait for a reconcile's MongoDB writes outside its lock and its run (see mongo.py), so
    the VideoJob's next status change is never held up by this one's mirror. A write that
    failed is made again by a fresh reconcile (which mirrors what it reads), backing off per
    VideoJob like `_with_retries`."""
    key = (namespace, name)
    try:
        await asyncio.gather(*writes)
    except Exception as exc:
        delay = rt.mirror_backoff[key] = min(2 * rt.mirror_backoff.get(key, 0.5), MAX_BACKOFF)
        log.warning(
            f"mirroring {namespace}/{name} failed, retrying in {delay:.0f}s: {exc}",
            extra=videojob_fields(namespace, name),
        )
        await asyncio.sleep(delay)
        kick(rt, namespace, name, force_mirror=True, urgent=True)
    else:
        rt.mirror_backoff.pop(key, None)


async def _record_later(rt: Runtime, namespace: str, name: str) -> None:
    """Record a new Job's VideoJob as Pending if no Job event has recorded it meanwhile."""
    await asyncio.sleep(rt.settings.job_settle_seconds)
    mine = [e for e in rt.entries(namespace) if e.name == name]
    if mine and mine[0].slot is Slot.WAITING:  # else recorded (jobName set), finished or gone
        kick(rt, namespace, name, urgent=True)  # it holds a Job: see kick


async def _with_retries(
    rt: Runtime, namespace: str, name: str, body: Body | None, job: Body | None, force_mirror: bool
) -> None:
    """Reconcile until it succeeds or must wait for a slot; errors back off up to a minute.

    `body` and `job` are used for the first attempt only (see `reconcile`): after a failure we
    re-read, and mirror what we find.
    """
    delay = 1.0
    while True:
        try:
            await _reconcile_once(
                rt, namespace, name, body=body, job=job, force_mirror=force_mirror
            )
            return  # done, waiting for a slot (a freed slot kicks it again) or stopping
        except Exception as exc:
            log.warning(
                f"reconcile of {namespace}/{name} failed, retrying in {delay:.0f}s: {exc}",
                extra=videojob_fields(namespace, name),
            )
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
    body: Body | None = None,
    job: Body | None = None,
    force_mirror: bool = True,
    urgent: bool = False,
) -> None:
    """Reconcile VideoJob `name` in the background, at most one run at a time per VideoJob.

    A trigger arriving while a run is in progress is not dropped: the run goes once more, from
    a fresh read, so a cancel that lands mid-reconcile is still seen.

    `urgent` runs its I/O ahead of other reconciles' (offload.IOPool): every reconcile of a
    VideoJob that holds a Job (its Job's events, its cancel, the resync's re-read) is urgent;
    admitting and starting waiting VideoJobs is not. An urgent trigger arriving during a run
    that is not (a queued VideoJob started by a freed slot while its new Job already reports)
    escalates that run, so a finish is never recorded at the pace of the start queue.
    """
    key = (namespace, name)
    running = rt.kicking.get(key)
    if running is not None:
        # The next run mirrors if any trigger it stands for asked to (a failed write's retry
        # arriving during a run that did not mirror must not be lost).
        rt.rerun[key] = rt.rerun.get(key, False) or force_mirror
        if urgent:
            running.escalate()
        return
    level = rt.kicking[key] = Urgency(urgent)

    async def run() -> None:
        first, first_job, force = body, job, force_mirror
        try:
            while True:
                rt.rerun.pop(key, None)
                with urgency(level):
                    await _with_retries(rt, namespace, name, first, first_job, force)
                first = first_job = None
                if key not in rt.rerun:
                    return
                force = rt.rerun[key]
        finally:
            del rt.kicking[key]

    rt.spawn(run())


def start_next(rt: Runtime, namespace: str) -> None:
    """Hand free slots to the next waiting VideoJobs now."""
    for name in next_in_line(rt.entries(namespace), rt.settings.max_running_per_namespace):
        if (namespace, name) not in rt.kicking:
            kick(rt, namespace, name, force_mirror=False)


# --- periodic resync and sweep -------------------------------------------------------------


async def sweep_deleted(rt: Runtime, namespace: str | None, *, listing: bool = True) -> int:
    """Record as Cancelled the unfinished jobs whose VideoJob was deleted while no operator
    watched (None: every namespace). Returns how many it found. `listing`: see `_gone`.

    MongoDB is read before the VideoJobs are looked up: a document the operator mirrored had its
    VideoJob then, so absent from the later look-up means deleted, never "not created yet".
    """
    docs = await rt.mirror.unfinished(namespace)
    if not docs:
        return 0
    gone = await _gone(rt, namespace, docs, listing)
    for doc in gone:
        at = now()
        event = job_event(
            EventType.CANCELLED,
            job_id=str(doc["_id"]),
            owner=str(doc.get("owner") or ""),
            at=at,
            metadata=dict(doc.get("metadata") or {}),
            data={
                "phase": Phase.CANCELLED.value,
                "reason": VIDEOJOB_DELETED,
                "finishedAt": at.isoformat().replace("+00:00", "Z"),
            },
        )
        await rt.mirror.write(str(doc["_id"]), deleted_update(doc, at), event, whole=False)
        removed = await rt.storage.delete_outputs(str(doc["_id"]))
        ref = doc.get("videojob") or {}
        log.info(
            f"VideoJob {ref.get('namespace')}/{ref.get('name')} was deleted while the operator "
            f"was away: job {doc['_id']} recorded Cancelled, {removed} partial output(s) deleted"
        )
    return len(gone)


async def _gone(rt: Runtime, namespace: str | None, docs: list[Body], listing: bool) -> list[Body]:
    """The documents whose VideoJob no longer exists.

    `listing`: list every VideoJob, the sure answer. Else trust the watch's index, which names
    every VideoJob this process knows, and read back only the documents' VideoJobs it lacks, one
    GET each; many unknown (the index not yet filled) and one listing is cheaper than the GETs.
    Listing every round cost the API server a read of every VideoJob a minute (5 MB and 4 s per
    namespace of 2,500 under load), a CPU spike each resync (bench/operator_scale.py); the
    index misses only a deletion whose watch event was lost, which the next listing finds.
    """

    def ref(doc: Body) -> tuple[str, str]:
        videojob = doc.get("videojob") or {}
        return str(videojob.get("namespace")), str(videojob.get("name"))

    if not listing:
        known = {(ns, entry.name) for ns in rt.namespaces() for entry in rt.entries(ns)}
        docs = [doc for doc in docs if ref(doc) not in known]
        if len(docs) <= SWEEP_GETS_MAX:
            gone = []
            for doc in docs:
                body = await rt.kube.get_videojob(*ref(doc))
                if body is None or (body.get("spec") or {}).get("jobId") != doc["_id"]:
                    gone.append(doc)  # deleted (a VideoJob of that name since is another job)
            return gone
    alive = await rt.kube.videojob_job_ids(namespace)
    return [doc for doc in docs if doc["_id"] not in alive]


async def _resync(rt: Runtime, listing: bool = True) -> None:
    watched: list[str | None] = list(rt.settings.namespaces) or [None]
    for namespace in watched:
        try:
            await sweep_deleted(rt, namespace, listing=listing)
        except Exception as exc:  # MongoDB or the API server down: try again next round
            log.warning(f"sweep of deleted VideoJobs failed: {exc}")
    for namespace in rt.namespaces():
        # Only VideoJobs holding a Job can have missed an event that changes their status. A
        # waiting one has nothing to re-read: its waiting status was written when it arrived
        # (a failed write is retried by its own kick) and a free slot starts it. Re-reading the
        # waiting too cost a GET and a queue-order sort per waiting VideoJob every round: with
        # thousands queued, the operator's whole CPU.
        # Nor does the re-read mirror what did not change: every write is confirmed, and one
        # that failed is made again by its own kick (`_confirm_mirror`). Mirroring all holding
        # VideoJobs each round sent a burst of a thousand writes a minute at 10,000 VideoJobs,
        # and a finished job's record waited behind it (bench/operator_scale.py, MongoDB p99).
        for entry in rt.entries(namespace):
            if entry.slot is Slot.HOLDING:
                kick(rt, namespace, entry.name, urgent=True, force_mirror=False)
        start_next(rt, namespace)


async def resync_forever(rt: Runtime) -> None:
    """Every SLOT_RETRY_SECONDS hand out free slots; every RESYNC_SECONDS (and once shortly after
    start-up) sweep deleted VideoJobs and re-reconcile those holding a Job."""
    tick = min(rt.settings.slot_retry_seconds, rt.settings.resync_seconds)
    since_resync = rt.settings.resync_seconds - tick  # first full resync after one tick
    rounds = 0
    while True:
        await asyncio.sleep(tick)
        if not await rt.may_act():
            return  # the Lease is lost: the process is stopping
        since_resync += tick
        if since_resync >= rt.settings.resync_seconds:
            since_resync = 0.0
            await _resync(rt, listing=rounds % SWEEP_LISTING_EVERY == 0)
            rounds += 1
            HEARTBEAT.beat()  # the loop and the resync are alive (liveness.py)
        else:
            for namespace in rt.namespaces():
                start_next(rt, namespace)
