"""Part buffers are reused between uploads (storage.PartBuffers): no upload may ever store a byte
of an earlier one, against the real S3 server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.integration.api.conftest import base_settings
from tests.utils.servers import S3Server
from vidpipe_api.storage import Storage

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
PART = 5 * MiB


def test_a_reused_part_buffer_never_stores_an_earlier_uploads_bytes(
    s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """Fails if a shorter upload after a longer one stores bytes left in a reused buffer (a last
    part or a single PutObject sent untrimmed), or if any stored object differs from what was
    written; the pool check fails if buffers were not reused at all (nothing would be tested)."""
    settings = base_settings(
        s3,
        "mongodb://127.0.0.1:9/",  # never contacted: only the S3 side runs
        bucket,
        tmp_path / "kubeconfig",
        "unused",
        part_size_bytes=PART,
        max_upload_bytes=64 * MiB,
    )
    uploads = {
        # Two full parts go back to the pool, filled with 0xAA; the short third is dropped.
        "first": b"\xaa" * (2 * PART + 123),
        # Its second part is 77 bytes in a pooled buffer that still holds 0xAA.
        "second": os.urandom(PART + 77),
        # Under one part: one PutObject, again from a pooled buffer.
        "small": os.urandom(1000),
    }
    pooled: list[int] = []

    async def store_all() -> None:
        storage = Storage(settings)
        for key, data in uploads.items():
            pooled.append(len(storage.part_buffers._idle))
            writer = storage.writer(key, {}, settings.max_upload_bytes)
            # Chunks that do not divide the part size, as a socket delivers them.
            for start in range(0, len(data), 300_007):
                await writer.write(data[start : start + 300_007])
            assert await writer.finish() == len(data)

    asyncio.run(store_all())
    assert pooled[1:] == [2, 1], pooled
    client = s3.client()
    for key, data in uploads.items():
        stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert len(stored) == len(data), key
        assert stored == data, key
