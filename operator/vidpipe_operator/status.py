"""Pure functions from what the cluster shows (VideoJob status, Job, Pods) to the VideoJob status.

Nothing here talks to a server, so every phase transition is unit-tested, and after a restart the
same inputs give the same status: the operator recomputes state instead of remembering it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from vidpipe.errors import ErrorCode
from vidpipe.phases import Phase
from vidpipe_operator.names import (
    ADMITTED,
    ADMITTED_BY_KUEUE,
    CANCEL_REQUESTED,
    CANCELLED,
    COMPLETE,
    CONDITION_TYPES,
    CONTAINER,
    EVICTED,
    FAILED,
    FINISHED,
    JOB_CREATED,
    POD_PENDING,
    PROCESSING,
    QUEUED,
    RETRYING,
    RUNNING,
    SUCCEEDED,
    WAITING_FOR_SLOT,
)

MAX_MESSAGE = 1024


def now() -> datetime:
    return datetime.now(UTC)


def fmt_time(at: datetime) -> str:
    """RFC 3339 with second precision and Z, the way Kubernetes writes metav1.Time."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def fmt_duration(seconds: float) -> str:
    """Like `kubectl get jobs` DURATION: 45s, 3m12s, 2h5m."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    at: datetime,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Return conditions with `type_` set; lastTransitionTime moves only when status changes."""
    new: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "lastTransitionTime": fmt_time(at),
    }
    if generation is not None:
        new["observedGeneration"] = generation
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        if cond.get("type") == type_:
            found = True
            if cond.get("status") == status:
                new["lastTransitionTime"] = cond.get(
                    "lastTransitionTime", new["lastTransitionTime"]
                )
            out.append(new)
        else:
            out.append(dict(cond))
    if not found:
        out.append(new)
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    return sorted(out, key=lambda c: order.get(str(c.get("type")), len(order)))


def get_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


class Outcome(StrEnum):
    """What a Job says about its work, reduced to what the VideoJob phase needs."""

    NOT_STARTED = "NotStarted"  # Job exists, no Pod yet
    # Kueue mode: the Job waits suspended for Kueue to admit it (again, after an eviction).
    SUSPENDED = "Suspended"
    ACTIVE = "Active"  # a Pod exists or the Job is between retries
    SUCCEEDED = "Succeeded"
    BAD_INPUT = "BadInput"  # podFailurePolicy FailJob on the bad-input exit code
    RETRIES_EXHAUSTED = "RetriesExhausted"
    DEADLINE_EXCEEDED = "DeadlineExceeded"


@dataclass(frozen=True)
class JobView:
    outcome: Outcome
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    message: str
    # Suspended (Kueue mode): Pods still running or terminating, which the suspension stops.
    stopping: int = 0


