"""Kueue mode (docs/queueing.md): the labels that hand a Job to Kueue, the LocalQueue of each
tenant, and what the Workloads say about a Job's place in the queue. Pure functions; kube.py reads
and writes the objects.

A Job labelled with a LocalQueue is suspended by Kueue's webhook when it is created and
unsuspended when its Workload is admitted; the operator creates it fully formed and never edits
it afterwards (an edit would race Kueue's unsuspend).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from vidpipe import constants
from vidpipe_operator.names import JOB_UID_LABEL, KUEUE_GROUP, KUEUE_VERSION, MANAGED_BY
from vidpipe_operator.settings import OperatorSettings
from vidpipe_operator.status import QueueView, parse_time

QUEUE_LABEL = f"{KUEUE_GROUP}/queue-name"
PRIORITY_LABEL = f"{KUEUE_GROUP}/priority-class"
# LocalQueue names are DNS labels: a readable part of the owner plus a hash of all of it, so two
# owners never share a queue (and so their fair share) whatever characters their names hold.
_PREFIX = "vidpipe-"
_READABLE = 40

Body = dict[str, Any]


def local_queue_name(owner: str) -> str:
    """The LocalQueue of tenant `owner`: one per owner and namespace, made on first use."""
    readable = re.sub(r"[^a-z0-9-]+", "-", owner.lower()).strip("-")[:_READABLE].strip("-")
    digest = hashlib.sha256(owner.encode()).hexdigest()[:10]
    return f"{_PREFIX}{readable}-{digest}" if readable else f"{_PREFIX}{digest}"


def build_local_queue(namespace: str, owner: str, settings: OperatorSettings) -> Body:
    return {
        "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
        "kind": "LocalQueue",
        "metadata": {
            "name": local_queue_name(owner),
            "namespace": namespace,
            "labels": {
                constants.LABEL_PART_OF: constants.PART_OF,
                constants.LABEL_MANAGED_BY: MANAGED_BY,
            },
        },
        "spec": {"clusterQueue": settings.kueue_cluster_queue},
    }


def job_labels(spec: Body, settings: OperatorSettings) -> dict[str, str]:
    """The labels that make a Job Kueue's: its tenant's LocalQueue and the WorkloadPriorityClass
    of the VideoJob's spec.priority (normal when unset)."""
    priority = str(spec.get("priority") or "normal")
    return {
        QUEUE_LABEL: local_queue_name(str(spec["owner"])),
        PRIORITY_LABEL: settings.kueue_priority_classes[priority],
    }


def _true(workload: Body, type_: str) -> Body | None:
    for cond in (workload.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _pending(workload: Body) -> bool:
    """Waiting for quota: no quota reserved, not finished."""
    return not (_true(workload, "QuotaReserved") or _true(workload, "Finished"))


def _order(workload: Body) -> tuple[int, str, str]:
    """Kueue's order inside a ClusterQueue (BestEffortFIFO): higher priority first, then the
    queue-ordering time, which is the eviction time for an evicted Workload (Kueue's default
    requeuing timestamp) and the creation time otherwise."""
    evicted = _true(workload, "Evicted")
    since = str((evicted or {}).get("lastTransitionTime") or "") or str(
        workload["metadata"].get("creationTimestamp") or ""
    )
    at = parse_time(since)
    return (
        -int((workload.get("spec") or {}).get("priority") or 0),
        at.isoformat() if at else "",
        (workload["metadata"]["name"]),
    )


def _job_uid(workload: Body) -> object:
    return (workload["metadata"].get("labels") or {}).get(JOB_UID_LABEL)


def holds_workload(job_uid: str, workloads: list[Body]) -> bool:
    """Whether a listing holds the Workload of the Job with uid `job_uid`."""
    return any(_job_uid(w) == job_uid for w in workloads)


def queue_view(workloads: list[Body], job: Body, own: list[Body] | None = None) -> QueueView:
    """What the Workloads of the namespace say about `job`: its LocalQueue, its place among the
    pending Workloads of the namespace (an estimate of Kueue's order: Admission Fair Sharing also
    orders tenants by usage, which only Kueue's visibility API reports), and its last eviction.

    `own`, when given, is the Job's Workload read just now: it replaces the listing's copy, which
    may be seconds old (listing.SharedListing), so an eviction is never reported late."""
    labels = job["metadata"].get("labels") or {}
    queue = str(labels.get(QUEUE_LABEL) or "")
    uid = job["metadata"].get("uid")
    if own is not None:
        workloads = [w for w in workloads if _job_uid(w) != uid] + own
    mine = next((w for w in workloads if _job_uid(w) == uid), None)
    if mine is None:
        return QueueView(queue, None)
    evicted = _true(mine, "Evicted") or {}
    reason = evicted.get("reason")
    message = str(evicted.get("message") or "")
    if not _pending(mine):
        return QueueView(queue, None, reason, message)
    key = _order(mine)
    ahead = sum(1 for w in workloads if w is not mine and _pending(w) and _order(w) < key)
    return QueueView(queue, ahead + 1, reason, message)
