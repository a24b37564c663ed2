"""Fixtures for the API against real servers: S3 (versitygw), FerretDB and a Kubernetes API.

The app runs in a real uvicorn server on a thread of the test process, so requests go through
real HTTP (streamed bodies, early responses) while tests can still reach the app's internals.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from fastapi import FastAPI
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pymongo import MongoClient

from tests.utils.servers import S3Server, free_port
from vidpipe_api.auth import key_document
from vidpipe_api.context import AppContext
from vidpipe_api.db import now
from vidpipe_api.main import create_app
from vidpipe_api.settings import Settings

REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "crds" / "videojobs.media.vidpipe.io.yaml"
DEFAULT_KUBECONFIG = REPO / ".local" / "cluster" / "kubeconfig"


# -- media ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Media:
    ok: Path  # 1 s, 160x120, H.264 + AAC
    long: Path  # 4 s: over the 3 s test duration limit
    big: Path  # 640x480: over the test pixel limit
    truncated: Path
    text: Path
    playlist: Path
    empty: Path


def _ffmpeg(args: list[str], out: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(out)],
        check=True,
        timeout=60,
    )
    return out


def _testsrc(seconds: int, size: str) -> list[str]:
    return [
        "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={size}:rate=10",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "32k", "-shortest",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    """Tiny real videos made once per session with ffmpeg's lavfi sources."""
    d = tmp_path_factory.mktemp("media")
    ok = _ffmpeg(_testsrc(1, "160x120"), d / "ok.mp4")
    long = _ffmpeg(_testsrc(4, "64x48"), d / "long.mp4")
    big = _ffmpeg(_testsrc(1, "640x480"), d / "big.mp4")
    data = ok.read_bytes()
    truncated = d / "truncated.mp4"
    # ffmpeg writes the index (moov) last; cutting the file loses it, as an interrupted copy does.
    truncated.write_bytes(data[: len(data) // 2])
    text = d / "notes.mp4"
    text.write_text("this is not a video, only text with a video extension\n" * 50)
    playlist = d / "list.m3u8"
    playlist.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
        "#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    )
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    return Media(ok, long, big, truncated, text, playlist, empty)


# Streamed uploads go to S3 in parts of this size in the tests that need parts (S3's minimum).
TEST_PART_SIZE = 5 * 1024 * 1024


@pytest.fixture(scope="session")
def large_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real video over two `TEST_PART_SIZE` parts (about 12 MB, 4 s, 320x240): lossless noise
    does not compress, so ffmpeg makes it in well under a second. Needs max_duration >= 4."""
    noise = [
        "-f", "lavfi", "-i", "nullsrc=s=320x240:r=25:d=4,geq=random(1)*255:128:128",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "32k", "-shortest", "-movflags", "+faststart",
    ]  # fmt: skip
    path = _ffmpeg(noise, tmp_path_factory.mktemp("large") / "large.mp4")
    assert path.stat().st_size > 2 * TEST_PART_SIZE
    return path


# -- Kubernetes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kube:
    kubeconfig: Path
    namespace: str
    custom: Any  # kubernetes.client.CustomObjectsApi

    def videojob(self, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                "media.vidpipe.io", "v1alpha1", self.namespace, "videojobs", name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def videojob_names(self) -> set[str]:
        items = self.custom.list_namespaced_custom_object(
            "media.vidpipe.io", "v1alpha1", self.namespace, "videojobs"
        )["items"]
        return {i["metadata"]["name"] for i in items}


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    """A real API server with the VideoJob CRD applied and a fresh namespace; fails if absent."""
    path = Path(os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG)
    if not path.exists():
        pytest.fail(f"no kubeconfig at {path}: start the local cluster with `make cluster-up`")
    api_client = config.new_client_from_config(config_file=str(path))
    try:
        client.VersionApi(api_client).get_code(_request_timeout=10)
    except Exception as exc:
        pytest.fail(f"the Kubernetes API in {path} is unreachable: {exc}")
    ext = client.ApiextensionsV1Api(api_client)
    crd = yaml.safe_load(CRD.read_text())
    try:
        ext.create_custom_resource_definition(crd)
    except ApiException as exc:
        if exc.status != 409:
            raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = ext.read_custom_resource_definition(crd["metadata"]["name"]).status
        if any(c.type == "Established" and c.status == "True" for c in status.conditions or []):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the VideoJob CRD did not become Established")
    core = client.CoreV1Api(api_client)
    namespace = f"api-test-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        yield Kube(path, namespace, client.CustomObjectsApi(api_client))
    finally:
        core.delete_namespace(namespace)
        api_client.close()


@pytest.fixture(scope="session")
def dead_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig whose API server is a closed port: the cluster being down."""
    path = tmp_path_factory.mktemp("kube") / "dead.kubeconfig"
    port = free_port()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "dead", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "u"}}],
                "current-context": "dead",
            }
        )
    )
    return path


