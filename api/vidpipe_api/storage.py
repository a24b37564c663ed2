"""S3 access: streamed multipart writes, presigned URLs, deletes; boto3 always off the event loop.

Every botocore failure that means "the store is not answering" becomes `StorageUnavailable`
(503); the request's own problems (bad part ETags, missing objects) are reported as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vidpipe_api.errors import EmptyUpload, InvalidRequest, StorageUnavailable, UploadTooLarge
from vidpipe_api.settings import Settings

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)
T = TypeVar("T")

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NoSuchUpload", "NotFound"})
_CLIENT_FAULT = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"})


def _is_not_found(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _NOT_FOUND


@dataclass(frozen=True)
class StoredObject:
    key: str
    last_modified: datetime


@dataclass(frozen=True)
class PendingUpload:
    """An incomplete multipart upload, as S3 lists it."""

    key: str
    upload_id: str
    initiated: datetime


class Storage:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        # Parts being sent at once by every StreamWriter of this process: each holds one part in
        # memory, so this (with the upload slots) bounds the process's upload memory.
        self.part_slots = asyncio.Semaphore(settings.max_parts_in_flight)
        self.part_buffers = PartBuffers(settings.part_size_bytes, settings.max_parts_in_flight)
        self.client = self._client(settings.s3_endpoint_url)
        # Presigned URLs for clients may need a public hostname; the server-side probe uses ours.
        self.public_client = (
            self._client(settings.s3_public_endpoint_url)
            if settings.s3_public_endpoint_url
            else self.client
        )

    def _client(self, endpoint: str | None) -> S3Client:
        s = self.settings
        key_id, secret = s.s3_credentials()
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=s.s3_region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(
                signature_version="s3v4",
                # No SHA-256 of every part in the signature (UNSIGNED-PAYLOAD): over plain HTTP
                # botocore hashes every body by default, and so the store verifies it. In a
                # profile of a 512 MiB upload that hash was a third of the API's CPU, and on two
                # cores the store's copy slowed the upload as much. Integrity in transit rests
                # on TCP (and TLS where the endpoint is https), as with the checksums below.
                s3={"addressing_style": "path", "payload_signing_enabled": False},
                connect_timeout=s.s3_connect_timeout_seconds,
                read_timeout=s.s3_read_timeout_seconds,
                retries={"max_attempts": s.s3_max_attempts, "mode": "standard"},
                max_pool_connections=64,
                # Checksums on every part cost CPU for little gain on a trusted store; only when
                # the service requires them.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one boto3 call in a worker thread, mapping outages to `StorageUnavailable`."""
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _CLIENT_FAULT:
                raise InvalidRequest(f"S3 rejected the parts: {code}") from exc
            if _is_not_found(exc):
                raise
            log.warning("s3 error", extra={"s3_code": code})
            raise StorageUnavailable() from exc
        except BotoCoreError as exc:
            log.warning("s3 unreachable", extra={"error": type(exc).__name__})
            raise StorageUnavailable() from exc

    # -- objects ---------------------------------------------------------------------------

    async def ping(self) -> None:
        await self.call(self.client.head_bucket, Bucket=self.bucket)

    async def head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(await self.call(self.client.head_object, Bucket=self.bucket, Key=key))
        except ClientError:
            return None

    async def delete(self, key: str) -> None:
        with contextlib.suppress(ClientError):  # already gone
            await self.call(self.client.delete_object, Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        keys = await self.list_keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            await self.call(
                self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch}
            )
        return len(keys)

    async def list_keys(self, prefix: str) -> list[str]:
        def _list() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            out: list[str] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                out.extend(obj["Key"] for obj in page.get("Contents", []) if "Key" in obj)
            return out

        return await self.call(_list)

    def presign_get(self, key: str, *, public: bool = True, filename: str | None = None) -> str:
        """Signing is local computation (no I/O), so it is safe on the event loop."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        client = self.public_client if public else self.client
        return client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=self.settings.presign_ttl_seconds
        )

    # -- presigned multipart sessions -------------------------------------------------------

    async def create_multipart(self, key: str, metadata: dict[str, str]) -> str:
        resp = await self.call(
            self.client.create_multipart_upload, Bucket=self.bucket, Key=key, Metadata=metadata
        )
        return resp["UploadId"]

    def presign_part(
        self, key: str, upload_id: str, part_number: int, content_length: int, ttl: int
    ) -> str:
        """A PUT URL for one part whose signature covers `Content-Length`.

        botocore signs every header present when presigning (SigV4 query auth), so the part's
        exact length is in `X-Amz-SignedHeaders`: S3 refuses a body of any other length (or a
        chunked body without the header) with a signature mismatch.
        """
        return self.public_client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": part_number,
                "ContentLength": content_length,
            },
            ExpiresIn=ttl,
        )

    async def complete_multipart(
        self, key: str, upload_id: str, parts: list[dict[str, Any]]
    ) -> None:
        await self.call(
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(ClientError):
            await self.call(
                self.client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id
            )

    async def list_pending_uploads(self, prefix: str) -> list[PendingUpload]:
        """Every incomplete multipart upload under `prefix` (for the reaper)."""

        def _list() -> list[PendingUpload]:
            paginator = self.client.get_paginator("list_multipart_uploads")
            out: list[PendingUpload] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for u in page.get("Uploads", []):
                    if "Key" in u and "UploadId" in u and "Initiated" in u:
                        out.append(PendingUpload(u["Key"], u["UploadId"], u["Initiated"]))
            return out

        return await self.call(_list)

    async def list_objects(self, prefix: str) -> list[StoredObject]:
        """Keys and modification times under `prefix` (for the reaper)."""

        def _list() -> list[StoredObject]:
            paginator = self.client.get_paginator("list_objects_v2")
            out: list[StoredObject] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if "Key" in obj and "LastModified" in obj:
                        out.append(StoredObject(obj["Key"], obj["LastModified"]))
            return out

        return await self.call(_list)

    def writer(self, key: str, metadata: dict[str, str], max_bytes: int) -> StreamWriter:
        return StreamWriter(self, key, metadata, max_bytes)


class PartBuffers:
    """Part-sized buffers kept for the next part instead of freed.

    A fresh 8 MiB buffer costs a page fault per 4 KiB page (glibc hands large blocks back to
    the kernel when they are freed): in a profile of a 512 MiB upload, allocating parts took
    the event loop more time than copying the bytes into them. At most `keep` idle buffers are
    kept (the parts in flight per process), so the process's peak memory is unchanged and its
    idle memory grows by at most `keep` parts after the first large uploads. A reused buffer
    still holds an earlier upload's bytes: a part is sent only once every byte of it has been
    written again, and a partial last part is trimmed to what was written (`StreamWriter._take`).
    """

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self.keep = keep
        self._idle: list[bytearray] = []

    def take(self) -> bytearray:
        return self._idle.pop() if self._idle else bytearray(self.size)

    def give(self, buffer: bytearray) -> None:
        # A trimmed last part is not part-sized any more: let it go.
        if len(buffer) == self.size and len(self._idle) < self.keep:
            self._idle.append(buffer)


class StreamWriter:
    """Buffers one part at a time and uploads parts in threads while the next one fills.

    Small uploads (under one part) become a single PutObject; larger ones a multipart upload
    with at most `part_concurrency` parts in flight, and at most `max_parts_in_flight` across
    every writer of the process (`Storage.part_slots`), so a writer holds its filling part plus
    its share of the process-wide parts in flight.
    """

    def __init__(self, storage: Storage, key: str, metadata: dict[str, str], max_bytes: int):
        self.storage = storage
        self.key = key
        self.metadata = metadata
        self.max_bytes = max_bytes
        self.part_size = storage.settings.part_size_bytes
        self.size = 0
        # The part being filled: allocated when its first byte arrives and filled in place (one
        # copy per byte), then handed to the upload as is; the next part gets a new buffer.
        self._part: bytearray | None = None
        self._buffered = 0
        self._upload_id: str | None = None
        self._parts: dict[int, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(storage.settings.part_concurrency)
        self._failure: BaseException | None = None
        self._next_part = 1
        self.stored = False

    async def write(self, data: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        self.size += len(data)
        if self.size > self.max_bytes:
            raise UploadTooLarge(self.max_bytes)
        view = memoryview(data)
        while view:
            if self._part is None:
                self._part = self.storage.part_buffers.take()
            n = min(len(view), self.part_size - self._buffered)
            self._part[self._buffered : self._buffered + n] = view[:n]
            self._buffered += n
            view = view[n:]
            if self._buffered == self.part_size:
                await self._flush_part(self._take())

    def _take(self) -> bytearray:
        """The part filled so far (trimmed to its bytes); the next write starts a new one."""
        part = self._part or bytearray()
        if self._buffered < len(part):
            del part[self._buffered :]  # only the last part: shrinks in place, no copy
        self._part, self._buffered = None, 0
        return part

    async def _flush_part(self, body: bytearray) -> None:
        s = self.storage
        if self._upload_id is None:
            self._upload_id = await s.create_multipart(self.key, self.metadata)
        number = self._next_part
        self._next_part += 1
        await self._slots.acquire()
        try:
            await s.part_slots.acquire()
        except BaseException:
            self._slots.release()
            raise
        task = asyncio.create_task(self._upload_part(number, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _upload_part(self, number: int, body: bytearray) -> None:
        s = self.storage
        try:
            resp = await s.call(
                s.client.upload_part,
                Bucket=s.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
            self._parts[number] = resp["ETag"]
        except BaseException as exc:
            self._failure = exc
        finally:
            # The worker thread is done with the body here (anyio waits for it even when this
            # task is cancelled), so the buffer can take the next part of any upload.
            s.part_buffers.give(body)
            s.part_slots.release()
            self._slots.release()

    async def finish(self) -> int:
        """Store the remainder and complete; returns the object size."""
        s = self.storage
        if self.size == 0:
            raise EmptyUpload()
        if self._upload_id is None:
            await s.call(
                s.client.put_object,
                Bucket=s.bucket,
                Key=self.key,
                Body=self._take(),
                Metadata=self.metadata,
            )
        else:
            if self._buffered:
                await self._flush_part(self._take())
            await asyncio.gather(*list(self._tasks))
            if self._failure is not None:
                raise self._failure
            parts = [{"PartNumber": n, "ETag": e} for n, e in sorted(self._parts.items())]
            await s.complete_multipart(self.key, self._upload_id, parts)
        self.stored = True
        return self.size

    async def abort(self) -> None:
        """Undo everything; shielded so a client disconnect cannot interrupt the cleanup."""
        with anyio.CancelScope(shield=True):
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            if self._part is not None:
                self.storage.part_buffers.give(self._part)
            self._part = None
            try:
                if self._upload_id is not None:
                    await self.storage.abort_multipart(self.key, self._upload_id)
                if self.stored:
                    await self.storage.delete(self.key)
            except StorageUnavailable:
                # The store is down: nothing we can undo now; an S3 lifecycle rule for
                # incomplete multipart uploads (documented) removes the leftovers.
                log.warning("could not abort upload", extra={"key": self.key})


def parts_for(size: int, part_size: int) -> int:
    return max(1, math.ceil(size / part_size))
