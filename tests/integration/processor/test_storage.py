"""S3 access against the real S3 server: parallel multipart both ways, listing, prefix cleanup,
and clear errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.utils.servers import S3Server
from vidpipe_processor.errors import StorageError
from vidpipe_processor.storage import Storage, StorageConfig, Upload

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture
def storage(s3: S3Server) -> Storage:
    return Storage.from_config(
        StorageConfig(
            endpoint_url=s3.endpoint_url,
            region=s3.region,
            access_key_id=s3.access_key,
            secret_access_key=s3.secret_key,
            max_concurrency=4,
            part_size_mib=5,  # the S3 minimum: a 12 MiB file moves in three parallel parts
        )
    )


def test_multipart_roundtrip_with_progress(storage: Storage, bucket: str, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(12 * MiB))
    small = tmp_path / "small.txt"
    small.write_text("hello")
    sent: list[int] = []
    storage.upload_all(
        bucket,
        [
            Upload(big, "outputs/j/big.bin", "video/mp4"),
            Upload(small, "outputs/j/s.txt", "text/plain"),
        ],
        on_bytes=sent.append,
    )
    assert sum(sent) == 12 * MiB + 5
    head = storage.client.head_object(Bucket=bucket, Key="outputs/j/big.bin")
    assert head["ContentType"] == "video/mp4"
    assert "-" in head["ETag"], "uploaded in parts"

    received: list[int] = []
    copy = tmp_path / "copy.bin"
    assert storage.size(bucket, "outputs/j/big.bin") == 12 * MiB
    storage.download(bucket, "outputs/j/big.bin", copy, on_bytes=received.append)
    assert sum(received) == 12 * MiB
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()

    assert storage.list_keys(bucket, "outputs/j/") == ["outputs/j/big.bin", "outputs/j/s.txt"]
    storage.put_bytes(bucket, "outputs/other/keep", b"x", "text/plain")
    assert storage.delete_prefix(bucket, "outputs/j/") == 2
    assert storage.list_keys(bucket, "outputs/") == ["outputs/other/keep"]
    assert storage.delete_keys(bucket, []) == 0


def test_missing_source_is_a_clear_storage_error(storage: Storage, bucket: str) -> None:
    with pytest.raises(StorageError, match=r"s3://.*/sources/nope/source does not exist"):
        storage.size(bucket, "sources/nope/source")


def test_unreachable_storage_is_retryable(tmp_path: Path) -> None:
    storage = Storage.from_config(
        StorageConfig(
            endpoint_url="http://127.0.0.1:9",
            access_key_id="x",
            secret_access_key="y",
            max_attempts=2,
        )
    )
    with pytest.raises(StorageError) as caught:
        storage.download("bucket", "key", tmp_path / "f")
    assert caught.value.code.value == "storage_unavailable"
