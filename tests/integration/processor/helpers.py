"""Run the processor as the Pod would (a `python -m vidpipe_processor` process configured by
environment variables and an access file of presigned URLs made by the operator's own code)
against the real S3 server, and inspect what it left behind. The process gets no S3 keys."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tests.utils.servers import REPO, S3Server
from vidpipe import keys
from vidpipe.models import VideoJobSpec
from vidpipe_operator.access import access_document
from vidpipe_operator.offload import IOPool
from vidpipe_operator.s3 import OutputStorage
from vidpipe_operator.settings import OperatorSettings

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

PYTHONPATH = os.pathsep.join(str(REPO / p) for p in ("common", "processor"))


@dataclass(frozen=True)
class Run:
    returncode: int
    termination: dict[str, Any]
    logs: str

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.splitlines() if line.startswith("{")]


def spec(job_id: str, bucket: str, **outputs: Any) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "owner": "tester",
        "source": {"bucket": bucket, "key": keys.source_key(job_id)},
        "outputs": outputs,
    }


def presigner(s3: S3Server, endpoint: str | None = None) -> OutputStorage:
    """The operator's S3 adapter for this server (presigning needs no network)."""
    settings = OperatorSettings(
        s3_endpoint_url=s3.endpoint_url,
        processor_s3_endpoint_url=endpoint,
        s3_access_key_id=s3.access_key,
        s3_secret_access_key=s3.secret_key,
        s3_region=s3.region,
    )
    return OutputStorage(settings, IOPool(1, "test-s3"))


def write_access(
    s3: S3Server,
    job_spec: dict[str, Any],
    path: Path,
    bucket: str | None = None,
    seconds: int = 900,
) -> dict[str, Any]:
    """What the operator puts in the job's Secret, written where the Pod would mount it."""
    spec = VideoJobSpec.model_validate(job_spec)
    bucket = bucket or spec.source.bucket
    document = access_document(spec, bucket, presigner(s3).presign, seconds, datetime.now(UTC))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return document


def environment(s3: S3Server, job_spec: dict[str, Any], tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIDPIPE_", "AWS_", "KUBERNETES_"))
    }
    access = tmp / "secret" / "access.json"
    # A spec the operator could never have accepted gets no access file: the processor must
    # refuse it on its own.
    with contextlib.suppress(ValidationError):
        write_access(s3, job_spec, access, extra.get("VIDPIPE_OUTPUT_BUCKET"))
    return env | {
        "PYTHONPATH": PYTHONPATH,
        "VIDPIPE_JOB_SPEC": json.dumps(job_spec),
        "VIDPIPE_ACCESS_FILE": str(access),
        "VIDPIPE_WORK_DIR": str(tmp / "work"),
        "VIDPIPE_TERMINATION_LOG": str(tmp / "termination-log"),
        **extra,
    }


def start(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vidpipe_processor"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], tmp: Path, timeout: float = 120) -> Run:
    _, logs = process.communicate(timeout=timeout)
    termination = tmp / "termination-log"
    body = json.loads(termination.read_text()) if termination.exists() else {}
    return Run(process.returncode, body, logs)


def run_processor(
    s3: S3Server,
    bucket: str,
    source: Path,
    tmp: Path,
    *,
    job_id: str = "job-1",
    outputs: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    s3.client().upload_file(str(source), bucket, keys.source_key(job_id))
    job_spec = spec(job_id, bucket, **(outputs or {}))
    process = start(environment(s3, job_spec, tmp, **(env or {})), tmp)
    return finish(process, tmp)


def output_keys(client: S3Client, bucket: str, job_id: str = "job-1") -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=keys.output_prefix(job_id)
    )
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def download_outputs(
    client: S3Client, bucket: str, dest: Path, job_id: str = "job-1"
) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for key in output_keys(client, bucket, job_id):
        path = dest / key.rsplit("/", 1)[-1]
        client.download_file(bucket, key, str(path))
        files[path.name] = path
    return files


def ffprobe(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         str(path)],
        capture_output=True,
        check=True,
        timeout=30,
    )  # fmt: skip
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def top_level_atoms(path: Path) -> list[str]:
    """The MP4 box types at the top level, in file order (`moov` before `mdat` = faststart)."""
    atoms: list[str] = []
    with path.open("rb") as handle:
        while header := handle.read(8):
            if len(header) < 8:
                break
            size = int.from_bytes(header[:4], "big")
            atoms.append(header[4:8].decode("latin-1"))
            if size == 1:
                size = int.from_bytes(handle.read(8), "big")
                handle.seek(size - 16, 1)
            elif size == 0:
                break
            else:
                handle.seek(size - 8, 1)
    return atoms
