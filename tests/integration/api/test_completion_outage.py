"""A presigned upload's completion meets a MongoDB outage after S3 assembled the parts.

The client sent its parts straight to S3, possibly gigabytes: a 503 must leave the assembled
source and the session in place so that retrying `complete` finishes the job, rather than the
client having to upload again. MongoDB is a real FerretDB process, stopped while S3's answer to
CompleteMultipartUpload is held in a TCP relay (so the outage lands after assembly, before the
job is recorded) and started again before the retry.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.api.conftest import Media, base_settings, make_keys, serve
from tests.integration.api.test_completion_crash import _completing
from tests.utils.servers import S3Server, mongo_process
from tests.utils.tcpproxy import TcpProxy
from vidpipe.keys import source_key
from vidpipe_api.main import create_app

pytestmark = pytest.mark.integration


def test_a_completion_refused_for_a_database_outage_is_finished_by_a_retry(
    s3: S3Server, api_bucket: str, dead_kubeconfig: Path, media: Media, tmp_path: Path
) -> None:
    data = media.ok.read_bytes()
    mongo_url, mongo = mongo_process(tmp_path)
    mongo.start()
    target = urlsplit(s3.endpoint_url)
    relay = TcpProxy((target.hostname or "127.0.0.1", target.port or 80))
    try:
        with relay.running():
            settings = base_settings(
                replace(s3, endpoint_url=relay.url),
                mongo_url,
                api_bucket,
                dead_kubeconfig,
                "vidpipe-jobs",
                mongo_timeout_ms=500,
                kube_timeout_seconds=1,
                reaper_grace_seconds=1,  # the lock the failed completion could not give back
            )
            keys = make_keys(mongo_url, settings.mongo_database, {"alice": False})
            headers = {"Authorization": f"Bearer {keys['alice']}"}
            with (
                serve(create_app(settings)) as url,
                httpx.Client(base_url=url, timeout=120) as http,
            ):
                session = http.post(
                    "/v1/uploads", headers=headers, json={"sizeBytes": len(data)}
                ).json()
                (part,) = session["parts"]
                etag = httpx.put(part["url"], content=data, timeout=60).headers["etag"]
                parts = {"parts": [{"partNumber": 1, "etag": etag}]}

                relay.hold_response = _completing
                answers: list[httpx.Response] = []
                complete = threading.Thread(
                    target=lambda: answers.append(
                        http.post(session["completeUrl"], headers=headers, json=parts)
                    )
                )
                complete.start()
                deadline = time.monotonic() + 60
                while not any(map(_completing, relay.relays)):
                    assert time.monotonic() < deadline, "the completion never reached S3"
                    time.sleep(0.05)
                mongo.stop()  # S3 has assembled the parts; the job is not recorded yet
                relay.hold_response = None
                relay.release()
                complete.join(timeout=120)
                (refused,) = answers
                assert refused.status_code == 503, refused.text
                assert refused.json()["code"] == "database_unavailable"
                # Fails if the refusal discarded the upload: the assembled source must stay.
                key = source_key(session["jobId"])
                stored = s3.client().head_object(Bucket=api_bucket, Key=key)
                assert stored["ContentLength"] == len(data)

                mongo.start()
                deadline = time.monotonic() + 60
                while True:
                    retry = http.post(session["completeUrl"], headers=headers, json=parts)
                    if retry.status_code != 409 or time.monotonic() > deadline:
                        break
                    time.sleep(int(retry.headers["Retry-After"]))
                # Fails if the session went with the refusal (404) or the source did (400).
                assert retry.status_code == 202, retry.text
                job = retry.json()
                assert (job["id"], job["sizeBytes"]) == (session["jobId"], len(data))
                body = s3.client().get_object(Bucket=api_bucket, Key=key)["Body"].read()
                assert body == data
                listed = http.get("/v1/jobs", headers=headers).json()
                assert [j["id"] for j in listed["items"]] == [job["id"]]
    finally:
        mongo.stop()
