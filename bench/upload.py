"""Upload benchmark: 1 GiB through the API versus boto3 `upload_fileobj` to the same S3 server.

    .venv/bin/python bench/upload.py [--size-mib 1024] [--form]

Starts versitygw and FerretDB (as the tests do) and the API as a real uvicorn subprocess, then
reports throughput of both paths, their ratio (goal >= 0.80) and the API's peak RSS growth during
the upload (goal < 100 MiB, from /proc/<pid>/status: VmHWM after the upload minus VmRSS before,
with the high-water mark reset through /proc/<pid>/clear_refs).

The file is a real 1 s video padded with zeros to the size, so the API's validation (ffprobe
over a presigned URL) runs for real; the probe time is measured separately and reported so
the ratio can be read with and without it. The Kubernetes API is a dead address here: the
VideoJob creation fails fast and the job waits for the reconciler, which is not what we measure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "common"), str(REPO / "api"), str(REPO)]

from tests.utils.servers import free_port, mongo_server, s3_server, wait_for_port  # noqa: E402

from vidpipe_api.auth import key_document  # noqa: E402
from vidpipe_api.db import now  # noqa: E402

MiB = 1024 * 1024


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def make_video(path: Path, size: int) -> None:
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=duration=1:size=320x240:rate=25",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    with path.open("r+b") as f:
        f.truncate(size)  # zeros after the MP4 boxes; ffprobe reads the real video


def chunks(path: Path, size: int = MiB) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(size):
            yield block


def boto_upload(s3c: Any, bucket: str, video: Path) -> float:
    started = time.perf_counter()
    with video.open("rb") as f:
        s3c.upload_fileobj(f, bucket, "bench/raw-upload")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--form", action="store_true", help="also POST the multipart form")
    args = parser.parse_args()
    size = args.size_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="vidpipe-bench-"))
    video = work / "big.mp4"
    make_video(video, size)

    (work / "s3").mkdir()
    (work / "mongo").mkdir()
    with s3_server(work / "s3") as s3, mongo_server(work / "mongo") as mongo_url:
        bucket = "bench"
        s3c = s3.client()
        s3c.create_bucket(Bucket=bucket)
        key, doc = key_document("bench", False, now())
        import pymongo

        with pymongo.MongoClient[dict[str, Any]](mongo_url) as mc:
            mc["bench"]["api_keys"].insert_one(doc)
        dead = work / "dead.kubeconfig"
        dead.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "d", "cluster": {"server": f"http://127.0.0.1:{free_port()}"}}
                    ],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "d", "context": {"cluster": "d", "user": "u"}}],
                    "current-context": "d",
                }
            )
        )
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("common", "api")),
            "VIDPIPE_API_S3_ENDPOINT_URL": s3.endpoint_url,
            "VIDPIPE_API_S3_ACCESS_KEY": s3.access_key,
            "VIDPIPE_API_S3_SECRET_KEY": s3.secret_key,
            "VIDPIPE_API_S3_BUCKET": bucket,
            "VIDPIPE_API_MONGO_URL": mongo_url,
            "VIDPIPE_API_MONGO_DATABASE": "bench",
            "VIDPIPE_API_KUBECONFIG": str(dead),
            "VIDPIPE_API_KUBE_TIMEOUT_SECONDS": "1",
            "VIDPIPE_API_MAX_UPLOAD_BYTES": str(size + MiB),
            "VIDPIPE_API_RECONCILE_INTERVAL_SECONDS": "0",
            "VIDPIPE_API_LOG_LEVEL": "WARNING",
            "VIDPIPE_API_PART_CONCURRENCY": os.environ.get("BENCH_PART_CONCURRENCY", "4"),
        }
        argv = [
            sys.executable, "-m", "uvicorn", "--factory", "vidpipe_api.main:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-access-log",
        ]  # fmt: skip
        api = subprocess.Popen(argv, env=env)
        try:
            wait_for_port(port, api)
            base = f"http://127.0.0.1:{port}"
            headers = {"Authorization": f"Bearer {key}"}
            boto_before = boto_upload(s3c, bucket, video)
            with httpx.Client(base_url=base, timeout=600) as http:
                # Warm up (imports, connection pools, first probe) before the baseline.
                small = work / "small.mp4"
                make_video(small, 2 * MiB)
                warm = http.put(
                    "/v1/videos",
                    headers={**headers, "Content-Type": "video/mp4"},
                    content=small.read_bytes(),
                )
                assert warm.status_code == 202, warm.text
                Path(f"/proc/{api.pid}/clear_refs").write_text("5")
                rss_before = status_kib(api.pid, "VmRSS")

                started = time.perf_counter()
                resp = http.put(
                    "/v1/videos",
                    headers={
                        **headers,
                        "Content-Type": "video/mp4",
                        "Content-Length": str(size),
                    },
                    content=chunks(video),
                )
                api_seconds = time.perf_counter() - started
                assert resp.status_code == 202, resp.text
                hwm = status_kib(api.pid, "VmHWM")
                job_id = resp.json()["id"]
                form_seconds = None
                if args.form:
                    started = time.perf_counter()
                    with video.open("rb") as f:
                        form = http.post(
                            "/v1/videos",
                            headers=headers,
                            files={"file": ("big.mp4", f, "video/mp4")},
                        )
                    form_seconds = time.perf_counter() - started
                    assert form.status_code == 202, form.text
                    hwm = max(hwm, status_kib(api.pid, "VmHWM"))

            # Validation alone, as the API runs it, on the object just stored.
            from botocore.config import Config

            from vidpipe.probe import ProbeLimits, probe

            signer = boto3.client(
                "s3",
                endpoint_url=s3.endpoint_url,
                aws_access_key_id=s3.access_key,
                aws_secret_access_key=s3.secret_key,
                region_name=s3.region,
                config=Config(signature_version="s3v4"),
            )
            url = signer.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": f"sources/{job_id}/source"}
            )
            started = time.perf_counter()
            probe(url, ProbeLimits(), network=True)
            probe_seconds = time.perf_counter() - started

            boto_after = boto_upload(s3c, bucket, video)
            # Disk writeback and neighbours make single runs noisy: boto3 runs before and
            # after the API upload and the faster of the two is the reference.
            boto_seconds = min(boto_before, boto_after)
        finally:
            api.terminate()
            api.wait(timeout=20)

    mib = size / MiB
    api_rate, boto_rate = mib / api_seconds, mib / boto_seconds
    stream_rate = mib / max(api_seconds - probe_seconds, 1e-6)
    growth = (hwm - rss_before) / 1024
    print(f"file: {mib:.0f} MiB (real video padded), {os.cpu_count()} CPUs")
    print(
        f"boto3 upload_fileobj : {boto_seconds:6.2f} s  {boto_rate:7.1f} MiB/s (best of 2:"
        f" {boto_before:.2f} s before, {boto_after:.2f} s after)"
    )
    print(f"API PUT /v1/videos   : {api_seconds:6.2f} s  {api_rate:7.1f} MiB/s (incl. validation)")
    print(f"  of which ffprobe   : {probe_seconds:6.2f} s")
    if form_seconds is not None:
        print(f"API POST /v1/videos  : {form_seconds:6.2f} s  {mib / form_seconds:7.1f} MiB/s")
    ratio, ratio_stream = api_rate / boto_rate, stream_rate / boto_rate
    print(f"ratio API/boto3      : {ratio:.2f} (without probe {ratio_stream:.2f})")
    print(f"API RSS before       : {rss_before / 1024:.1f} MiB, peak growth {growth:.1f} MiB")
    ok = api_rate / boto_rate >= 0.8 and growth < 100
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
