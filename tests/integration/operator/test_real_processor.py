"""The operator with the real processor image: exit classes, termination messages, a real S3 outage.

Every other operator test runs a busybox stand-in whose exit code and message are scripted; here
the codes and messages come from the processor itself, so these tests fail if the processor and
the operator stop agreeing on the contract (65 bad input, never retried; 75 retryable; one JSON
line in /dev/termination-log). The Pods reach a private versitygw on the node bridge address,
which one test stops for real while a Pod runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.operator.conftest import (
    Cluster,
    OperatorProcess,
    PodS3,
    make_media,
    real_processor_env,
    running_operator,
    wait_for,
)
from vidpipe import keys
from vidpipe.errors import ErrorCode
from vidpipe_operator.jobspec import job_name

pytestmark = pytest.mark.integration

TERMINAL = ("Succeeded", "Failed", "Cancelled")
# One small rendition and a poster: a 2 s clip is processed in seconds on a shared core.
OUTPUTS = {"renditions": [{"name": "240p", "height": 240}], "storyboard": {"enabled": False}}


@dataclass(frozen=True)
class Media:
    clip: Path
    audio_only: Path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    tmp = tmp_path_factory.mktemp("media")
    return Media(
        clip=make_media(tmp / "clip.mp4", 2),
        audio_only=make_media(tmp / "tone.m4a", 2, video=False),
    )


@pytest.fixture(scope="module")
def operator(
    namespace: str,
    mongo_url: str,
    pod_s3: PodS3,
    processor_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """backoffLimit 1: a retryable failure gets exactly one more Pod."""
    env = real_processor_env(namespace, mongo_url, pod_s3.server, pod_s3.bucket, processor_image)
    with running_operator(env, tmp_path_factory) as proc:
        yield proc


def _upload(store: PodS3, name: str, media: Path) -> None:
    store.server.client().upload_file(str(media), store.bucket, keys.source_key(name))


def _create(cluster: Cluster, store: PodS3, name: str) -> None:
    source = {"bucket": store.bucket, "key": keys.source_key(name)}
    cluster.create_videojob(name, owner="real", source=source, outputs=OUTPUTS)


def _submit(cluster: Cluster, store: PodS3, name: str, media: Path | None) -> None:
    """Upload `media` as the job's source (None: leave the source missing), create the VideoJob."""
    if media is not None:
        _upload(store, name, media)
    _create(cluster, store, name)


def _finished(cluster: Cluster, name: str) -> dict[str, Any] | None:
    status = cluster.status(name)
    return status if status.get("phase") in TERMINAL else None


def _exits(cluster: Cluster, name: str) -> list[tuple[int, dict[str, Any]]]:
    """(exit code, parsed termination message) of every finished processor container, oldest
    first: what the processor itself said, read from the Pods, not from the operator."""
    found = []
    for pod in cluster.pods(f"batch.kubernetes.io/job-name={job_name(name)}"):
        for cs in pod.status.container_statuses or []:
            term = cs.state.terminated if cs.state else None
            if term is not None and term.exit_code is not None:
                found.append((term.finished_at, term.exit_code, json.loads(term.message or "{}")))
    return [(code, message) for _, code, message in sorted(found, key=lambda f: f[0])]


def _pod_count(cluster: Cluster, name: str) -> int:
    return len(cluster.pods(f"batch.kubernetes.io/job-name={job_name(name)}"))


def _output_listing(store: PodS3, name: str) -> list[str]:
    listed = store.server.client().list_objects_v2(
        Bucket=store.bucket, Prefix=keys.output_prefix(name)
    )
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _manifest_keys(store: PodS3, name: str) -> list[str]:
    body = store.server.client().get_object(
        Bucket=store.bucket, Key=keys.output_key(name, keys.MANIFEST_NAME)
    )["Body"]
    return sorted(entry["key"] for entry in json.loads(body.read())["outputs"])


def _mongo(jobs_collection: Any, name: str, phase: str) -> dict[str, Any]:
    doc: dict[str, Any] = wait_for(
        f"MongoDB {phase}",
        lambda: (d := jobs_collection.find_one({"_id": name})) and d["phase"] == phase and d,
        30,
    )
    return doc


