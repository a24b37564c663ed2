"""A presigned upload's completion crashes half-way; the client retries `complete` elsewhere.

The completion runs in a real API process (uvicorn) that the test kills with SIGKILL, as an OOM
kill or a node loss would, at three points: before S3 assembled the parts (the request held in a
TCP relay in front of the real S3 server), after S3 assembled them (the answer held), and after
the job was recorded (the Kubernetes API never answering). What it leaves is real: its lock in
MongoDB, an open or completed multipart upload in S3, a job record. The retry goes to another
app on the same MongoDB, S3 and cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from pydantic import AliasChoices, SecretStr
from pymongo import MongoClient

from tests.integration.api.conftest import REPO, Kube, Media, base_settings, make_keys
from tests.integration.api.test_uploads import job_docs
from tests.utils.servers import S3Server, free_port, wait_for_port
from tests.utils.tcpproxy import Relay, TcpProxy
from vidpipe.keys import source_key
from vidpipe_api.settings import Settings

pytestmark = pytest.mark.integration

# The retrying app's lock grace (REAPER_GRACE_SECONDS): long enough that its first retry comes
# while the crashed completion's lock is still fresh, even on a busy machine.
GRACE = 20


def _completing(relay: Relay) -> bool:
    """S3 CompleteMultipartUpload: POST /bucket/key?uploadId=..."""
    return relay.method == "POST" and "uploadId=" in relay.request_line


@contextlib.contextmanager
def black_hole(dead_kubeconfig: Path, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig whose API server accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        config = yaml.safe_load(dead_kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
        path = tmp_path / "black-hole.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        yield path


@contextlib.contextmanager
def api_process(settings: Settings, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The API as its own process, configured through its environment like the Pod."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDPIPE_")}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None:
            text = value if isinstance(value, str | Path) else json.dumps(value)
            # Shared settings (vidpipe.settings) are read first from their VIDPIPE_* name.
            alias = field.validation_alias
            var = f"VIDPIPE_API_{name.upper()}"
            if isinstance(alias, AliasChoices):
                var = str(alias.choices[0])
            env[var] = str(text)
    env["PYTHONPATH"] = os.pathsep.join(str(REPO / p) for p in ("common", "api"))
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--factory", "vidpipe_api.main:create_app",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def wait_until(what: str, check: Callable[[], Any], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert proc.poll() is None, f"the API exited before {what}"
        assert time.monotonic() < deadline, f"no {what} after 60 s"
        time.sleep(0.05)


@pytest.mark.parametrize("crash", ["before_assembly", "after_assembly", "after_record"])
def test_a_retried_completion_finishes_what_a_crashed_one_left(
    crash: str,
    s3: S3Server,
    mongo_url: str,
    api_bucket: str,
    kube: Kube,
    api_factory: Any,
    media: Media,
    dead_kubeconfig: Path,
    tmp_path: Path,
) -> None:
    data = media.ok.read_bytes()
    database = f"api{uuid.uuid4().hex[:10]}"
    target = urlsplit(s3.endpoint_url)
    relay = TcpProxy((target.hostname or "127.0.0.1", target.port or 80))
    with relay.running(), black_hole(dead_kubeconfig, tmp_path) as kubeconfig:
        settings = base_settings(
            replace(s3, endpoint_url=relay.url),
            mongo_url,
            api_bucket,
            kubeconfig,
            kube.namespace,
            mongo_database=database,
            kube_timeout_seconds=300,
        )
        key_of = make_keys(mongo_url, database, {"alice": False})
        headers = {"Authorization": f"Bearer {key_of['alice']}"}
        with api_process(settings, tmp_path / "crashed-api.log") as (url, proc):
            with httpx.Client(base_url=url, timeout=60) as http:
                session = http.post(
                    "/v1/uploads", headers=headers, json={"sizeBytes": len(data)}
                ).json()
            (part,) = session["parts"]
            put = httpx.put(part["url"], content=data, timeout=60)
            parts = {"parts": [{"partNumber": 1, "etag": put.headers["etag"]}]}
            if crash == "before_assembly":
                relay.hold_request = _completing
            elif crash == "after_assembly":
                relay.hold_response = _completing

            def complete() -> None:
                with contextlib.suppress(httpx.HTTPError):  # the server dies mid-request
                    httpx.post(f"{url}{session['completeUrl']}", headers=headers, json=parts,
                               timeout=600)  # fmt: skip

            threading.Thread(target=complete, daemon=True).start()
            client = s3.client()
            key = source_key(session["jobId"])
            if crash == "before_assembly":
                wait_until("held completion", lambda: any(map(_completing, relay.relays)), proc)
            elif crash == "after_assembly":
                wait_until(
                    "assembled source",
                    lambda: client.list_objects_v2(Bucket=api_bucket, Prefix=key)["KeyCount"],
                    proc,
                )
            else:
                with MongoClient[dict[str, Any]](mongo_url) as mc:
                    jobs = mc[database]["jobs"]
                    wait_until("job record", lambda: jobs.find_one({"_id": session["jobId"]}), proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        relay.down()  # whatever the dead process had in flight is reset, never delivered

    with (
        api_factory(
            mongo_database=database,
            reaper_grace_seconds=GRACE,
            reconcile_interval_seconds=0.3,
            reconcile_min_age_seconds=0,
        ) as api,
        httpx.Client(base_url=api.url, timeout=120) as http,
    ):
        answers = []
        deadline = time.monotonic() + GRACE + 120
        while time.monotonic() < deadline:
            answer = http.post(session["completeUrl"], headers=api.headers(), json=parts)
            answers.append(answer)
            if answer.status_code != 409:
                break
            assert answer.json()["code"] == "upload_completing", answer.text
            time.sleep(int(answer.headers["Retry-After"]))
        # Fails if a retry is refused for good (404 while the lock stands, 500 on an assembled
        # upload or a recorded job), if the lock is ignored while it is fresh, or if the upload
        # is lost, stored partly or recorded twice.
        assert answers[0].status_code == 409, answers[0].text
        assert answers[-1].status_code == 202, [(a.status_code, a.text) for a in answers]
        job = answers[-1].json()
        assert job["id"] == session["jobId"] and job["sizeBytes"] == len(data)
        assert [d["_id"] for d in job_docs(api)] == [job["id"]]
        head = api.ctx.storage.client.head_object(Bucket=api_bucket, Key=key)
        assert head["ContentLength"] == len(data)
        with api.mongo() as mc:
            db = mc[database]
            assert db["upload_sessions"].find_one({"_id": job["id"]}) is None
            assert db["locks"].find_one({"_id": f"upload:{job['id']}"}) is None
        deadline = time.monotonic() + 60
        while kube.videojob(job["id"]) is None:
            assert time.monotonic() < deadline, "the job's VideoJob was never created"
            time.sleep(0.2)
