"""Run the processor as the Pod would (a `python -m vidpipe_processor` process configured by
environment variables) against the real S3 server, and inspect what it left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.utils.servers import REPO, S3Server
from vidpipe import keys

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


def environment(s3: S3Server, job_spec: dict[str, Any], tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIDPIPE_", "AWS_", "KUBERNETES_"))
    }
    return env | {
        "PYTHONPATH": PYTHONPATH,
        "VIDPIPE_JOB_SPEC": json.dumps(job_spec),
        "VIDPIPE_S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
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