@contextmanager
def _finished_unobserved(
    cluster: Cluster, operator: OperatorProcess, store: PodS3, media: Path, name: str
) -> Iterator[list[str]]:
    """Run job `name` until its Job succeeds while no operator runs; yields the manifest's keys
    and starts the operator again on the way out (if the test has not)."""
    jname = job_name(name)
    _submit(cluster, store, name, media)
    wait_for(
        "Running",
        lambda: cluster.status(name).get("phase") == "Running",
        120,
        on_timeout=operator.log_tail,
    )
    operator.kill()
    try:
        wait_for(
            "the Job to complete while no operator runs",
            lambda: any(j.metadata.name == jname and j.status.succeeded for j in cluster.jobs()),
            240,
        )
        yield _manifest_keys(store, name)
    finally:
        if operator.proc is None or operator.proc.poll() is not None:
            operator.start()


def test_bad_input_exits_65_and_fails_at_once_with_the_processors_code(
    cluster: Cluster,
    operator: OperatorProcess,
    pod_s3: PodS3,
    media: Media,
    jobs_collection: Any,
) -> None:
    # Fails if the Job's podFailurePolicy does not match the processor's exit code (a second Pod
    # runs and the job ends RetriesExhausted), or if the operator does not read the termination
    # message: an audio-only file is `no_video_stream`, not the fallback `not_a_video`.
    name = "rp-audio-only"
    _submit(cluster, pod_s3, name, media.audio_only)
    failed = wait_for("Failed", lambda: _finished(cluster, name), 180, on_timeout=operator.log_tail)
    assert failed["phase"] == "Failed", failed
    exits = _exits(cluster, name)
    assert [code for code, _ in exits] == [65], "a bad input must never get a second Pod"
    said = exits[0][1]
    assert said["code"] == ErrorCode.NO_VIDEO_STREAM.value
    assert failed["error"] == {"code": said["code"], "message": said["message"]}
    assert failed["attempts"] == 1
    assert {c["type"]: c for c in failed["conditions"]}["Failed"]["reason"] == "BadInput"
    (batch_job,) = [j for j in cluster.jobs() if j.metadata.name == job_name(name)]
    reasons = {c.reason for c in batch_job.status.conditions or [] if c.status == "True"}
    assert "PodFailurePolicy" in reasons, reasons
    assert _pod_count(cluster, name) == 1
    assert _output_listing(pod_s3, name) == []
    doc = _mongo(jobs_collection, name, "Failed")
    assert doc["error"] == failed["error"] and doc["attempts"] == 1


def test_retryable_exit_75_is_retried_and_the_last_message_is_reported(
    cluster: Cluster,
    operator: OperatorProcess,
    pod_s3: PodS3,
    jobs_collection: Any,
) -> None:
    # A source that S3 answers 404 for: the processor exits 75 (storage_unavailable) at once.
    # Fails if exit 75 is not retried (one Pod only, or BadInput), if the retry count is not
    # the backoff limit, or if the operator's error is not the last Pod's own message.
    name = "rp-no-source"
    _submit(cluster, pod_s3, name, None)
    failed = wait_for("Failed", lambda: _finished(cluster, name), 180, on_timeout=operator.log_tail)
    assert failed["phase"] == "Failed", failed
    exits = _exits(cluster, name)
    assert [code for code, _ in exits] == [75, 75], exits
    last = exits[-1][1]
    assert last["code"] == ErrorCode.STORAGE_UNAVAILABLE.value
    assert keys.source_key(name) in last["message"]
    assert failed["attempts"] == 2
    assert failed["error"] == {
        "code": last["code"],
        "message": f"failed after 2 attempt(s): {last['message']}",
    }
    assert {c["type"]: c for c in failed["conditions"]}["Failed"]["reason"] == "RetriesExhausted"
    doc = _mongo(jobs_collection, name, "Failed")
    assert doc["error"] == failed["error"] and doc["attempts"] == 2


