"""S3 access for the processor: parallel multipart transfers, retries, and prefix cleanup.

boto3's transfer manager splits big objects into parts moved by a thread pool (download and
upload alike); botocore's "standard" retry mode retries throttling, 5xx and connection errors with
exponential backoff and jitter before anything here sees an error. What is left is a StorageError,
which the processor treats as retryable: the next Pod starts the job over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import (
    RetriesExceededError,
    S3DownloadFailedError,
    S3UploadFailedError,
)
from s3transfer.subscribers import BaseSubscriber

from vidpipe_processor.errors import StorageError

if TYPE_CHECKING:
    from s3transfer.manager import TransferManager
    from types_boto3_s3 import S3Client

log = logging.getLogger(__name__)

MiB = 1024 * 1024
_TRANSFER_ERRORS = (
    BotoCoreError,
    ClientError,
    RetriesExceededError,
    S3DownloadFailedError,
    S3UploadFailedError,
    OSError,
)


@dataclass(frozen=True)
class StorageConfig:
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    max_attempts: int = 10
    max_concurrency: int = 8
    part_size_mib: int = 8


@dataclass(frozen=True)
class Upload:
    path: Path
    key: str
    content_type: str


class _Progress(BaseSubscriber):
    def __init__(self, on_bytes: Callable[[int], None]) -> None:
        self._on_bytes = on_bytes

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self._on_bytes(bytes_transferred)


class Storage:
    def __init__(self, client: S3Client, transfer: TransferConfig) -> None:
        self.client = client
        self._transfer = transfer

    @classmethod
    def from_config(cls, config: StorageConfig) -> Storage:
        client = boto3.client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            # None falls back to boto3's chain (web identity, instance profile...).
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            config=Config(
                retries={"mode": "standard", "max_attempts": config.max_attempts},
                connect_timeout=10,
                read_timeout=120,
                max_pool_connections=config.max_concurrency + 2,
                # S3-compatible servers (MinIO, versitygw, Ceph) are addressed by path.
                s3={"addressing_style": "path" if config.endpoint_url else "auto"},
            ),
        )
        transfer = TransferConfig(
            multipart_threshold=config.part_size_mib * MiB,
            multipart_chunksize=config.part_size_mib * MiB,
            max_concurrency=config.max_concurrency,
            use_threads=True,
        )
        return cls(client, transfer)

    @contextmanager
    def _manager(self, action: str) -> Iterator[TransferManager]:
        try:
            # On an exception (SIGTERM included) the manager cancels the transfers in flight.
            with create_transfer_manager(self.client, self._transfer) as manager:
                yield manager
        except _TRANSFER_ERRORS as exc:
            raise StorageError(f"{action} failed: {_describe(exc)}") from exc

    def size(self, bucket: str, key: str) -> int:
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                raise StorageError(f"the source object s3://{bucket}/{key} does not exist") from exc
            raise StorageError(f"reading s3://{bucket}/{key} failed: {_describe(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"reading s3://{bucket}/{key} failed: {_describe(exc)}") from exc
        return int(head["ContentLength"])

    def download(
        self, bucket: str, key: str, dest: Path, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        subscribers = [_Progress(on_bytes)] if on_bytes else None
        with self._manager(f"downloading s3://{bucket}/{key}") as manager:
            manager.download(bucket, key, str(dest), subscribers=subscribers).result()

    def upload_all(
        self, bucket: str, uploads: Iterable[Upload], on_bytes: Callable[[int], None] | None = None
    ) -> None:
        """Upload every file at once: small files in parallel, big ones in parallel parts."""
        subscribers = [_Progress(on_bytes)] if on_bytes else None
        with self._manager(f"uploading to s3://{bucket}") as manager:
            futures = [
                manager.upload(
                    str(u.path),
                    bucket,
                    u.key,
                    extra_args={"ContentType": u.content_type},
                    subscribers=subscribers,
                )
                for u in uploads
            ]
            for future in futures:
                future.result()

    def put_bytes(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"writing s3://{bucket}/{key} failed: {_describe(exc)}") from exc

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                keys += [obj["Key"] for obj in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"listing s3://{bucket}/{prefix} failed: {_describe(exc)}") from exc
        return keys

    def delete_keys(self, bucket: str, keys: Iterable[str]) -> int:
        pending = list(keys)
        deleted = 0
        try:
            for start in range(0, len(pending), 1000):  # the DeleteObjects limit
                batch = pending[start : start + 1000]
                result = self.client.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
                errors = result.get("Errors", [])
                if errors:
                    raise StorageError(
                        f"deleting {len(errors)} objects in s3://{bucket} failed: "
                        f"{errors[0].get('Code')} {errors[0].get('Message')}"
                    )
                deleted += len(batch)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"deleting from s3://{bucket} failed: {_describe(exc)}") from exc
        return deleted

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        return self.delete_keys(bucket, self.list_keys(bucket, prefix))


def _status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