def _true(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def view_job(job: dict[str, Any]) -> JobView:
    """Reduce a batch/v1 Job (as a dict) to the facts the VideoJob status is computed from."""
    st = job.get("status") or {}
    active, ready = int(st.get("active") or 0), int(st.get("ready") or 0)
    succeeded, failed = int(st.get("succeeded") or 0), int(st.get("failed") or 0)
    # Pods ignored by podFailurePolicy (disruptions) are not in `failed`, so they are not counted.
    attempts = active + succeeded + failed
    started = parse_time(st.get("startTime"))
    # SuccessCriteriaMet/FailureTarget come first (1.31+), Complete/Failed once Pods are gone;
    # acting on the first keeps the latency low and the verdict is the same.
    done = _true(job, "Complete") or _true(job, "SuccessCriteriaMet")
    if done:
        finished = parse_time(st.get("completionTime") or done.get("lastTransitionTime"))
        return JobView(Outcome.SUCCEEDED, max(attempts, 1), started, finished, "")
    fail = _true(job, "Failed") or _true(job, "FailureTarget")
    if fail:
        reason = str(fail.get("reason") or "")
        outcome = {
            "PodFailurePolicy": Outcome.BAD_INPUT,
            "DeadlineExceeded": Outcome.DEADLINE_EXCEEDED,
        }.get(reason, Outcome.RETRIES_EXHAUSTED)
        finished = parse_time(fail.get("lastTransitionTime"))
        return JobView(outcome, attempts, started, finished, str(fail.get("message") or reason))
    if (job.get("spec") or {}).get("suspend"):
        # Not yet admitted by Kueue, or evicted: Pods still terminating are no attempt of ours.
        stopping = active + int(st.get("terminating") or 0)
        return JobView(Outcome.SUSPENDED, attempts - active, started, None, "", stopping)
    if active or ready or failed or succeeded:
        return JobView(Outcome.ACTIVE, attempts, started, None, "")
    return JobView(Outcome.NOT_STARTED, attempts, started, None, "")


def termination_message(pods: list[dict[str, Any]]) -> str | None:
    """The processor's last termination message among a Job's Pods (newest finish first)."""
    found: list[tuple[str, str]] = []
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != CONTAINER:
                continue
            for state in (cs.get("state") or {}, cs.get("lastState") or {}):
                term = state.get("terminated") or {}
                if term.get("message"):
                    found.append((str(term.get("finishedAt") or ""), str(term["message"])))
    if not found:
        return None
    return max(found)[1].strip()


def parse_error(message: str | None, default_code: ErrorCode, default_text: str) -> dict[str, str]:
    """`{"code","message"}` from the processor's termination message, else the defaults.

    With FallbackToLogsOnError the message may be a log tail rather than our JSON line.
    """
    if message:
        first = message.strip().splitlines()[0] if message.strip() else ""
        try:
            data = json.loads(first)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("code") and data.get("message") is not None:
            return {"code": str(data["code"])[:64], "message": str(data["message"])[:MAX_MESSAGE]}
        return {"code": default_code.value, "message": message[-MAX_MESSAGE:]}
    return {"code": default_code.value, "message": default_text[:MAX_MESSAGE]}


def job_error(view: JobView, pod_message: str | None, attempts: int) -> dict[str, str] | None:
    """status.error for a failed Job, preferring what the processor itself said."""
    if view.outcome is Outcome.BAD_INPUT:
        return parse_error(pod_message, ErrorCode.NOT_A_VIDEO, "the processor rejected the input")
    if view.outcome is Outcome.DEADLINE_EXCEEDED:
        # The processor was killed, so its message (if any) is about an earlier attempt.
        return {"code": ErrorCode.DEADLINE_EXCEEDED.value, "message": view.message[:MAX_MESSAGE]}
    if view.outcome is Outcome.RETRIES_EXHAUSTED:
        err = parse_error(pod_message, ErrorCode.PROCESSING_FAILED, view.message)
        err["message"] = f"failed after {attempts} attempt(s): {err['message']}"[:MAX_MESSAGE]
        return err
    return None


_PHASE = {
    Outcome.NOT_STARTED: Phase.PENDING,
    Outcome.SUSPENDED: Phase.QUEUED,
    Outcome.ACTIVE: Phase.RUNNING,
    Outcome.SUCCEEDED: Phase.SUCCEEDED,
    Outcome.BAD_INPUT: Phase.FAILED,
    Outcome.RETRIES_EXHAUSTED: Phase.FAILED,
    Outcome.DEADLINE_EXCEEDED: Phase.FAILED,
}


def _finish(
    status: dict[str, Any], phase: Phase, finished: datetime, started: datetime | None
) -> None:
    status["phase"] = phase.value
    status["finishedAt"] = fmt_time(finished)
    status["startedAt"] = status.get("startedAt") or fmt_time(started or finished)
    begin = parse_time(status["startedAt"]) or finished
    status["duration"] = fmt_duration((finished - begin).total_seconds())


@dataclass(frozen=True)
class QueueView:
    """Kueue mode: what Kueue says about a VideoJob's Job (kueue.py reads it off the Workloads)."""

    queue: str  # the LocalQueue
    position: int | None  # 1 = admitted next; None while Kueue has not made the Workload yet
    # Why the Workload was last evicted (Kueue's Evicted condition: Preempted, ...), if it was.
    evicted_reason: str | None = None
    evicted_message: str = ""


def _queued(
    old: dict[str, Any],
    status: dict[str, Any],
    conds: list[dict[str, Any]],
    queue: QueueView,
    view: JobView,
    *,
    at: datetime,
    generation: int | None,
) -> list[dict[str, Any]]:
    """Queued in Kueue: the queue and place, and why (first time, or back after an eviction)."""
    status["queue"] = queue.queue
    if queue.position is None:
        status.pop("queuePosition", None)
    else:
        status["queuePosition"] = queue.position
    place = f"position {queue.position}" if queue.position else "position not yet known"
    was_admitted = old.get("phase") in {Phase.ADMITTED.value, Phase.RUNNING.value}
    prior = get_condition(conds, ADMITTED) or {}
    if queue.evicted_reason and (was_admitted or prior.get("reason") == EVICTED):
        # Back in the queue, not failed: Kueue evicted its Workload (preempted by a job of a
        # higher priority, for one). The Pod it lost is not counted as an attempt.
        reason = EVICTED
        message = f"{queue.evicted_reason}: {queue.evicted_message}; {place} in {queue.queue}"
        if prior.get("reason") != EVICTED and (
            old.get("phase") == Phase.RUNNING.value or view.stopping
        ):
            # Kubernetes counts a Pod deleted because its Job was suspended as failed: note it,
            # so that Pod is not taken for an attempt (from_job subtracts these).
            status["evictedPods"] = int(old.get("evictedPods") or 0) + 1
    else:
        reason, message = QUEUED, f"{place} in LocalQueue {queue.queue}"
    conds = set_condition(conds, ADMITTED, "False", reason, message, at=at, generation=generation)
    if get_condition(conds, RUNNING):
        conds = set_condition(
            conds, RUNNING, "False", POD_PENDING, "queued", at=at, generation=generation
        )
    return conds


def from_job(
    old: dict[str, Any],
    job_name: str,
    view: JobView,
    *,
    at: datetime,
    generation: int | None,
    outputs: list[str] | None = None,
    pod_message: str | None = None,
    queue: QueueView | None = None,
) -> dict[str, Any]:
    """The operator-owned status fields for a VideoJob whose Job is `view`.

    `old` is the current status; fields the processor owns (progress while running) are left
    alone, except that success pins progress at 100. `queue` is given in Kueue mode only: a
    suspended Job is then Queued, and an unsuspended one without a Pod Admitted.
    """
    status = {k: v for k, v in old.items() if k not in {"progress", "queuePosition"}}
    conds: list[dict[str, Any]] = list(old.get("conditions") or [])
    phase = _PHASE[view.outcome]
    if queue is not None and phase is Phase.PENDING:
        phase = Phase.ADMITTED
    status["jobName"] = job_name
    # The Job may count a Pod that is still terminating as neither active nor failed: never let
    # the number go down. Pods stopped by a Kueue eviction are no attempt (see _queued).
    evicted = int(old.get("evictedPods") or 0)
    attempts = max(int(old.get("attempts") or 0), view.attempts - evicted)
    status["attempts"] = attempts
    if generation is not None:
        status["observedGeneration"] = generation
    if phase is Phase.QUEUED:
        status["phase"] = phase.value
        status["conditions"] = _queued(
            old, status, conds, queue or QueueView("", None), view, at=at, generation=generation
        )
        return status
    if queue is not None:
        status["queue"] = queue.queue
    conds = set_condition(
        conds,
        ADMITTED,
        "True",
        ADMITTED_BY_KUEUE if queue is not None else JOB_CREATED,
        f"admitted by Kueue from {queue.queue}" if queue else f"Job {job_name} created",
        at=at,
        generation=generation,
    )
    if view.started_at and phase not in {Phase.PENDING, Phase.ADMITTED}:
        status["startedAt"] = old.get("startedAt") or fmt_time(view.started_at)
    if phase in {Phase.PENDING, Phase.ADMITTED}:
        conds = set_condition(
            conds,
            RUNNING,
            "False",
            POD_PENDING,
            "waiting for the processor Pod",
            at=at,
            generation=generation,
        )
    elif phase is Phase.RUNNING:
        reason = RETRYING if attempts > 1 else PROCESSING
        conds = set_condition(
            conds, RUNNING, "True", reason, f"attempt {attempts}", at=at, generation=generation
        )
    else:
        finished = view.finished_at or at
        _finish(status, phase, finished, view.started_at)
        conds = set_condition(
            conds,
            RUNNING,
            "False",
            FINISHED,
            f"after {attempts} attempt(s)",
            at=at,
            generation=generation,
        )
        if phase is Phase.SUCCEEDED:
            status["progress"] = 100
            status["outputs"] = list(outputs or [])
            status.pop("error", None)
            conds = set_condition(
                conds,
                COMPLETE,
                "True",
                SUCCEEDED,
                f"{len(outputs or [])} output(s) stored",
                at=at,
                generation=generation,
            )
        else:
            err = job_error(view, pod_message, attempts) or {
                "code": "internal_error",
                "message": "",
            }
            status["error"] = err
            conds = set_condition(
                conds,
                FAILED,
                "True",
                str(view.outcome.value),
                err["message"],
                at=at,
                generation=generation,
            )
    status["phase"] = phase.value
    status["conditions"] = conds
    return status


def waiting(
    old: dict[str, Any],
    *,
    running: int,
    limit: int,
    position: int,
    at: datetime,
    generation: int | None,
) -> dict[str, Any]:
    """Status of a VideoJob held back by the per-namespace concurrency limit."""
    status = dict(old)
    status.pop("progress", None)
    status["phase"] = Phase.PENDING.value
    if generation is not None:
        status["observedGeneration"] = generation
    status["conditions"] = set_condition(
        list(old.get("conditions") or []),
        ADMITTED,
        "False",
        WAITING_FOR_SLOT,
        f"{running}/{limit} jobs running in this namespace; position {position} in the queue",
        at=at,
        generation=generation,
    )
    return status


def cancelled(
    old: dict[str, Any], *, reason: str, at: datetime, generation: int | None
) -> dict[str, Any]:
    """Status after a cancel request (spec.cancel) or the VideoJob's deletion."""
    status = {k: v for k, v in old.items() if k != "progress"}
    started = parse_time(old.get("startedAt"))
    _finish(status, Phase.CANCELLED, at, started)
    status["outputs"] = []
    if generation is not None:
        status["observedGeneration"] = generation
    conds = list(old.get("conditions") or [])
    if get_condition(conds, RUNNING):
        conds = set_condition(
            conds, RUNNING, "False", FINISHED, "cancelled", at=at, generation=generation
        )
    text = "cancel requested" if reason == CANCEL_REQUESTED else "VideoJob deleted"
    status["conditions"] = set_condition(
        conds, CANCELLED, "True", reason, text, at=at, generation=generation
    )
    return status


def merge_patched(target: Any, patch: Any) -> Any:
    """`target` with the JSON merge patch `patch` applied (RFC 7386), as the API server applies
    it: objects merge key by key, None deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patched(result.get(key), value)
    return result


def status_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning `old` into `new` for operator-owned fields (None deletes)."""
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    for key in old:
        if key not in new and key != "progress":
            patch[key] = None
    return patch