def test_s3_outage_exits_75_is_retried_and_succeeds_once_s3_is_back(
    cluster: Cluster,
    operator: OperatorProcess,
    pod_s3: PodS3,
    media: Media,
    jobs_collection: Any,
) -> None:
    # The S3 server process is stopped while the first Pod runs: the processor retries its
    # download, gives up with exit 75, the Job starts a second Pod, S3 comes back, and the job
    # succeeds. Fails if an outage is treated as bad input (Failed at once), if the operator
    # records the failed attempt as the end of the job, or if the retry is not counted.
    name = "rp-s3-outage"
    _upload(pod_s3, name, media.clip)
    pod_s3.process.stop()
    try:
        # Created only now, so the first Pod certainly meets the outage.
        _create(cluster, pod_s3, name)
        first = wait_for(
            "the first Pod to give up",
            lambda: _exits(cluster, name),
            300,
            on_timeout=operator.log_tail,
        )
        ((exit_code, said),) = first
        assert exit_code == 75
        assert said["code"] == ErrorCode.STORAGE_UNAVAILABLE.value
        assert "failed after" in said["message"], said
        assert "X-Amz-Signature" not in said["message"]  # never a URL (a credential)
        # Still down: the job is being retried, not failed.
        retrying = wait_for(
            "the second attempt recorded",
            lambda: (s := cluster.status(name)).get("attempts") == 2 and s,
            120,
            on_timeout=operator.log_tail,
        )
        assert retrying["phase"] == "Running", retrying
        assert {c["type"]: c for c in retrying["conditions"]}["Running"]["reason"] == "Retrying"
        assert "error" not in retrying
    finally:
        pod_s3.process.start()
    done = wait_for(
        "Succeeded", lambda: _finished(cluster, name), 300, on_timeout=operator.log_tail
    )
    assert done["phase"] == "Succeeded", done
    assert [code for code, _ in _exits(cluster, name)] == [75, 0]
    assert done["attempts"] == 2
    assert "error" not in done
    assert done["outputs"] == _manifest_keys(pod_s3, name)
    assert keys.output_key(name, "240p.mp4") in done["outputs"]
    doc = _mongo(jobs_collection, name, "Succeeded")
    assert doc["attempts"] == 2 and doc["outputs"] == done["outputs"] and doc["error"] is None


def test_job_finished_and_deleted_while_the_operator_was_down_is_judged_by_its_manifest(
    cluster: Cluster,
    operator: OperatorProcess,
    pod_s3: PodS3,
    media: Media,
    jobs_collection: Any,
) -> None:
    # docs/operator.md: a Job that vanished while no operator ran (TTL, or deleted by hand) is
    # Succeeded if the processor's manifest exists. Fails if the restarted operator runs the job
    # again (a new Job appears), leaves it Running, or takes its outputs from anywhere but the
    # manifest.
    name = "rp-vanished"
    jname = job_name(name)
    with _finished_unobserved(cluster, operator, pod_s3, media.clip, name) as manifest:
        cluster.batch.delete_namespaced_job(
            jname, cluster.namespace, propagation_policy="Background"
        )
        wait_for("the Job gone", lambda: all(j.metadata.name != jname for j in cluster.jobs()))
        assert cluster.status(name)["phase"] == "Running"  # nobody has recorded the success
    done = wait_for(
        "Succeeded", lambda: _finished(cluster, name), 120, on_timeout=operator.log_tail
    )
    assert done["phase"] == "Succeeded", done
    assert done["outputs"] == manifest
    assert done["attempts"] == 1
    assert all(j.metadata.name != jname for j in cluster.jobs()), "the job was run again"
    doc = _mongo(jobs_collection, name, "Succeeded")
    assert doc["outputs"] == manifest


def test_s3_down_when_the_job_finishes_delays_success_until_the_manifest_is_read(
    cluster: Cluster,
    operator: OperatorProcess,
    pod_s3: PodS3,
    media: Media,
    jobs_collection: Any,
) -> None:
    # The manifest is the only record of what a job produced. Fails if the operator, unable to
    # read it (S3 down), records Succeeded without outputs (for good: the API would never offer
    # a download) instead of retrying until S3 is back.
    name = "rp-manifest-late"
    with _finished_unobserved(cluster, operator, pod_s3, media.clip, name) as manifest:
        pod_s3.process.stop()
        try:
            operator.start()
            # The restarted operator sees the finished Job and cannot read its manifest.
            failed = f"reconcile of {cluster.namespace}/{name} failed"
            wait_for("a failed manifest read", lambda: failed in operator.log_tail(400), 60)
            assert cluster.status(name)["phase"] == "Running", cluster.status(name)
        finally:
            pod_s3.process.start()
    done = wait_for(
        "Succeeded", lambda: _finished(cluster, name), 120, on_timeout=operator.log_tail
    )
    assert done["phase"] == "Succeeded", done
    assert done["outputs"] == manifest
    assert _mongo(jobs_collection, name, "Succeeded")["outputs"] == manifest
