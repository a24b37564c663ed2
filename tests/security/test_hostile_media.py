"""Hostile media against the real API in the cluster (issue 11, findings 2-4): tiny files that
claim millions of samples, a codec outside the allow-list, an impossible pixel aspect ratio. Each
is refused with a bad-input code; the API Pod never restarts; nothing is left in S3 or MongoDB."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import object_keys
from tests.utils.hostile_media import claim_samples, tiny_mp4
from tests.utils.platform import Platform
from vidpipe.errors import BAD_INPUT_CODES, ErrorCode

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
