"""A VideoJob's life on the real cluster: Job, phases, status, MongoDB, events, cancel, delete."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from tests.integration.operator.conftest import Cluster, OperatorProcess, wait_for
from tests.utils.servers import S3Server
from vidpipe.keys import output_key
from vidpipe_operator.jobspec import job_name

pytestmark = pytest.mark.integration

# What versions up to 0.1 put on every VideoJob (a literal: it is history, not configuration).
LEGACY_FINALIZER = "media.vidpipe.io/finalizer"


def _phase(cluster: Cluster, name: str, phase: str) -> Any:
    status = cluster.status(name)
    return status if status.get("phase") == phase else None


def test_success_fills_status_and_mongo(
    cluster: Cluster,
    operator: OperatorProcess,
    jobs_collection: Any,
    s3: S3Server,
    output_bucket: str,
) -> None:
    name = "ok-1"
    # The processor writes the manifest last; the stub cannot reach S3, so the test does.
    manifest = {"outputs": [{"key": output_key(name, "720p.mp4"), "size": 1}, "poster.jpg"]}
    s3.client().put_object(
        Bucket=output_bucket, Key=output_key(name, "manifest.json"), Body=json.dumps(manifest)
    )
    cluster.create_videojob(name, owner="medium")
    running = wait_for(
        "Running", lambda: _phase(cluster, name, "Running"), 60, on_timeout=operator.log_tail
    )
    assert running["jobName"] == job_name(name) == name
    (job,) = [j for j in cluster.jobs() if j.metadata.name == name]
    assert job.metadata.owner_references[0].name == name
    assert wait_for(
        "Mongo Running",
        lambda: (jobs_collection.find_one({"_id": name}) or {}).get("phase") == "Running",
    )
    done = wait_for(
        "Succeeded", lambda: _phase(cluster, name, "Succeeded"), 60, on_timeout=operator.log_tail
    )
    assert done["progress"] == 100
    assert done["attempts"] == 1
    assert done["outputs"] == [output_key(name, "720p.mp4"), output_key(name, "poster.jpg")]
    assert done["startedAt"] <= done["finishedAt"] and done["duration"].endswith("s")
    conds = {c["type"]: c for c in done["conditions"]}
    assert conds["Admitted"]["status"] == "True" and conds["Complete"]["status"] == "True"
    assert conds["Running"]["status"] == "False"
    doc = wait_for(
        "Mongo Succeeded",
        lambda: (d := jobs_collection.find_one({"_id": name})) and d["phase"] == "Succeeded" and d,
    )
    assert doc["outputs"] == done["outputs"] and doc["progress"] == 100
    assert doc["finished_at"] is not None and doc["error"] is None
    reasons = wait_for(
        "events",
        lambda: (
            (r := {e.reason for e in cluster.events(name)})
            >= {"JobCreated", "Running", "Succeeded"}
            and r
        ),
    )
    assert "Failed" not in reasons
    # The operator writes only status: no finalizer (deletion never waits for it), no kopf
    # bookkeeping annotations.
    meta = (cluster.get(name) or {})["metadata"]
    assert not meta.get("finalizers")
    assert not [a for a in meta.get("annotations") or {} if "kopf" in a]


def test_finalizer_of_earlier_versions_is_removed_at_start_up(
    cluster: Cluster, operator: OperatorProcess, jobs_collection: Any
) -> None:
    # An upgrade from chart 0.1: its VideoJobs carry a finalizer when the new operator starts.
    # Fails if the start-up migration (migrations.py) does not remove it: the VideoJob would
    # then hang Terminating on deletion.
    name = "legacy-1"
    operator.stop()
    try:
        cluster.create_videojob(name, owner="slow", finalizers=[LEGACY_FINALIZER])
    finally:
        operator.start()
    wait_for(
        "finalizer removed",
        lambda: not ((cluster.get(name) or {})["metadata"].get("finalizers")),
        60,
        on_timeout=operator.log_tail,
    )
    wait_for("Running", lambda: _phase(cluster, name, "Running"), 60, on_timeout=operator.log_tail)
    cluster.delete(name)
    wait_for("VideoJob gone", lambda: cluster.get(name) is None, 10, on_timeout=operator.log_tail)
    wait_for(
        "Mongo Cancelled",
        lambda: (jobs_collection.find_one({"_id": name}) or {}).get("phase") == "Cancelled",
    )


def test_a_job_recorded_under_its_0_2_name_is_run_again_under_its_0_3_name(
    cluster: Cluster, operator: OperatorProcess, jobs_collection: Any
) -> None:
    # An upgrade from 0.2.0 while a job ran: its status names the Job `vj-<name>` and that Job
    # is gone (its TTL ran out during the upgrade). Fails if the operator keeps recording the
    # old name for the Job it creates again (every later reconcile would miss it and create
    # access objects again) or never finishes the job.
    name = "upgraded-1"
    operator.stop()
    try:
        cluster.create_videojob(name, owner="ok")
        cluster.patch_status(name, {"phase": "Running", "jobName": f"vj-{name}", "attempts": 1})
    finally:
        operator.start()
    done = wait_for(
        "Succeeded", lambda: _phase(cluster, name, "Succeeded"), 90, on_timeout=operator.log_tail
    )
    assert done["jobName"] == job_name(name) == name
    assert [j.metadata.name for j in cluster.jobs() if j.metadata.name.endswith(name)] == [name]
    wait_for(
        "Mongo Succeeded",
        lambda: (jobs_collection.find_one({"_id": name}) or {}).get("job_name") == name,
    )


def test_bad_input_fails_at_once_without_retry(
    cluster: Cluster, operator: OperatorProcess, jobs_collection: Any
) -> None:
    name = "bad-1"
    cluster.create_videojob(name, owner="bad")
    failed = wait_for(
        "Failed", lambda: _phase(cluster, name, "Failed"), 60, on_timeout=operator.log_tail
    )
    assert failed["error"] == {"code": "not_a_video", "message": "stub: not a video"}
    assert failed["attempts"] == 1
    conds = {c["type"]: c for c in failed["conditions"]}
    assert conds["Failed"]["reason"] == "BadInput"
    assert len(cluster.pods(f"batch.kubernetes.io/job-name={job_name(name)}")) == 1
    doc = wait_for(
        "Mongo Failed",
        lambda: (d := jobs_collection.find_one({"_id": name})) and d["phase"] == "Failed" and d,
    )
    assert doc["error"]["code"] == "not_a_video"


def test_retryable_exit_is_retried_up_to_the_limit(
    cluster: Cluster,
    operator: OperatorProcess,
    jobs_collection: Any,
    s3: S3Server,
    output_bucket: str,
) -> None:
    name = "flaky-1"
    # What a failed attempt may leave: the processor cannot delete (its URLs only PUT), so the
    # operator removes a job's outputs when it fails for good.
    s3.client().put_object(Bucket=output_bucket, Key=output_key(name, "720p.mp4"), Body=b"partial")
    cluster.create_videojob(name, owner="flaky")
    failed = wait_for(
        "Failed", lambda: _phase(cluster, name, "Failed"), 90, on_timeout=operator.log_tail
    )
    # backoffLimit 1 in these tests: the first try and one retry.
    assert failed["attempts"] == 2
    assert failed["error"]["code"] == "storage_unavailable"
    assert failed["error"]["message"].startswith("failed after 2 attempt(s)")
    assert {c["type"]: c for c in failed["conditions"]}["Failed"]["reason"] == "RetriesExhausted"
    assert len(cluster.pods(f"batch.kubernetes.io/job-name={job_name(name)}")) == 2
    assert "Retrying" in {e.reason for e in cluster.events(name)}
    listed = s3.client().list_objects_v2(Bucket=output_bucket, Prefix=f"outputs/{name}/")
    assert listed.get("KeyCount", 0) == 0, "a failed job's partial outputs must be deleted"


def test_cancel_stops_pods_and_deletes_partial_outputs(
    cluster: Cluster,
    operator: OperatorProcess,
    jobs_collection: Any,
    s3: S3Server,
    output_bucket: str,
) -> None:
    name = "cancel-1"
    cluster.create_videojob(name, owner="slow")
    wait_for("Running", lambda: _phase(cluster, name, "Running"), 60, on_timeout=operator.log_tail)
    s3.client().put_object(Bucket=output_bucket, Key=output_key(name, "720p.mp4"), Body=b"partial")
    cluster.patch_spec(name, {"cancel": True})
    status = wait_for(
        "Cancelled", lambda: _phase(cluster, name, "Cancelled"), 30, on_timeout=operator.log_tail
    )
    assert {c["type"]: c for c in status["conditions"]}["Cancelled"]["reason"] == "CancelRequested"
    wait_for(
        "Job gone", lambda: not [j for j in cluster.jobs() if j.metadata.name == job_name(name)], 60
    )
    assert not cluster.pods(f"batch.kubernetes.io/job-name={job_name(name)}")
    listed = s3.client().list_objects_v2(Bucket=output_bucket, Prefix=f"outputs/{name}/")
    assert listed.get("KeyCount", 0) == 0
    doc = wait_for(
        "Mongo Cancelled",
        lambda: (d := jobs_collection.find_one({"_id": name})) and d["phase"] == "Cancelled" and d,
    )
    assert doc["finished_at"] is not None


def test_delete_removes_job_and_pods(
    cluster: Cluster, operator: OperatorProcess, jobs_collection: Any
) -> None:
    name = "delete-1"
    cluster.create_videojob(name, owner="slow")
    wait_for("Running", lambda: _phase(cluster, name, "Running"), 60, on_timeout=operator.log_tail)
    cluster.delete(name)
    wait_for("VideoJob gone", lambda: cluster.get(name) is None, 30, on_timeout=operator.log_tail)
    wait_for(
        "Job gone", lambda: not [j for j in cluster.jobs() if j.metadata.name == job_name(name)], 60
    )
    wait_for(
        "Pods gone", lambda: not cluster.pods(f"batch.kubernetes.io/job-name={job_name(name)}"), 60
    )
    doc = jobs_collection.find_one({"_id": name})
    assert doc["phase"] == "Cancelled"
    assert {c["reason"] for c in doc["conditions"]} >= {"VideoJobDeleted"}


def test_concurrency_limit_is_honoured_in_creation_order(
    cluster: Cluster, operator: OperatorProcess, jobs_collection: Any
) -> None:
    names = [f"queue-{i}" for i in range(6)]
    for name in names:
        cluster.create_videojob(name, owner="medium")

    # limit 3: the first three get Jobs, the others wait with a condition saying why.
    def waiting_now() -> list[str] | None:
        found = [
            n
            for n in names
            if any(c["reason"] == "WaitingForSlot" for c in cluster.status(n).get("conditions", []))
        ]
        # Exactly three: a non-empty list alone once passed this wait with one waiting job.
        return found if len(found) == 3 else None

    waiting = wait_for("3 waiting", waiting_now, 30, on_timeout=operator.log_tail)
    max_seen = 0
    while True:
        active = [
            j for j in cluster.jobs() if j.metadata.name.startswith("queue-") and not _ended(j)
        ]
        max_seen = max(max_seen, len(active))
        phases = [cluster.status(n).get("phase") for n in names]
        if all(p == "Succeeded" for p in phases):
            break
        assert max_seen <= 3, phases
        time.sleep(0.3)
    assert max_seen <= 3
    assert sorted(waiting) == names[3:]
    # One owner: jobs start in creation order (the first three before any of the rest), and a
    # waiting job starts only once a slot is free (after one of the first three finished).
    # Parsed, not compared as strings. Fails if the queue admits a later job first or a
    # waiting job starts while three run.
    statuses = [cluster.status(n) for n in names]
    starts = [_time(s["startedAt"]) for s in statuses]
    first_finish = min(_time(s["finishedAt"]) for s in statuses[:3])
    assert max(starts[:3]) <= min(starts[3:]), starts
    assert first_finish <= min(starts[3:]), (first_finish, starts)


# The Job controller declares these before it counts the Pod as succeeded or failed, and the
# operator frees the slot on the first of them: a Job showing one has ended for the queue.
ENDED = {"SuccessCriteriaMet", "Complete", "FailureTarget", "Failed"}


def _ended(job: Any) -> bool:
    conditions = job.status.conditions or []
    declared = any(c.type in ENDED and c.status == "True" for c in conditions)
    return bool(declared or job.status.succeeded or job.status.failed)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
