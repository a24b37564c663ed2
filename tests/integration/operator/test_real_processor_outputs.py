"""A real job through the operator: progress while it runs, outputs that match the manifest, and the
manifest written only after every output it lists exists.

The Pods reach the private S3 server through a relay (RecordingRelay) that records, in one
ordered log, when each request reached it and when S3's answer to it came back. That log is what
proves manifest-last: the relay records S3's answer to an output's PUT before passing it on, and
records the manifest's PUT before passing it on, so "answer for every output, then the manifest's
request" in the log means every output was stored before the manifest could be. Sampling the
bucket (or comparing LastModified, whole seconds here) could only fail to see a violation.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.operator.conftest import (
    Cluster,
    OperatorProcess,
    PodS3,
    make_media,
    real_processor_env,
    running_operator,
)
from tests.integration.processor.hls_checks import check_hls
from tests.utils.servers import S3Server
from vidpipe import keys

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

TERMINAL = {"Succeeded", "Failed", "Cancelled"}
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Exchange:
    """One relay log entry: a request line seen, or the status line of S3's answer to it."""

    kind: str  # "request" or "response"
    method: str
    path: str
    status: int = 0


class RecordingRelay(socketserver.ThreadingTCPServer):
    """A byte-for-byte TCP relay to the real S3 server that logs each exchange in order.

    The processor opens one connection per transfer (processor storage.py), so one connection is
    one request. Nothing is changed on the way: the presigned signature covers the Host header,
    which the relay passes through as the URL named it.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.log: list[Exchange] = []
        self._lock = threading.Lock()
        super().__init__((host, 0), _RelayHandler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def record(self, exchange: Exchange) -> None:
        with self._lock:
            self.log.append(exchange)

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _RelayHandler(socketserver.BaseRequestHandler):
    server: RecordingRelay

    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
        method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
        path = urlsplit(target).path
        with socket.create_connection(self.server.upstream, timeout=60) as upstream:
            # Logged before S3 can see the request: nothing S3 does for it can come earlier.
            self.server.record(Exchange("request", method, path))
            back = threading.Thread(target=self._answer, args=(upstream, client, method, path))
            back.start()
            try:
                upstream.sendall(head)
                while chunk := client.recv(65536):
                    upstream.sendall(chunk)
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            back.join()

    def _answer(
        self, upstream: socket.socket, client: socket.socket, method: str, path: str
    ) -> None:
        first = True
        try:
            while chunk := upstream.recv(65536):
                if first:
                    # Logged before the processor can see S3's answer (and so before it can
                    # act on it, e.g. by sending the manifest).
                    status = int(chunk.split(b" ", 2)[1])
                    self.server.record(Exchange("response", method, path, status))
                    first = False
                client.sendall(chunk)
            client.shutdown(socket.SHUT_WR)
        except (OSError, ValueError, IndexError):
            pass


@pytest.fixture(scope="module")
def relay(pod_s3: PodS3) -> Iterator[RecordingRelay]:
    endpoint = urlsplit(pod_s3.server.endpoint_url)
    host, port = endpoint.hostname or "", endpoint.port or 80
    server = RecordingRelay(host, (host, port))
    yield server
    server.close()


@pytest.fixture(scope="module")
def operator(
    namespace: str,
    mongo_url: str,
    pod_s3: PodS3,
    relay: RecordingRelay,
    processor_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator reads manifests straight from S3; the Pods' URLs go through the relay."""
    env = real_processor_env(
        namespace,
        mongo_url,
        pod_s3.server,
        pod_s3.bucket,
        processor_image,
        VIDPIPE_OPERATOR_PROCESSOR_S3_ENDPOINT_URL=relay.endpoint_url,
    )
    with running_operator(env, tmp_path_factory) as proc:
        yield proc


def _sha256(s3: S3Server, bucket: str, key: str) -> str:
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest()


def _watch(cluster: Cluster, jobs_collection: Any, name: str) -> dict[str, list[tuple[str, int]]]:
    """(phase, progress) as the VideoJob and the MongoDB document showed them, polled together
    from creation to the end of the job (the processor reports at most every 2 s)."""
    samples: dict[str, list[tuple[str, int]]] = {"videojob": [], "mongodb": []}
    deadline_polls = int(600 / POLL_SECONDS)
    for _ in range(deadline_polls):
        status = cluster.status(name)
        doc = jobs_collection.find_one({"_id": name}, {"phase": 1, "progress": 1}) or {}
        now = {
            "videojob": (str(status.get("phase", "")), int(status.get("progress") or 0)),
            "mongodb": (str(doc.get("phase", "")), int(doc.get("progress") or 0)),
        }
        for where, sample in now.items():
            samples[where].append(sample)
        if all(phase in TERMINAL for phase, _ in now.values()):
            return samples
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"{name} did not finish: {samples['videojob'][-5:]}")


