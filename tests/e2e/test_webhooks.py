"""Webhooks end to end (issue 14): the chart installed with its dispatcher, a receiver on this
host, a real upload and a real transcode. Every transition of the job reaches the receiver,
signed so that the Standard Webhooks reference library verifies it, in an order its sequence
numbers rebuild; the event log and the delivery log say the same."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from standardwebhooks import Webhook

from tests.e2e.test_progress import make_video
from tests.utils.cluster import LocalCluster
from tests.utils.platform import Platform, installed

pytestmark = pytest.mark.e2e

RELEASE = "vidpipe-hooks"
TRANSITIONS = ["job.submitted", "job.running", "job.succeeded"]


class Receiver:
    """An HTTP receiver on the address Pods reach this host at; keeps every request."""

    def __init__(self, host: str):
        self.requests: list[dict[str, Any]] = []
        lock = threading.Lock()
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    received.append({"headers": headers, "body": body, "at": time.time()})
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/hooks/vidpipe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def host(cluster: LocalCluster) -> str:
    """This host as Pods reach it (the address the local cluster serves S3 on)."""
    return str(urlsplit(cluster.s3_endpoint_for_pods).hostname)


@pytest.fixture(scope="module")
def platform(cluster: LocalCluster, host: str) -> Iterator[Platform]:
    # The receiver is on a private address: the allow-list the chart gives the API and the
    # dispatcher lets exactly this one through.
    with installed(cluster, RELEASE, "--set", f"webhooks.allowedHosts={{{host}}}") as platform:
        yield platform


@pytest.fixture
def receiver(host: str) -> Iterator[Receiver]:
    receiver = Receiver(host)
    yield receiver
    receiver.close()


def test_every_transition_of_a_real_job_arrives_signed_and_in_order(
    platform: Platform, receiver: Receiver, tmp_path: Path
) -> None:
    # Fails if any transition of a real job is not delivered, if a delivery does not verify
    # with the reference library and the secret shown at creation, if the sequence numbers do
    # not rebuild the job's order, if the client's metadata or the outputs are missing, or if
    # the event and delivery logs disagree with what arrived.
    source = make_video(tmp_path / "hooked.mp4", seconds=4)
    with platform.client() as http:
        created = http.post("/v1/webhooks", json={"url": receiver.url})
        assert created.status_code == 201, created.text
        hook = created.json()
        with source.open("rb") as body:
            upload = http.put(
                "/v1/videos",
                content=body,
                params={"renditions": "360p", "metadata": json.dumps({"order": "o-17"})},
                headers={"Content-Type": "video/mp4", "X-Filename": "hooked.mp4"},
            )
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["id"]
        platform.wait_for_phase(job_id, {"Succeeded"}, timeout=300)

        def arrived() -> dict[str, dict[str, Any]]:
            # Receivers deduplicate on webhook-id (a retry may deliver twice).
            found: dict[str, dict[str, Any]] = {}
            for request in list(receiver.requests):
                payload = json.loads(request["body"])
                if payload["data"].get("jobId") == job_id:
                    found.setdefault(request["headers"]["webhook-id"], request)
            return found

        deadline = time.monotonic() + 60
        while len(arrived()) < len(TRANSITIONS) and time.monotonic() < deadline:
            time.sleep(0.5)
        requests = arrived()
        verifier = Webhook(hook["secret"])
        payloads = [verifier.verify(r["body"], r["headers"]) for r in requests.values()]
        by_seq = sorted(payloads, key=lambda p: p["data"]["seq"])
        assert [p["type"] for p in by_seq] == TRANSITIONS
        assert all(p["data"]["metadata"] == {"order": "o-17"} for p in payloads)
        succeeded = by_seq[-1]["data"]
        assert succeeded["phase"] == "Succeeded"
        assert any(key.endswith("/360p.mp4") for key in succeeded["outputs"])

        logged = http.get("/v1/events", params={"jobId": job_id, "order": "oldest"}).json()
        assert [e["id"] for e in logged["items"]] == [p["data"]["id"] for p in by_seq]
        deliveries = http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"]
        mine = [d for d in deliveries if d["eventId"] in requests]
        assert len(mine) == len(TRANSITIONS)
        assert all(d["state"] == "succeeded" for d in mine)
