"""A dependency goes away while an upload is in flight: the real process is stopped and started.

FerretDB and versitygw are this module's own instances (tests/utils/servers.py), stopped with
SIGTERM or SIGKILL and started again on the same port and data, so the app under test keeps its
clients, pools and URLs exactly as in production. kube-apiserver is the shared cluster's, stopped
for a few seconds with `hack/cluster.sh stop-apiserver` and always started again.

Each upload is driven by hand (tests/integration/api/rawhttp.py): the outage starts after the
server has authenticated the caller and stored the first part of the body, which the test sees
in S3 itself (a multipart upload with a part), so nothing here can pass by failing earlier.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import (
    REPO,
    TEST_PART_SIZE,
    Api,
    Kube,
    Media,
    base_settings,
    make_keys,
    serve,
)
from tests.integration.api.rawhttp import RawRequest, multipart_head, multipart_tail
from tests.integration.api.test_limits import (
    first_part_stored,
    pending_uploads,
    slots,
    wait_until,
)
from tests.integration.api.test_uploads import all_source_keys, job_docs, post_video
from tests.utils.servers import S3Server, ServerProcess, mongo_process, s3_process
from vidpipe_api.main import create_app
from vidpipe_api.reconciler import reconcile_once

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
CLUSTER_SH = REPO / "hack" / "cluster.sh"
# Bytes sent before the outage: one whole part, so a multipart upload with a stored part exists.
FIRST = TEST_PART_SIZE + MiB


@dataclass(frozen=True)
class Private:
    s3: S3Server
    s3_server: ServerProcess
    mongo_url: str
    mongo_server: ServerProcess
    bucket: str


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    """S3 and MongoDB of this module only: stopping them disturbs no other test."""
    work = tmp_path_factory.mktemp("outages")
    s3, s3_server = s3_process(work)
    mongo_url, mongo_server = mongo_process(work)
    s3_server.start()
    mongo_server.start()
    try:
        bucket = f"outage-{uuid.uuid4().hex[:10]}"
        s3.client().create_bucket(Bucket=bucket)
        yield Private(s3, s3_server, mongo_url, mongo_server, bucket)
    finally:
        s3_server.stop()
        mongo_server.stop()


@pytest.fixture
def servers(private: Private) -> Private:
    """Both servers serving at the start of each test, whatever the previous one left."""
    private.s3_server.start()
    private.mongo_server.start()
    return private


@pytest.fixture
def outage_api(servers: Private, kube: Kube) -> Callable[..., Any]:
    """`with outage_api(**overrides) as api:` the app on the private servers, 5 MiB parts."""

    @contextmanager
    def factory(**overrides: Any) -> Iterator[Api]:
        values: dict[str, Any] = {
            "part_size_bytes": TEST_PART_SIZE,
            "max_upload_bytes": 64 * MiB,
            "max_duration_seconds": 10,
            "mongo_timeout_ms": 1000,
            "s3_connect_timeout_seconds": 1,
            **overrides,
        }
        settings = base_settings(
            servers.s3, servers.mongo_url, servers.bucket, kube.kubeconfig, kube.namespace, **values
        )
        keys = make_keys(servers.mongo_url, settings.mongo_database, {"alice": False})
        app = create_app(settings)
        with serve(app) as url:
            yield Api(url, app, settings, keys)

    return factory


# -- helpers --------------------------------------------------------------------------------


def raw_put(api: Api, total: int) -> RawRequest:
    headers = {**api.headers(), "Content-Type": "video/mp4"}
    return RawRequest(api.url, "PUT", "/v1/videos", headers, total, timeout=120)


def send_rest(req: RawRequest, data: bytes) -> None:
    """Send `data` in pieces until done or the server stops reading (it has answered)."""
    step = 256 * 1024
    for start in range(0, len(data), step):
        if req.answered() or not req.try_send(data[start : start + step]):
            return


def readyz(api: Api) -> tuple[int, dict[str, Any]]:
    with httpx.Client(base_url=api.url, timeout=30) as http:
        resp = http.get("/readyz")
    return resp.status_code, resp.json()["checks"]


@dataclass(frozen=True)
class Snapshot:
    """What exists before an upload (the bucket is the module's; each app has its own database)."""

    sources: set[str]
    videojobs: set[str]

    @classmethod
    def take(cls, api: Api, kube: Kube) -> Snapshot:
        return cls(all_source_keys(api), kube.videojob_names())

    def assert_nothing_added(self, api: Api, kube: Kube) -> None:
        assert all_source_keys(api) == self.sources
        assert pending_uploads(api) == []
        assert job_docs(api) == []
        assert kube.videojob_names() == self.videojobs


@contextmanager
def apiserver_down() -> Iterator[None]:
    """The shared kube-apiserver stopped for the block (keep it short: others use it)."""
    subprocess.run([str(CLUSTER_SH), "stop-apiserver"], check=True, timeout=60)
    try:
        yield
    finally:
        subprocess.run([str(CLUSTER_SH), "start-apiserver"], check=True, timeout=180)


# -- MongoDB --------------------------------------------------------------------------------


def test_mongodb_down_before_auth_is_503(
    outage_api: Callable[..., Any], servers: Private, media: Media
) -> None:
    """Fails if an unreachable key store answers as a wrong key (401) or a crash (500)."""
    with outage_api() as api:
        with servers.mongo_server.down():
            upload = post_video(api, media.ok.read_bytes())
            with httpx.Client(base_url=api.url, timeout=30) as http:
                listing = http.get("/v1/jobs", headers=api.headers())
        for resp in (upload, listing):
            assert resp.status_code == 503, resp.text
            assert resp.json()["code"] == "database_unavailable"
        assert pending_uploads(api) == []


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_mongodb_stopped_mid_upload_is_503_and_leaves_nothing(
    outage_api: Callable[..., Any], servers: Private, kube: Kube, large_media: Path, crash: bool
) -> None:
    """Fails if the upload is accepted (or 500s) without its record, if the stored object, its
    multipart upload or a VideoJob outlives the refusal, or if the API does not recover."""
    data = large_media.read_bytes()
    with outage_api() as api:
        before = Snapshot.take(api, kube)
        with raw_put(api, len(data)) as req:
            req.send(data[:FIRST])
            wait_until(lambda: first_part_stored(api), what="the first part in S3")
            with servers.mongo_server.down(crash=crash):
                send_rest(req, data[FIRST:])
                status, _, body = req.response(timeout=120)
                ready, checks = readyz(api)
        assert status == 503, body
        assert body["code"] == "database_unavailable"
        assert ready == 503 and checks["mongodb"]["status"] == "unavailable"
        assert checks["s3"]["status"] == "ok"
        # FerretDB is back (same data): no record, object, multipart upload or VideoJob.
        before.assert_nothing_added(api, kube)
        wait_until(lambda: readyz(api)[0] == 200, 60, "/readyz 200")
        again = post_video(api, data)
        assert again.status_code == 202, again.text
        assert again.json()["submitted"] is True
        assert [d["_id"] for d in job_docs(api)] == [again.json()["id"]]


# -- S3 -------------------------------------------------------------------------------------


def test_s3_down_small_upload_is_503(
    outage_api: Callable[..., Any], servers: Private, kube: Kube, media: Media
) -> None:
    """Fails if an upload stored in one PutObject is not refused with storage_unavailable
    while S3 is down, or leaves a record or VideoJob."""
    with outage_api() as api:
        before = Snapshot.take(api, kube)
        with servers.s3_server.down():
            resp = post_video(api, media.ok.read_bytes())
        assert resp.status_code == 503, resp.text
        assert resp.json()["code"] == "storage_unavailable"
        before.assert_nothing_added(api, kube)


def test_s3_stopped_mid_stream_is_503_and_the_reaper_removes_the_leftover(
    outage_api: Callable[..., Any], servers: Private, kube: Kube, large_media: Path
) -> None:
    """Fails if a part failing mid-stream does not end the upload with 503 storage_unavailable,
    if a record, object or VideoJob is left, or if the multipart upload that the abort (run while
    S3 was down) could not remove is never removed by the reaper."""
    data = large_media.read_bytes()
    head, tail = multipart_head("outageb0undary", []), multipart_tail("outageb0undary")
    form_type = {"Content-Type": "multipart/form-data; boundary=outageb0undary"}
    # The reaper runs every second and takes a multipart upload without a session for abandoned
    # once it is older than the upload time limit (25 s here) plus its grace (none).
    with outage_api(
        reaper_interval_seconds=1, reaper_grace_seconds=0, upload_total_timeout_seconds=25
    ) as api:
        before = Snapshot.take(api, kube)
        total = len(head) + len(data) + len(tail)
        with RawRequest(
            api.url, "POST", "/v1/videos", {**api.headers(), **form_type}, total, timeout=120
        ) as req:
            req.send(head + data[:FIRST])
            upload = wait_until(lambda: first_part_stored(api), what="the first part in S3")
            with servers.s3_server.down(crash=True):
                send_rest(req, data[FIRST:] + tail)
                status, _, body = req.response(timeout=120)
                ready, checks = readyz(api)
        assert status == 503, body
        assert body["code"] == "storage_unavailable"
        assert ready == 503 and checks["s3"]["status"] == "unavailable"
        # S3 is back. The abort ran while it was down, so the multipart upload is still open...
        assert [u["UploadId"] for u in pending_uploads(api)] == [upload["UploadId"]]
        assert all_source_keys(api) == before.sources
        assert job_docs(api) == []
        assert kube.videojob_names() == before.videojobs
        # ...until the reaper finds it abandoned and aborts it.
        wait_until(lambda: pending_uploads(api) == [], 120, "the reaper's abort")


# -- Kubernetes API -------------------------------------------------------------------------


@pytest.mark.disruptive
def test_apiserver_stopped_mid_upload_keeps_the_job_and_submits_it_once(
    outage_api: Callable[..., Any], kube: Kube, media: Media
) -> None:
    """Fails if the upload is refused or loses its record while kube-apiserver is down, or if
    the reconciler creates no VideoJob, or another one, once it is back."""
    data = media.ok.read_bytes()
    with outage_api(
        kube_timeout_seconds=2, reconcile_interval_seconds=0.5, reconcile_min_age_seconds=0
    ) as api:
        before = Snapshot.take(api, kube)
        with raw_put(api, len(data)) as req:
            req.send(data[: len(data) // 2])
            # The upload holds its slot: the caller is authenticated and the body is streaming.
            wait_until(lambda: slots(api).active == 1, what="the upload slot")
            with apiserver_down():
                req.send(data[len(data) // 2 :])
                status, _, body = req.response(timeout=120)
                ready, checks = readyz(api)
                docs = job_docs(api)
        assert status == 202, body
        job_id = body["id"]
        assert body["submitted"] is False and body["phase"] == "Pending"
        assert [(d["_id"], d["phase"], d["cr_created"]) for d in docs] == [
            (job_id, "Pending", False)
        ]
        assert ready == 503 and checks["kubernetes"]["status"] == "unavailable"
        # kube-apiserver is back: the API's reconciler creates the recorded job's VideoJob.
        vj = wait_until(lambda: kube.videojob(job_id), 120, "the VideoJob")
        assert vj["spec"]["jobId"] == job_id and vj["spec"]["owner"] == "alice"
        wait_until(lambda: job_docs(api)[0]["cr_created"], 30, "cr_created")
        assert kube.videojob_names() - before.videojobs == {job_id}
        # Nothing left to submit: another round creates nothing.
        assert asyncio.run(reconcile_once(api.ctx.ingest, 0)) == 0