def test_progress_outputs_and_manifest_last_with_the_real_processor(
    cluster: Cluster,
    operator: OperatorProcess,
    pod_s3: PodS3,
    relay: RecordingRelay,
    jobs_collection: Any,
    tmp_path: Path,
) -> None:
    name = "rp-ladder"
    clip = make_media(tmp_path / "clip.mp4", 16, size="640x360")
    pod_s3.server.client().upload_file(str(clip), pod_s3.bucket, keys.source_key(name))
    cluster.create_videojob(
        name,
        owner="real",
        source={"bucket": pod_s3.bucket, "key": keys.source_key(name)},
        outputs={
            "renditions": [{"name": "360p", "height": 360}, {"name": "240p", "height": 240}],
            "storyboard": {"enabled": True, "intervalSeconds": 2},
        },
        # A quarter of a core: the encode lasts long enough for several 2 s progress reports
        # (the CPU limit, not the shared machine, sets the pace).
        resources={"cpu": "250m"},
    )
    samples = _watch(cluster, jobs_collection, name)

    # Progress: fails if the processor's status patch, or the operator's copy of it into
    # MongoDB, is dropped or held back to the end (fewer than three values while Running), or
    # if either goes backwards.
    for where, seen in samples.items():
        changes = [k for k, _ in itertools.groupby(seen)]  # the sequence without repeats
        values = [p for _, p in seen]
        assert all(a <= b for a, b in itertools.pairwise(values)), (where, changes)
        assert seen[-1] == ("Succeeded", 100), (where, changes)
        running = {p for phase, p in seen if phase == "Running" and 0 < p < 100}
        log.info("%s while running: %s", where, sorted(running))
        assert len(running) >= 3, (where, changes)

    # Outputs: fails if status or MongoDB list anything but what the manifest lists, or if the
    # manifest describes objects other than those stored.
    status = cluster.status(name)
    client = pod_s3.server.client()
    manifest_key = keys.output_key(name, keys.MANIFEST_NAME)
    manifest = json.loads(client.get_object(Bucket=pod_s3.bucket, Key=manifest_key)["Body"].read())
    entries = {e["key"]: e for e in manifest["outputs"]}
    listed = client.list_objects_v2(Bucket=pod_s3.bucket, Prefix=keys.output_prefix(name))
    stored = {o["Key"]: o["Size"] for o in listed["Contents"]}
    assert status["outputs"] == sorted(entries)
    assert sorted(stored) == sorted([*entries, manifest_key])
    assert {keys.output_key(name, n) for n in ("360p.mp4", "240p.mp4", "poster.jpg")} <= set(
        entries
    )
    for key, entry in entries.items():
        assert stored[key] == entry["size"], key
        assert _sha256(pod_s3.server, pod_s3.bucket, key) == entry["sha256"], key
    doc = jobs_collection.find_one({"_id": name})
    assert doc["outputs"] == status["outputs"] and doc["phase"] == "Succeeded"

    # HLS (issue 15): fails if the processor image writes no ladder by default, or one that is
    # not valid (playlists, keyframe-aligned segments, ffprobe through master.m3u8).
    hls_names = keys.hls_file_names(["360p", "240p"], audio=True)
    assert {keys.output_key(name, n) for n in hls_names} <= set(entries)
    files = {key.removeprefix(keys.output_prefix(name)): key for key in entries}
    for file_name, key in files.items():
        client.download_file(pod_s3.bucket, key, str(tmp_path / file_name))
    check_hls({n: tmp_path / n for n in files}, manifest, tmp_path, duration=16.0)

    # Manifest last: fails if the manifest's PUT reached S3 before S3 had answered the PUT of any
    # output it lists (e.g. the manifest uploaded alongside the outputs).
    exchanges = list(relay.log)
    bucket_path = f"/{pod_s3.bucket}/"
    manifest_request = min(
        i
        for i, e in enumerate(exchanges)
        if (e.kind, e.method, e.path) == ("request", "PUT", bucket_path + manifest_key)
    )
    for key in entries:
        stored_at = [
            i
            for i, e in enumerate(exchanges)
            if (e.kind, e.method, e.path) == ("response", "PUT", bucket_path + key)
            and 200 <= e.status < 300
        ]
        assert stored_at and min(stored_at) < manifest_request, (key, exchanges)
