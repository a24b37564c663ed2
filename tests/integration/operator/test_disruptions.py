"""Disruptions on the real cluster: an evicted Pod is retried for free; a deadline fails the job.

Both use the busybox stub on purpose: what is under test is the Job the operator builds
(podFailurePolicy, activeDeadlineSeconds) and how the operator reads its outcome, and that needs
Pods with a scripted lifetime (20 s for "evictable", forever for "slow"), not a real transcode.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import kubernetes
import pytest

from tests.integration.operator.conftest import (
    Cluster,
    OperatorProcess,
    wait_for,
)
from vidpipe.errors import ErrorCode
from vidpipe_operator.jobspec import job_name

pytestmark = pytest.mark.integration

TERMINAL = ("Succeeded", "Failed", "Cancelled")


# The operator with no retries at all: a disruption counted as a failed attempt would fail
# the Job at once, so the eviction test cannot pass by spending a retry.
OPERATOR_ENV = {"VIDPIPE_OPERATOR_BACKOFF_LIMIT": "0"}


def _finished(cluster: Cluster, name: str) -> dict[str, Any] | None:
    status = cluster.status(name)
    return status if status.get("phase") in TERMINAL else None


def _pod_names(cluster: Cluster, job: str) -> set[str]:
    return {p.metadata.name for p in cluster.pods(f"batch.kubernetes.io/job-name={job}")}


def _running_pod(cluster: Cluster, job: str) -> Any:
    pods = cluster.pods(f"batch.kubernetes.io/job-name={job}")
    return next((p for p in pods if p.status.phase == "Running"), None)


def _disruption(cluster: Cluster, pod: str) -> dict[str, Any] | None:
    got = cluster.core.read_namespaced_pod(pod, cluster.namespace)
    for cond in got.status.conditions or []:
        if cond.type == "DisruptionTarget" and cond.status == "True":
            return {"reason": cond.reason, "deleting": got.metadata.deletion_timestamp is not None}
    return None


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def test_evicted_pod_is_retried_without_spending_an_attempt(
    cluster: Cluster, operator: OperatorProcess, jobs_collection: Any
) -> None:
    # Fails if the Job lacks the DisruptionTarget Ignore rule (with backoffLimit 0 the eviction
    # fails the Job), if the operator counts the evicted Pod in `attempts`, or if no new Pod runs.
    name = "evict-1"
    job = job_name(name)
    cluster.create_videojob(name, owner="evictable")
    first = wait_for(
        "a running Pod", lambda: _running_pod(cluster, job), 60, on_timeout=operator.log_tail
    )
    first_name = first.metadata.name
    cluster.core.create_namespaced_pod_eviction(
        first_name,
        cluster.namespace,
        kubernetes.client.V1Eviction(
            metadata=kubernetes.client.V1ObjectMeta(name=first_name, namespace=cluster.namespace)
        ),
    )
    # The Eviction API (not a plain delete) is what marks the Pod as a disruption.
    disruption = wait_for("DisruptionTarget", lambda: _disruption(cluster, first_name), 5, 0.1)
    assert disruption == {"reason": "EvictionByEvictionAPI", "deleting": True}

    wait_for(
        "a replacement Pod (or the end of the job)",
        lambda: _pod_names(cluster, job) - {first_name} or _finished(cluster, name),
        60,
        on_timeout=operator.log_tail,
    )
    status = cluster.status(name)
    assert status.get("phase") != "Failed", f"the eviction failed the job: {status}"
    assert len(_pod_names(cluster, job) - {first_name}) == 1
    done = wait_for("finished", lambda: _finished(cluster, name), 90, on_timeout=operator.log_tail)
    assert done["phase"] == "Succeeded", done
    # docs/operator.md: attempts are Pods started, disruptions excluded.
    assert done["attempts"] == 1
    assert done.get("error") is None
    # The Job controller counts a finished Pod a moment after it declares success
    # (SuccessCriteriaMet, which the operator acts on): wait for the count, then check it.
    batch_job = wait_for(
        "the Job's finished Pods counted",
        lambda: next(
            (j for j in cluster.jobs() if j.metadata.name == job and j.status.succeeded), None
        ),
        30,
    )
    assert batch_job.status.succeeded == 1
    assert not batch_job.status.failed, "the evicted Pod must not count as a failed Pod"
    doc = wait_for(
        "Mongo Succeeded",
        lambda: (d := jobs_collection.find_one({"_id": name})) and d["phase"] == "Succeeded" and d,
    )
    assert doc["attempts"] == 1 and doc["error"] is None


def test_deadline_fails_the_job_with_its_code(
    cluster: Cluster, operator: OperatorProcess, jobs_collection: Any
) -> None:
    # Fails if build_job ignores spec.activeDeadlineSeconds (the default is an hour: the wait
    # times out), or if the operator reads the Job's DeadlineExceeded as another failure (the
    # code would be processing_failed, the reason RetriesExhausted).
    name = "deadline-1"
    cluster.create_videojob(name, owner="slow", activeDeadlineSeconds=30)
    failed = wait_for(
        "finished", lambda: _finished(cluster, name), 90, on_timeout=operator.log_tail
    )
    assert failed["phase"] == "Failed", failed
    assert failed["error"]["code"] == ErrorCode.DEADLINE_EXCEEDED.value == "deadline_exceeded"
    assert {c["type"]: c for c in failed["conditions"]}["Failed"]["reason"] == "DeadlineExceeded"
    assert failed["attempts"] == 1
    # It ran until the deadline, not shorter: the stub sleeps 600 s, so only the deadline ends it.
    assert _seconds(failed["startedAt"], failed["finishedAt"]) >= 29
    (batch_job,) = [j for j in cluster.jobs() if j.metadata.name == job_name(name)]
    assert batch_job.spec.active_deadline_seconds == 30
    # The Job says FailureTarget first (1.31+), Failed once its Pod is gone; the operator acts on
    # the first.
    job_reasons = {
        c.reason for c in batch_job.status.conditions or [] if c.type in ("FailureTarget", "Failed")
    }
    assert job_reasons == {"DeadlineExceeded"}
    doc = wait_for(
        "Mongo Failed",
        lambda: (d := jobs_collection.find_one({"_id": name})) and d["phase"] == "Failed" and d,
    )
    assert doc["error"]["code"] == "deadline_exceeded"
    assert doc["finished_at"] is not None
