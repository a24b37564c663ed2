"""Level-triggered reconciliation of one VideoJob: read the VideoJob and its Job, write status.

Every entry point (creation, resume after a restart, cancel, Job events, resync) ends here, so the
result depends only on what the API server holds now, never on what this process remembers. That
is what makes a kill -9 at any point harmless: the next run recomputes the same status.

This module reads, decides and writes (the VideoJob's status, MongoDB, the Job and its access
objects), and returns a `Result`: it spawns no task and touches none of the controller's caches;
the controller (controller.py) acts on the result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import kopf

from vidpipe.events import status_events
from vidpipe.models import VideoJobSpec
from vidpipe.phases import Phase
from vidpipe.record import mirror_update
from vidpipe_operator import metrics
from vidpipe_operator.access import (
    access_document,
    access_expiring,
    build_access_secret,
    build_role,
    build_role_binding,
    build_service_account,
    url_lifetime,
)
from vidpipe_operator.jobspec import build_job, job_name
from vidpipe_operator.kueue import build_local_queue, holds_workload, queue_view
from vidpipe_operator.names import ADMITTED, CANCEL_REQUESTED, VIDEOJOB_DELETED
from vidpipe_operator.queue import admit
from vidpipe_operator.runtime import Runtime
from vidpipe_operator.s3 import manifest_facts, manifest_keys
from vidpipe_operator.status import (
    JobView,
    Outcome,
    QueueView,
    cancelled,
    from_job,
    get_condition,
    merge_patched,
    now,
    parse_time,
    status_patch,
    termination_message,
    view_job,
    waiting,
)

Body = dict[str, Any]
Logger = logging.Logger | kopf.Logger
log = logging.getLogger(__name__)


FAILED_OUTCOMES = frozenset(
    {Outcome.BAD_INPUT, Outcome.RETRIES_EXHAUSTED, Outcome.DEADLINE_EXCEEDED}
)


@dataclass(frozen=True)
class Result:
    phase: Phase | None  # None: the VideoJob no longer exists
    # At the concurrency limit, its waiting status written: a freed slot starts it.
    waiting: bool = False
    # The Job facts (outcome, attempts) the status now reflects, so Job events carrying only
    # those need no reconcile (controller.on_job_event).
    job_name: str | None = None
    job_facts: tuple[str, int] | None = None
    # A Job was just created and no status written: its first Pod event records Pending ->
    # Running in one write; the controller records Pending later if none comes.
    created: bool = False


def _post(videojob: Body, kind: str, reason: str, message: str) -> None:
    """One Kubernetes Event on the VideoJob. Best effort: a status already written must never
    be retried because its Event could not be queued."""
    try:
        kopf.event(
            kopf.Body(cast(kopf.RawBody, videojob)), type=kind, reason=reason, message=message
        )
    except LookupError:  # outside kopf's processing context (see Runtime.handler_context)
        log.warning(f"event {reason} not posted: no kopf event queue in this task")


def _announce(videojob: Body, old: Body, new: Body) -> None:
    """One Kubernetes Event per transition, on the VideoJob (`kubectl describe vj`)."""
    before, after = old.get("phase", Phase.PENDING.value), new.get("phase")
    if after != before and after is not None:
        metrics.TRANSITIONS.labels(phase=after).inc()
        kind = "Warning" if after == Phase.FAILED.value else "Normal"
        text = {
            Phase.RUNNING.value: f"processing in Job {new.get('jobName')}",
            Phase.SUCCEEDED.value: (
                f"{len(new.get('outputs') or [])} output(s) in {new.get('duration')}"
            ),
            Phase.FAILED.value: str((new.get("error") or {}).get("message", "")),
            Phase.CANCELLED.value: "stopped; partial outputs deleted",
            Phase.PENDING.value: "waiting",
            Phase.QUEUED.value: f"waiting in Kueue LocalQueue {new.get('queue')}",
            Phase.ADMITTED.value: "admitted by Kueue; waiting for the processor Pod",
        }.get(str(after), "")
        _post(videojob, kind, str(after), text)
    was = get_condition(list(old.get("conditions") or []), ADMITTED) or {}
    now_ = get_condition(list(new.get("conditions") or []), ADMITTED) or {}
    if now_.get("reason") != was.get("reason") and now_:
        _post(videojob, "Normal", str(now_["reason"]), str(now_["message"]))
    if int(new.get("attempts") or 0) > max(1, int(old.get("attempts") or 0)):
        _post(videojob, "Warning", "Retrying", f"attempt {new['attempts']}")


async def _mirror(rt: Runtime, videojob: Body, status: Body, facts: Body | None = None) -> None:
    """Mirror `status` into the job record, with the event of the state it records (the
    outbox: an insert keyed by the event's id, so a repeat after a crash adds nothing)."""
    at = now()
    spec = videojob["spec"]
    events = status_events(spec, status, at, facts=facts)
    await rt.mirror.write(spec["jobId"], mirror_update(videojob, status, at), *events)


async def _write(
    rt: Runtime,
    videojob: Body,
    old: Body,
    new: Body,
    *,
    force_mirror: bool,
    facts: Body | None = None,
) -> Phase | None:
    """Patch the status difference and mirror the result to MongoDB, both at once; announce it.

    Neither write waits for the other: MongoDB used to be written after the patch came back,
    so a finish reached the API's read model a whole status round trip later than it could
    (bench/operator_scale.py, Job finished -> MongoDB). Either may land first: if the process
    dies between the two, or one fails, the reconcile runs again (its retry, or the resume
    after a restart, which always mirrors) and writes the same status to both; each write is
    idempotent, and the mirror's event ids are deterministic.
    """
    meta = videojob["metadata"]
    patch = status_patch(old, new)
    # What the patch makes of the status on the server (the processor's own `progress` kept).
    merged: Body = merge_patched(old, patch)
    writes: list[Awaitable[object]] = []
    if patch:
        writes.append(rt.kube.patch_videojob_status(meta["namespace"], meta["name"], patch))
    if patch or force_mirror:
        writes.append(_mirror(rt, videojob, merged, facts))
    await asyncio.gather(*writes)
    if patch:
        _announce(videojob, old, new)
        finished = parse_time(merged.get("finishedAt"))
        if finished is not None and Phase(merged.get("phase", Phase.PENDING.value)).terminal:
            metrics.FINISH_LAG.observe(max(0.0, (now() - finished).total_seconds()))
    return Phase(merged.get("phase", Phase.PENDING.value))


async def _outputs(rt: Runtime, job_id: str) -> tuple[list[str], Body]:
    """What the processor produced, from its manifest (the one source: the API offers exactly
    these), and what the manifest says about it (`manifest_facts`). S3 unreachable raises, so
    the reconcile is retried with backoff instead of recording a success without outputs for
    good (or re-running a finished job whose Job is gone)."""
    manifest = await rt.storage.read_manifest(job_id)
    if manifest is None:
        return [], {}
    return manifest_keys(job_id, manifest), manifest_facts(manifest)


def kueue_mode(rt: Runtime) -> bool:
    return rt.settings.queueing_mode == "kueue"


async def _queue_view(rt: Runtime, namespace: str, job: Body, view: JobView) -> QueueView:
    """Kueue mode: the Job's LocalQueue and, while it waits, its place (read from the
    namespace's Workloads only then: a running or finished job needs no list). Its own Workload
    is read fresh; the others come from the namespace's listing shared by every waiting job,
    one that holds the job's Workload."""
    if view.outcome is not Outcome.SUSPENDED:
        return queue_view([], job)
    uid = str(job["metadata"]["uid"])
    own = await rt.kube.list_workloads(namespace, job_uid=uid)
    # A listing taken before the Workload was created would place the job first.
    listing = await rt.workloads.get(namespace, holds=partial(holds_workload, uid) if own else None)
    return queue_view(listing, job, own)


def _access_expiring(rt: Runtime, videojob: Body, job: Body) -> bool:
    created = parse_time(job["metadata"].get("creationTimestamp"))
    spec = VideoJobSpec.model_validate(videojob["spec"])
    return created is not None and access_expiring(spec, rt.settings, created, now())


async def grant_access(rt: Runtime, videojob: Body) -> None:
    """Write what the Job's Pod runs with: its presigned URLs (Secret) and its own identity
    (ServiceAccount, Role on this VideoJob's status only, RoleBinding). Four API writes, sent
    at once; each is idempotent (the Secret is replaced with fresh URLs, the rest 409 = exists).
    """
    spec = VideoJobSpec.model_validate(videojob["spec"])
    seconds = url_lifetime(spec, rt.settings)
    # Presigning is CPU work in botocore (about a millisecond per URL): off the event loop.
    document = await rt.io.run(
        partial(access_document, spec, rt.settings.s3_bucket, rt.storage.presign, seconds, now()),
    )
    await asyncio.gather(
        rt.kube.put_secret(build_access_secret(videojob, document)),
        rt.kube.create_child(build_service_account(videojob)),
        rt.kube.create_child(build_role(videojob)),
        rt.kube.create_child(build_role_binding(videojob)),
    )


def recorded_job_name(videojob: Body) -> str:
    """The Job this VideoJob runs in: the recorded name first (releases before 0.3 named Jobs
    differently, and a Job in flight keeps its name across an upgrade), else today's rule."""
    return str(
        (videojob.get("status") or {}).get("jobName") or job_name(videojob["metadata"]["name"])
    )


async def cancel(rt: Runtime, videojob: Body, *, reason: str, logger: Logger) -> None:
    """Stop the Job's Pods, record Cancelled (CR and MongoDB), delete partial outputs.

    For a VideoJob already deleted (reason VIDEOJOB_DELETED) only MongoDB is left to record it.
    """
    meta, status = videojob["metadata"], dict(videojob.get("status") or {})
    # Job first: if we die after this, the next reconcile (or sweep) sees the request again.
    await rt.kube.delete_job(meta["namespace"], recorded_job_name(videojob))
    new = cancelled(status, reason=reason, at=now(), generation=meta.get("generation"))
    if reason == VIDEOJOB_DELETED:
        await _mirror(rt, videojob, new)
    else:
        await _write(rt, videojob, status, new, force_mirror=True)
    removed = await rt.storage.delete_outputs(videojob["spec"]["jobId"])
    logger.info(f"cancelled ({reason}); {removed} partial output(s) deleted")


async def reconcile(
    rt: Runtime,
    namespace: str,
    name: str,
    *,
    logger: Logger,
    force_mirror: bool = False,
    body: Body | None = None,
    job: Body | None = None,
) -> Result:
    """Bring VideoJob `name` one step closer to its Job's truth.

    `body` may be passed only when the caller holds a copy at least as new as anything this
    process wrote (kopf's creation event), `job` when it holds the Job from its latest watch
    event: each saves a read on the hot path. The caller serialises runs per VideoJob.
    """
    videojob = body if body is not None else await rt.kube.get_videojob(namespace, name)
    if videojob is None:
        return Result(None)
    return await _reconcile(rt, videojob, job, logger, force_mirror)


async def _reconcile(
    rt: Runtime, videojob: Body, job: Body | None, logger: Logger, force_mirror: bool
) -> Result:
    meta, spec = videojob["metadata"], videojob["spec"]
    status: Body = dict(videojob.get("status") or {})
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    phase = Phase(status.get("phase") or Phase.PENDING.value)
    if phase.terminal:
        if force_mirror:
            await _mirror(rt, videojob, status)
        return Result(phase)
    if meta.get("deletionTimestamp"):
        return Result(phase)  # its DELETED event cancels it (controller.on_videojob_deleted)
    if spec.get("cancel"):
        await cancel(rt, videojob, reason=CANCEL_REQUESTED, logger=logger)
        return Result(Phase.CANCELLED)
    jname = recorded_job_name(videojob)
    if status.get("jobName"):
        job = job or await rt.kube.get_job(namespace, jname)
        if job is None:
            # We created a Job before, and it is gone: collected by its TTL while the operator
            # was down, or deleted by hand. A manifest means the processor finished; else rerun.
            found, found_facts = await _outputs(rt, spec["jobId"])
            if found:
                attempts = max(1, int(status.get("attempts") or 0))
                done = JobView(Outcome.SUCCEEDED, attempts, None, None, "")
                new = from_job(status, jname, done, at=now(), generation=generation, outputs=found)
                return Result(
                    await _write(
                        rt, videojob, status, new, force_mirror=force_mirror, facts=found_facts
                    )
                )
            logger.warning(f"Job {jname} disappeared before finishing; creating it again")
    elif job is None and not kueue_mode(rt):
        # No Job recorded (nor seen): usually there is none, so skip the read and let create
        # say 409. (In Kueue mode Kueue admits: every Job is created at once and waits there.)
        admission = admit(rt.entries(namespace), name, rt.settings.max_running_per_namespace)
        if not admission.admitted:
            # A Job created just before a crash (status not yet written) holds its slot.
            job = await rt.kube.get_job(namespace, jname)
            if job is None:
                new = waiting(
                    status,
                    running=admission.holding,
                    limit=rt.settings.max_running_per_namespace,
                    position=admission.position,
                    at=now(),
                    generation=generation,
                )
                return Result(
                    await _write(rt, videojob, status, new, force_mirror=force_mirror),
                    waiting=True,
                )
    if job is None:
        await grant_access(rt, videojob)
        if kueue_mode(rt):
            # The tenant's LocalQueue, made on first use (409 = it exists): owners are not
            # known in advance, so neither the chart nor the platform team can make them.
            await rt.kube.create_local_queue(
                build_local_queue(namespace, spec["owner"], rt.settings)
            )
        job, created = await rt.kube.create_job(build_job(videojob, rt.settings))
        # Today's name: a Job re-created for a VideoJob of an older release (recorded under its
        # old name) is recorded under the name it now has, so later reconciles find it.
        jname = str(job["metadata"]["name"])
        if created:
            logger.info(f"created Job {jname}")
            if view_job(job).outcome is Outcome.NOT_STARTED and not status and not kueue_mode(rt):
                # A fresh Job: its first Pod usually follows within a second, and that Job event
                # records Pending -> Running in one status write instead of two. Until then the
                # VideoJob keeps its place at the head of the queue (see queue.admit).
                return Result(
                    Phase.PENDING,
                    job_name=jname,
                    job_facts=(Outcome.NOT_STARTED.value, 0),
                    created=True,
                )
    view = view_job(job)
    if view.outcome is Outcome.SUSPENDED and _access_expiring(rt, videojob, job):
        await grant_access(rt, videojob)
    queue = await _queue_view(rt, namespace, job, view) if kueue_mode(rt) else None
    outputs: list[str] | None = None
    facts: Body | None = None
    pod_message: str | None = None
    if view.outcome is Outcome.SUCCEEDED:
        outputs, facts = await _outputs(rt, spec["jobId"])
    elif view.outcome in {Outcome.BAD_INPUT, Outcome.RETRIES_EXHAUSTED}:
        pod_message = termination_message(await rt.kube.list_job_pods(namespace, jname))
    if view.outcome in FAILED_OUTCOMES:
        # The processor cannot delete (its URLs only PUT), so a failed job's partial outputs are
        # removed here, before Failed is recorded: a crash in between repeats the delete.
        removed = await rt.storage.delete_outputs(spec["jobId"])
        if removed:
            logger.info(f"{removed} partial output(s) of the failed job deleted")
    new = from_job(
        status,
        jname,
        view,
        at=now(),
        generation=generation,
        outputs=outputs,
        pod_message=pod_message,
        queue=queue,
    )
    return Result(
        await _write(rt, videojob, status, new, force_mirror=force_mirror, facts=facts),
        job_name=jname,
        job_facts=(view.outcome.value, view.attempts),
    )
