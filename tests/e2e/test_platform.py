"""End to end, as a user drives it: the chart installed into the real local cluster, a real upload
over HTTP, a real transcode in a processor Job, outputs downloaded and checked with ffprobe.

The API is reached through its Service's ClusterIP, which kube-proxy routes from the host too.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pymongo
import pytest

from tests.utils.cluster import LocalCluster
from tests.utils.platform import BIN, CHART, Platform, installed, run
from vidpipe.keys import output_key, output_prefix

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

RELEASE = NAMESPACE = "vidpipe-e2e"


def kubectl(cluster: LocalCluster, *args: str) -> str:
    return run(str(BIN / "kubectl"), "-n", NAMESPACE, *args, cluster=cluster).stdout


def videojob(cluster: LocalCluster, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl(cluster, "get", "vj", name, "-o", "json"))
    return result


def make_video(path: Path, seconds: int, size: str = "640x360") -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds), "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-y", str(path)],
        check=True,
    )  # fmt: skip
    return path


def platform_s3(platform: Platform) -> S3Client:
    """The platform's S3 with the cluster's admin keys (the test looks where users cannot)."""
    env = platform.cluster.env
    return boto3.client(
        "s3",
        endpoint_url=platform.cluster.s3_endpoint_for_pods,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env.get("AWS_REGION", "us-east-1"),
    )


@pytest.fixture(scope="module")
def platform(cluster: LocalCluster) -> Iterator[Platform]:
    # Normally test_uninstall_removes_everything_but_the_crd uninstalls it before the end.
    with installed(cluster, RELEASE) as platform:
        yield platform


def test_chart_lints_and_rejects_bad_values(cluster: LocalCluster, tmp_path: Path) -> None:
    lint = run(str(BIN / "helm"), "lint", str(CHART), "--strict", cluster=cluster)
    assert "0 chart(s) failed" in lint.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("api:\n  replicas: two\njobs:\n  maxRunning: 0\n")
    result = run(
        str(BIN / "helm"), "template", "x", str(CHART), "-f", str(bad),
        cluster=cluster, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "/api/replicas" in result.stderr and "want integer" in result.stderr
    assert "/jobs/maxRunning" in result.stderr


def test_upload_is_transcoded_and_downloadable(platform: Platform, tmp_path: Path) -> None:
    source = make_video(tmp_path / "in.mp4", seconds=4)
    with platform.client() as http, source.open("rb") as body:
        response = http.put(
            "/v1/videos",
            content=body,
            params={"renditions": "360p,240p"},
            headers={"Content-Type": "video/mp4", "X-Filename": "holiday.mp4"},
        )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    # The operator picks it up promptly (a stalled start once hid behind the long timeout below).
    deadline = time.monotonic() + 30
    while not videojob(platform.cluster, job_id).get("status", {}).get("phase"):
        assert time.monotonic() < deadline, "the operator did not report a phase within 30 s"
        time.sleep(0.5)
    table = kubectl(platform.cluster, "get", "vj", job_id)
    assert table.split("\n")[0].split()[:3] == ["NAME", "PHASE", "PROGRESS"]
    assert job_id in table

    job = platform.wait_for_phase(job_id, {"Succeeded", "Failed"}, timeout=300)
    assert job["phase"] == "Succeeded", job
    assert job["progress"] == 100

    downloads = job["downloads"]
    heights = {}
    for name, url in downloads["renditions"].items():
        target = tmp_path / f"{name}.mp4"
        target.write_bytes(httpx.get(url, timeout=60).raise_for_status().content)
        probe = json.loads(
            subprocess.run(
                ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(target)],
                capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        video = next(s for s in probe["streams"] if s["codec_type"] == "video")
        assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
        heights[name] = video["height"]
    assert sorted(heights.values()) == [240, 360]
    poster = httpx.get(downloads["poster"], timeout=60).raise_for_status().content
    assert poster[:3] == b"\xff\xd8\xff"  # JPEG magic

    status = videojob(platform.cluster, job_id)["status"]
    assert status["phase"] == "Succeeded"
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        platform.cluster.mongo_url, serverSelectionTimeoutMS=5000
    )
    try:
        doc = mongo.vidpipe.jobs.find_one({"_id": job_id})
    finally:
        mongo.close()
    assert doc is not None
    assert doc["phase"] == status["phase"]
    assert sorted(doc["outputs"]) == sorted(status["outputs"])


def test_bad_upload_is_refused_and_creates_nothing(platform: Platform) -> None:
    with platform.client() as http:
        before = {j["id"] for j in http.get("/v1/jobs", params={"limit": 100}).json()["items"]}
        response = http.put(
            "/v1/videos",
            content=b"this is not a video\n" * 100,
            headers={"Content-Type": "video/mp4", "X-Filename": "fake.mp4"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "not_a_video"
        after = {j["id"] for j in http.get("/v1/jobs", params={"limit": 100}).json()["items"]}
    assert after == before
    names = kubectl(platform.cluster, "get", "vj", "-o", "name").split()
    assert all(n.split("/")[-1] in before for n in names)


def test_cancelled_job_ends_cancelled_without_outputs(platform: Platform, tmp_path: Path) -> None:
    source = make_video(tmp_path / "long.mp4", seconds=60, size="1280x720")
    with platform.client() as http, source.open("rb") as body:
        response = http.put(
            "/v1/videos",
            content=body,
            params={"renditions": "720p,480p"},
            headers={"Content-Type": "video/mp4"},
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        platform.wait_for_phase(job_id, {"Running"}, timeout=120)
        # Started for real: the processor itself reported progress (it read the source).
        deadline = time.monotonic() + 120
        while not http.get(f"/v1/jobs/{job_id}").json()["progress"]:
            assert time.monotonic() < deadline, "no progress reported while Running"
            time.sleep(1)
        # What a Pod stopped mid-upload leaves behind: cancel must remove it with the rest.
        s3, bucket = platform_s3(platform), platform.cluster.env["VIDPIPE_S3_BUCKET"]
        s3.put_object(Bucket=bucket, Key=output_key(job_id, "720p.mp4"), Body=b"partial")
        assert http.post(f"/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    job = platform.wait_for_phase(job_id, {"Cancelled", "Succeeded", "Failed"}, timeout=120)
    assert job["phase"] == "Cancelled", job
    # The operator records Cancelled, then deletes the prefix (and sweeps it again once the Pods
    # are gone). Fails if anything is left under the job's outputs prefix after that.
    deadline = time.monotonic() + 60
    while (listed := s3.list_objects_v2(Bucket=bucket, Prefix=output_prefix(job_id)))["KeyCount"]:
        assert time.monotonic() < deadline, [o["Key"] for o in listed["Contents"]]
        time.sleep(1)
    with platform.client() as http:
        assert not http.get(f"/v1/jobs/{job_id}").json()["downloads"]["renditions"]
    # The Job's own name (vj-<id>), as its Pods are labelled: a selector on the job id matched
    # nothing, so this check once passed whatever cancel did. It fails if a Pod outlives cancel.
    job_name = videojob(platform.cluster, job_id)["status"]["jobName"]
    selector = f"batch.kubernetes.io/job-name={job_name}"
    deadline = time.monotonic() + 60
    pods = kubectl(platform.cluster, "get", "pods", "-l", selector, "-o", "name")
    while pods.strip() and time.monotonic() < deadline:
        time.sleep(1)
        pods = kubectl(platform.cluster, "get", "pods", "-l", selector, "-o", "name")
    assert not pods.strip()


def test_helm_test_passes(platform: Platform) -> None:
    result = run(
        str(BIN / "helm"), "test", RELEASE, "-n", NAMESPACE, "--timeout", "5m",
        cluster=platform.cluster, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Phase:          Succeeded" in result.stdout


def test_uninstall_removes_everything_but_the_crd(platform: Platform) -> None:
    helm = str(BIN / "helm")
    run(helm, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", cluster=platform.cluster)
    left = kubectl(
        platform.cluster, "get", "deploy,svc,sa,role,rolebinding,pdb",
        "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name",
    )  # fmt: skip
    assert left.strip() == ""
    crd = run(
        str(BIN / "kubectl"), "get", "crd", "videojobs.media.vidpipe.io", "-o", "name",
        cluster=platform.cluster,
    )  # fmt: skip
    assert crd.stdout.strip().endswith("/videojobs.media.vidpipe.io")
