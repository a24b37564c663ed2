"""The terminal client (`vidpipe`, cli/vidpipe_cli) run as a user runs it, against the real API.

Each command is a subprocess whose import path holds only the CLI package: it must work with
the public HTTP API alone. The API runs with the Kubernetes API down (jobs are accepted
unsubmitted), so a job's phase is moved by writing its record, as the operator would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import TEST_PART_SIZE, Api, ApiFactory, Media
from tests.utils.servers import S3Server, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
MiB = 1024 * 1024
# The CLI's peak RSS is reported by this wrapper (the same `main` the entry point calls). Not
# getrusage's ru_maxrss: on Linux it keeps the high-water mark across exec, so it would report
# the forking test process's size.
WRAPPER = (
    "import sys\n"
    "from vidpipe_cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "sys.stderr.write(f'\\npeak_kib={hwm}\\n')\n"
    "sys.exit(code)\n"
)


def vidpipe(api: Api, *args: str, key: str | None = None, **kwargs: Any) -> Any:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO / "cli"),
        "VIDPIPE_URL": api.url,
        "VIDPIPE_API_KEY": key if key is not None else api.keys["alice"],
    }
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def job(api: Api, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api.url}/v1/jobs/{job_id}", headers=api.headers(), timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_record(api: Api, job_id: str) -> dict[str, Any]:
    with api.mongo() as mc:
        record = mc[api.settings.mongo_database]["jobs"].find_one({"_id": job_id})
    assert record is not None
    return record


def set_job(api: Api, job_id: str, fields: dict[str, Any]) -> None:
    with api.mongo() as mc:
        mc[api.settings.mongo_database]["jobs"].update_one({"_id": job_id}, {"$set": fields})


def padded(media: Media, directory: Path, size: int) -> Path:
    """A real video padded with zeros to `size` bytes: ffprobe still reads it."""
    path = directory / "padded.mp4"
    data = media.ok.read_bytes()
    with path.open("wb") as f:
        f.write(data)
        f.truncate(size)
    return path


def test_upload_sends_the_file_with_its_options_and_prints_the_job_id(
    offline_api_factory: ApiFactory, media: Media, s3: S3Server
) -> None:
    # Fails if the CLI drops an option, the metadata or the file's name, or stores other bytes.
    with offline_api_factory() as api:
        done = vidpipe(
            api,
            "upload",
            str(media.ok),
            "--renditions",
            "144p",
            "--formats",
            "mp4",
            "--metadata",
            "project=cli",
        )
        assert done.returncode == 0, done.stderr
        job_id = done.stdout.strip()
        assert "upload ok.mp4" in done.stderr and "100%" in done.stderr
        detail = job(api, job_id)
        assert detail["filename"] == "ok.mp4" and detail["metadata"] == {"project": "cli"}
        record = stored_record(api, job_id)
        stored = s3.client().get_object(Bucket=api.settings.s3_bucket, Key=record["source"]["key"])
        assert stored["Body"].read() == media.ok.read_bytes()
        assert [r["name"] for r in record["options"]["renditions"]] == ["144p"]
        assert record["options"]["formats"] == ["mp4"]


@pytest.mark.parametrize("path", ["raw", "presigned"])
def test_a_large_upload_streams_with_bounded_memory(
    offline_api_factory: ApiFactory, media: Media, s3: S3Server, tmp_path: Path, path: str
) -> None:
    # Fails if the CLI holds the file (or more than a part) in memory, or if the presigned
    # multipart path loses, reorders or duplicates a part.
    size = 96 * MiB
    source = padded(media, tmp_path, size)
    threshold = str(size + 1 if path == "raw" else 1)
    with offline_api_factory(
        max_upload_bytes=size + MiB, part_size_bytes=TEST_PART_SIZE, upload_idle_timeout_seconds=120
    ) as api:
        done = vidpipe(
            api,
            "upload",
            str(source),
            "--renditions",
            "144p",
            "--formats",
            "hls",
            "--multipart-threshold",
            threshold,
        )
        assert done.returncode == 0, done.stderr
        record = stored_record(api, done.stdout.strip())
        assert record["uploaded_via"] == path
        assert record["options"]["formats"] == ["hls"]
        stored = s3.client().head_object(Bucket=api.settings.s3_bucket, Key=record["source"]["key"])
        assert stored["ContentLength"] == size
        # Either way S3 received the file in parts of the test size (streamed, not whole).
        assert stored["ETag"].strip('"').endswith(f"-{-(-size // TEST_PART_SIZE)}")
    peak_mib = int(done.stderr.rsplit("peak_kib=", 1)[1].split()[0]) / 1024
    # A CLI that read the file whole would peak above its 96 MiB; streaming stays near the
    # interpreter's own size plus one part.
    assert peak_mib < 72, f"peak RSS {peak_mib:.0f} MiB for a 96 MiB file"


def test_jobs_lists_the_callers_jobs(offline_api_factory: ApiFactory, media: Media) -> None:
    # Fails if the table or --json misses a job, or shows another owner's.
    with offline_api_factory() as api:
        mine = vidpipe(api, "upload", str(media.ok)).stdout.strip()
        theirs = vidpipe(api, "upload", str(media.ok), key=api.keys["bob"]).stdout.strip()
        assert mine and theirs
        table = vidpipe(api, "jobs")
        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines()[0].split() == [
            "ID",
            "PHASE",
            "PROGRESS",
            "CREATED",
            "FILE",
        ]
        assert mine in table.stdout and theirs not in table.stdout
        listed = json.loads(vidpipe(api, "jobs", "--json").stdout)
        assert [j["id"] for j in listed] == [mine]


def test_watch_follows_the_job_to_its_end_and_exits_by_its_outcome(
    offline_api_factory: ApiFactory, media: Media
) -> None:
    # Fails if watch stops before the job ends, misses progress, or exits 0 for a failed job.
    with offline_api_factory() as api:
        ok = vidpipe(api, "upload", str(media.ok)).stdout.strip()
        failed = vidpipe(api, "upload", str(media.ok)).stdout.strip()
        env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(REPO / "cli"),
            "VIDPIPE_URL": api.url,
            "VIDPIPE_API_KEY": api.keys["alice"],
        }
        watcher = subprocess.Popen(
            [sys.executable, "-m", "vidpipe_cli", "watch", ok, "--interval", "0.2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(1.0)
            assert watcher.poll() is None  # still Pending: watch must keep going
            set_job(api, ok, {"phase": "Running", "progress": 40})
            time.sleep(1.5)
            set_job(api, ok, {"phase": "Succeeded", "progress": 100})
            out, err = watcher.communicate(timeout=60)
        finally:
            watcher.kill()
        assert watcher.returncode == 0, err
        assert out.strip() == "Succeeded"
        assert "40%" in err and "Running" in err and "100%" in err
        set_job(
            api,
            failed,
            {"phase": "Failed", "error": {"code": "corrupt_media", "message": "cannot decode"}},
        )
        done = vidpipe(api, "watch", failed)
        assert done.returncode == 1
        assert "corrupt_media" in done.stderr and done.stdout.strip() == "Failed"


def test_refusals_and_an_unreachable_api_have_their_exit_codes(
    offline_api_factory: ApiFactory, media: Media
) -> None:
    # Fails if a refused key or a dead address exits 0, or the API's error code is not shown.
    with offline_api_factory() as api:
        refused = vidpipe(api, "jobs", key="vpk_0000_wrong")
        assert refused.returncode == 1 and "unauthenticated" in refused.stderr
        missing = vidpipe(api, "watch", "vj-nonexistent")
        assert missing.returncode == 1 and "job_not_found" in missing.stderr
        dead = Api(f"http://127.0.0.1:{free_port()}", api.app, api.settings, api.keys)
        unreachable = vidpipe(dead, "jobs")
        assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr
        nokey = vidpipe(api, "jobs", key="")
        assert nokey.returncode == 2 and "VIDPIPE_API_KEY" in nokey.stderr
