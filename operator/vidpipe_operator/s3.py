"""S3 access the operator needs: read a job's manifest, delete the outputs of a cancelled or
failed job, and presign the per-object URLs that are a processor Pod's only access to S3.

boto3 is blocking, so every call that can touch the network runs in the operator's I/O thread
pool. Presigning is local (an HMAC over the request), no S3 round trip.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from vidpipe.keys import MANIFEST_NAME, output_key, output_prefix
from vidpipe_operator.offload import IOPool
from vidpipe_operator.settings import OperatorSettings

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

T = TypeVar("T")


def manifest_keys(job_id: str, manifest: Any) -> list[str]:
    """Output keys listed by a processor manifest.

    Accepted shapes: `{"outputs": [...]}` or a bare list, whose entries are keys, file names, or
    objects with a `key` or `name`; or `{"outputs": {name: {...}}}`. Anything outside the job's
    prefix is ignored: status must never point at another job's objects.
    """
    entries: Any = (
        manifest.get("outputs", manifest.get("files", []))
        if isinstance(manifest, dict)
        else manifest
    )
    if isinstance(entries, dict):
        entries = list(entries)
    prefix = output_prefix(job_id)
    keys: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        value = entry.get("key") or entry.get("name") if isinstance(entry, dict) else entry
        if not isinstance(value, str) or not value:
            continue
        key = value if value.startswith(prefix) else None
        if key is None and "/" not in value:
            key = output_key(job_id, value)
        if key and key != output_key(job_id, MANIFEST_NAME) and key not in keys:
            keys.append(key)
    return sorted(keys)


def manifest_facts(manifest: Any) -> dict[str, Any]:
    """What a manifest says about the media produced (for the job.succeeded event): its
    duration and each rendition's size. Fields of the wrong type are left out, not trusted."""
    if not isinstance(manifest, dict):
        return {}
    facts: dict[str, Any] = {}
    duration = manifest.get("durationSeconds")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        facts["durationSeconds"] = duration
    renditions = []
    outputs = manifest.get("outputs")
    for entry in outputs if isinstance(outputs, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("rendition"), str):
            continue
        fields = {k: entry.get(k) for k in ("width", "height", "size")}
        if all(isinstance(v, int) and not isinstance(v, bool) for v in fields.values()):
            renditions.append({"name": entry["rendition"], **fields})
    if renditions:
        facts["renditions"] = renditions
    return facts


class OutputStorage:
    def __init__(self, settings: OperatorSettings, pool: IOPool):
        access = settings.s3_access_key_id
        secret = settings.s3_secret_access_key
        self._s3: S3Client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=access.get_secret_value() if access else None,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                # One connection per I/O thread: no thread waits for another's connection.
                max_pool_connections=settings.io_threads,
            ),
        )
        # Presigned URLs name the endpoint the Pod reaches (the Host header is signed), so they
        # come from a client configured with that endpoint; SigV4, as the 7-day cap assumes.
        endpoint = settings.processor_endpoint
        self._presigner: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=settings.s3_region,
            aws_access_key_id=access.get_secret_value() if access else None,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(
                signature_version="s3v4",
                # S3-compatible servers (MinIO, versitygw, Ceph) are addressed by path.
                s3={"addressing_style": "path" if endpoint else "virtual"},
            ),
        )
        self.bucket = settings.s3_bucket
        self._pool = pool

    async def _run(self, fn: Callable[[], T]) -> T:
        return await self._pool.run(fn)

    def presign(self, method: str, bucket: str, key: str, seconds: int) -> str:
        """A URL allowing exactly `method` on `bucket/key` for `seconds` (no network)."""
        operation = {"GET": "get_object", "PUT": "put_object"}[method]
        url: str = self._presigner.generate_presigned_url(
            operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=seconds, HttpMethod=method
        )
        return url

    def _read_manifest(self, job_id: str) -> Any | None:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=output_key(job_id, MANIFEST_NAME))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise
        return json.loads(body["Body"].read())

    async def read_manifest(self, job_id: str) -> Any | None:
        """The parsed manifest, or None when the processor has not written it."""
        return await self._run(partial(self._read_manifest, job_id))

    def _delete_outputs(self, job_id: str) -> int:
        deleted = 0
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=output_prefix(job_id)):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", []) if "Key" in o]
            # One by one rather than DeleteObjects: small S3 servers (and some gateways) lack
            # the multi-object API, and a cancelled job has only a handful of objects.
            for obj in objects:
                self._s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
                deleted += 1
        return deleted

    async def delete_outputs(self, job_id: str) -> int:
        """Delete everything under the job's output prefix; returns how many objects went."""
        return await self._run(partial(self._delete_outputs, job_id))
