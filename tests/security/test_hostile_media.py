"""Hostile media against the real API in the cluster (issue 11, findings 2-4): tiny files that
claim millions of samples, a codec outside the allow-list, an impossible pixel aspect ratio. Each
is refused with a bad-input code; the API Pod never restarts; nothing is left in S3 or MongoDB."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import object_keys
from tests.utils.hostile_media import claim_samples, tiny_mp4
from tests.utils.platform import Platform
from vidpipe.constants import API_VERSION, KIND
from vidpipe.errors import BAD_INPUT_CODES, ErrorCode
from vidpipe.exitcodes import BAD_INPUT
from vidpipe.keys import source_key

pytestmark = pytest.mark.security


def _ffmpeg(out: Path, *args: str) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
         "-t", "1", *args, "-y", str(out)],
        check=True,
        timeout=60,
    )  # fmt: skip
    return out


def _hostile(tmp_path: Path, kind: str) -> Path:
    if kind.startswith("claims-"):
        samples = int(kind.removeprefix("claims-"))
        return claim_samples(tiny_mp4(tmp_path / "tiny.mp4"), tmp_path / f"{kind}.mp4", samples)
    if kind == "cinepak":
        return _ffmpeg(tmp_path / "cinepak.avi", "-c:v", "cinepak")
    if kind == "sar-8-1":
        return _ffmpeg(tmp_path / "sar.mp4", "-vf", "setsar=8", "-c:v", "libx264")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "status", "codes"),
    [
        # libavformat would index 5 M / 20 M entries (225 MiB / ~1 GB); the sandbox bounds it and
        # the policy refuses a stream with no decodable picture.
        ("claims-5000000", 422, {ErrorCode.CORRUPT_MEDIA, ErrorCode.MEDIA_TOO_COMPLEX}),
        ("claims-20000000", 422, {ErrorCode.CORRUPT_MEDIA, ErrorCode.MEDIA_TOO_COMPLEX}),
        ("cinepak", 415, {ErrorCode.UNSUPPORTED_CODEC}),
        ("sar-8-1", 422, {ErrorCode.CORRUPT_MEDIA, ErrorCode.RESOLUTION_LIMIT_EXCEEDED}),
    ],
)
def test_hostile_upload_is_refused_and_leaves_nothing(
    platform: Platform,
    tenant: str,
    s3: Any,
    tmp_path: Path,
    kind: str,
    status: int,
    codes: set[ErrorCode],
) -> None:
    bucket = platform.cluster.env["VIDPIPE_S3_BUCKET"]
    before = object_keys(s3, bucket)
    restarts = platform.api_restarts()
    media = _hostile(tmp_path, kind)
    with platform.client(tenant) as http:
        with media.open("rb") as body:
            response = http.put("/v1/videos", content=body, headers={"Content-Type": "video/mp4"})
        jobs = http.get("/v1/jobs").json()
    assert response.status_code == status, response.text
    code = ErrorCode(response.json()["code"])
    assert code in codes and code in BAD_INPUT_CODES, response.text
    # Fails if the refused source (or anything else) stayed in the bucket or became a job.
    assert object_keys(s3, bucket) - before == set()
    assert jobs["items"] == [], jobs
    assert platform.api_restarts() == restarts


def test_a_corrupt_source_that_bypasses_the_api_fails_once_and_is_not_retried(
    platform: Platform, s3: Any, tmp_path: Path
) -> None:
    """The processor judges the file again (the API may be bypassed or its limits differ): the
    crafted 5 M-sample MP4 ends the job Failed with a bad-input code after one attempt (exit 65;
    once it was exit 75 and retried to the backoff limit)."""
    job_id = f"sec-corrupt-{uuid.uuid4().hex[:8]}"
    crafted = claim_samples(tiny_mp4(tmp_path / "tiny.mp4"), tmp_path / "c.mp4", 5_000_000)
    bucket = platform.cluster.env["VIDPIPE_S3_BUCKET"]
    key = source_key(job_id)
    s3.upload_file(str(crafted), bucket, key)
    manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": job_id, "namespace": platform.namespace},
        "spec": {
            "jobId": job_id,
            "owner": "sec-bypass",
            "source": {"bucket": bucket, "key": key},
            "outputs": {"renditions": [{"name": "240p", "height": 240}]},
        },
    }
    manifest_path = tmp_path / "vj.json"
    manifest_path.write_text(json.dumps(manifest))
    platform.kubectl("apply", "-f", str(manifest_path))
    try:
        deadline = time.monotonic() + 180
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = platform.get("vj", job_id).get("status") or {}
            if status.get("phase") in {"Succeeded", "Failed"}:
                break
            time.sleep(1)
        assert status.get("phase") == "Failed", status
        assert ErrorCode(status["error"]["code"]) in BAD_INPUT_CODES, status
        # Fails if the failure was classed retryable: the Job would start more Pods.
        assert status["attempts"] == 1, status
        pods = platform.get("pods", "-l", f"batch.kubernetes.io/job-name={status['jobName']}")
        assert len(pods["items"]) == 1, [p["metadata"]["name"] for p in pods["items"]]
        terminated = pods["items"][0]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == BAD_INPUT
    finally:
        platform.kubectl("delete", "vj", job_id, "--wait=false", check=False)
