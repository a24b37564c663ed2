"""The processor's S3 access through presigned URLs, against the real S3 server (versitygw):
streamed transfers both ways, each URL good for its one key and method only, clear errors that
never carry a URL."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.processor.helpers import spec, write_access
from tests.utils.servers import S3Server
from vidpipe import keys
from vidpipe.models import VideoJobSpec
from vidpipe_processor.errors import StorageError
from vidpipe_processor.storage import JobAccess, ObjectURL, Storage, TransferConfig, Upload

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
JOB = "job-1"


def _storage(
    s3: S3Server, bucket: str, tmp_path: Path, seconds: int = 900, job_id: str = JOB
) -> tuple[Storage, dict[str, Any]]:
    job_spec = spec(job_id, bucket)
    path = tmp_path / f"access-{job_id}.json"
    document = write_access(s3, job_spec, path, seconds=seconds)
    access = JobAccess.load(path, VideoJobSpec.model_validate(job_spec))
    return Storage(access, TransferConfig(max_attempts=2, max_concurrency=4)), document


def _no_url(exc: BaseException) -> None:
    assert "X-Amz-" not in str(exc) and "http" not in str(exc), str(exc)


def test_streamed_roundtrip_with_progress(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    client = s3.client()
    source = os.urandom(7 * MiB + 123)
    client.put_object(Bucket=bucket, Key=keys.source_key(JOB), Body=source)
    storage, _ = _storage(s3, bucket, tmp_path)

    sizes: list[int] = []
    got: list[int] = []
    dest = tmp_path / "source"
    assert storage.download_source(dest, on_size=sizes.append, on_bytes=got.append) == len(source)
    assert sizes == [len(source)] and sum(got) == len(source)
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(source).digest()

    big = tmp_path / "720p.mp4"
    big.write_bytes(os.urandom(12 * MiB))
    vtt = tmp_path / "storyboard.vtt"
    vtt.write_text("WEBVTT\n")
    sent: list[int] = []
    written = storage.upload_all(
        [Upload(big, "720p.mp4", "video/mp4"), Upload(vtt, "storyboard.vtt", "text/vtt")],
        on_bytes=sent.append,
    )
    assert written == [keys.output_key(JOB, "720p.mp4"), keys.output_key(JOB, "storyboard.vtt")]
    assert sum(sent) == big.stat().st_size + vtt.stat().st_size
    head = client.head_object(Bucket=bucket, Key=keys.output_key(JOB, "720p.mp4"))
    assert (head["ContentLength"], head["ContentType"]) == (12 * MiB, "video/mp4")
    body = client.get_object(Bucket=bucket, Key=keys.output_key(JOB, "720p.mp4"))["Body"].read()
    assert body == big.read_bytes()
    assert storage.put_bytes(keys.MANIFEST_NAME, b"{}", "application/json") == keys.output_key(
        JOB, keys.MANIFEST_NAME
    )


def test_a_url_is_good_for_its_own_key_and_method_only(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key=keys.source_key("job-2"), Body=b"someone else's")
    _, document = _storage(s3, bucket, tmp_path)
    put_url = document["outputs"]["720p.mp4"]["url"]
    stolen = {
        # Another job's source, with this job's source signature.
        "read another source": (
            "GET",
            document["source"]["url"].replace(keys.source_key(JOB), keys.source_key("job-2")),
        ),
        # Outside the prefix, with a PUT signature of this job.
        "write outside the prefix": (
            "PUT",
            put_url.replace(keys.output_key(JOB, "720p.mp4"), keys.output_key("job-2", "x.mp4")),
        ),
        # A read with a write URL.
        "read with a PUT URL": ("GET", put_url),
    }
    for what, (method, url) in stolen.items():
        forged = Storage(
            JobAccess(
                source=ObjectURL("k", url),
                outputs={"720p.mp4": ObjectURL(keys.output_key(JOB, "720p.mp4"), url)},
            ),
            TransferConfig(max_attempts=1),
        )
        payload = tmp_path / "payload"
        payload.write_bytes(b"attacker")
        with pytest.raises(StorageError, match=r"refused: HTTP 403") as caught:
            if method == "GET":
                forged.download_source(tmp_path / "stolen")
            else:
                forged.upload_all([Upload(payload, "720p.mp4", "video/mp4")])
        _no_url(caught.value)
        assert not (tmp_path / "stolen").exists() or (tmp_path / "stolen").stat().st_size == 0, what
    listed = client.list_objects_v2(Bucket=bucket, Prefix="outputs/job-2/").get("KeyCount", 0)
    assert listed == 0


def test_an_expired_url_is_refused_with_a_hint(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    s3.client().put_object(Bucket=bucket, Key=keys.source_key(JOB), Body=b"x")
    storage, _ = _storage(s3, bucket, tmp_path, seconds=1)
    time.sleep(2.2)
    with pytest.raises(StorageError, match="may have expired") as caught:
        storage.download_source(tmp_path / "source")
    _no_url(caught.value)


def test_missing_source_is_a_clear_storage_error(s3: S3Server, bucket: str, tmp_path: Path) -> None:
    storage, _ = _storage(s3, bucket, tmp_path)
    with pytest.raises(StorageError, match=r"source object sources/job-1/source does not exist"):
        storage.download_source(tmp_path / "source")


def test_the_access_file_is_what_the_processor_trusts(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    _, document = _storage(s3, bucket, tmp_path)
    # One GET and one PUT per allowed output; nothing bucket-wide, no keys.
    assert set(document) == {"version", "jobId", "expiresAt", "source", "outputBucket", "outputs"}
    assert s3.secret_key not in json.dumps(document)