# -- the app --------------------------------------------------------------------------------


@dataclass
class Api:
    url: str
    app: FastAPI
    settings: Settings
    keys: dict[str, str]

    @property
    def ctx(self) -> AppContext:
        ctx: AppContext = self.app.state.ctx
        return ctx

    def headers(self, owner: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[owner]}"}

    def mongo(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.settings.mongo_url.get_secret_value(), tz_aware=True)


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def make_keys(mongo_url: str, database: str, owners: dict[str, bool]) -> dict[str, str]:
    """API keys written exactly as the CLI writes them."""
    keys: dict[str, str] = {}
    with MongoClient[dict[str, Any]](mongo_url) as mc:
        for owner, admin in owners.items():
            key, doc = key_document(owner, admin, now())
            mc[database]["api_keys"].insert_one(doc)
            keys[owner] = key
    return keys


@pytest.fixture(scope="module")
def api_bucket(s3: S3Server) -> str:
    name = f"api-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


def base_settings(
    s3: S3Server, mongo_url: str, bucket: str, kube_path: Path, namespace: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "s3_endpoint_url": s3.endpoint_url,
        "s3_access_key_id": s3.access_key,
        "s3_secret_access_key": s3.secret_key,
        "s3_bucket": bucket,
        "mongo_url": mongo_url,
        "mongo_database": f"api{uuid.uuid4().hex[:10]}",
        "kubeconfig": kube_path,
        "namespace": namespace,
        "max_upload_bytes": 2 * 1024 * 1024,
        "max_duration_seconds": 3,
        "max_pixels": 320 * 240,
        "reconcile_interval_seconds": 0,
        "rate_owner_per_minute": 0,
        "rate_owner_per_day": 0,
        "rate_global_per_minute": 0,
        "rate_global_per_day": 0,
        # Tests share a bucket across apps with separate databases: a reaper would see the other
        # apps' sources as record-less. Reaper tests call `reap_once` themselves.
        "reaper_interval_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)


ApiFactory = Callable[..., Any]


@pytest.fixture(scope="module")
def api_factory(
    s3: S3Server, mongo_url: str, api_bucket: str, kube: Kube
) -> Iterator[Callable[..., Any]]:
    """`with api_factory(**settings_overrides) as api:` a running app with alice/bob/root keys."""

    @contextmanager
    def factory(**overrides: Any) -> Iterator[Api]:
        settings = base_settings(
            s3, mongo_url, api_bucket, kube.kubeconfig, kube.namespace, **overrides
        )
        keys = make_keys(
            mongo_url, settings.mongo_database, {"alice": False, "bob": False, "root": True}
        )
        app = create_app(settings)
        with serve(app) as url:
            yield Api(url, app, settings, keys)

    yield factory


@pytest.fixture(scope="module")
def offline_api_factory(
    s3: S3Server, mongo_url: str, api_bucket: str, dead_kubeconfig: Path
) -> Iterator[Callable[..., Any]]:
    """Like `api_factory`, with the Kubernetes API down: uploads are accepted unsubmitted (202).

    For tests of the upload path's limits, which need real S3 and MongoDB but no cluster.
    """

    @contextmanager
    def factory(**overrides: Any) -> Iterator[Api]:
        overrides.setdefault("kube_timeout_seconds", 1)
        settings = base_settings(
            s3, mongo_url, api_bucket, dead_kubeconfig, "vidpipe-jobs", **overrides
        )
        keys = make_keys(
            mongo_url, settings.mongo_database, {"alice": False, "bob": False, "root": True}
        )
        app = create_app(settings)
        with serve(app) as url:
            yield Api(url, app, settings, keys)

    yield factory


@pytest.fixture(scope="module")
def api(api_factory: Callable[..., Any]) -> Iterator[Api]:
    """The default app for the module (small limits, no rate limits)."""
    with api_factory() as running:
        yield running
