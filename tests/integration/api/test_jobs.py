"""Jobs, auth, presigned uploads and service endpoints against the real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.api.conftest import REPO, Api, Kube, Media
from tests.integration.api.test_uploads import job_docs, post_video, source_exists
from vidpipe.keys import output_key, source_key
from vidpipe.record import mirror_update
from vidpipe_api.db import now

pytestmark = pytest.mark.integration


def upload(api: Api, media: Media, owner: str = "alice") -> str:
    resp = post_video(api, media.ok.read_bytes(), owner=owner)
    assert resp.status_code == 202, resp.text
    job_id: str = resp.json()["id"]
    return job_id


def set_job(api: Api, job_id: str, fields: dict[str, Any]) -> None:
    """Stand in for the operator, which mirrors VideoJob status into the same document."""
    with api.mongo() as mc:
        mc[api.settings.mongo_database]["jobs"].update_one({"_id": job_id}, {"$set": fields})


@pytest.fixture
def http(api: Api) -> Any:
    with httpx.Client(base_url=api.url, timeout=60) as c:
        yield c


# -- auth -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "vpk_000000000000_" + "A" * 43},
    ],
)
def test_auth_missing_or_wrong(http: httpx.Client, headers: dict[str, str]) -> None:
    for method, path in [("GET", "/v1/jobs"), ("POST", "/v1/videos"), ("GET", "/v1/stats")]:
        resp = http.request(method, path, headers=headers)
        assert resp.status_code == 401, (method, path)
        assert resp.json()["code"] == "unauthenticated"


def test_x_api_key_header_and_revoked_key(api: Api, http: httpx.Client) -> None:
    assert http.get("/v1/jobs", headers={"X-API-Key": api.keys["bob"]}).status_code == 200
    key_id = api.keys["bob"].split("_")[1]
    env = {**os.environ, **_cli_env(api)}
    subprocess.run(
        [sys.executable, "-m", "vidpipe_api.cli", "revoke-key", key_id], check=True, env=env
    )
    assert http.get("/v1/jobs", headers={"X-API-Key": api.keys["bob"]}).status_code == 401
    # Re-create bob for the tests that follow.
    new = subprocess.run(
        [sys.executable, "-m", "vidpipe_api.cli", "create-key", "--owner", "bob"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert new.startswith("vpk_")
    api.keys["bob"] = new
    assert http.get("/v1/jobs", headers=api.headers("bob")).status_code == 200


def _cli_env(api: Api) -> dict[str, str]:
    s = api.settings
    return {
        "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("common", "api")),
        "VIDPIPE_API_MONGO_URL": s.mongo_url.get_secret_value(),
        "VIDPIPE_API_MONGO_DATABASE": s.mongo_database,
    }


def test_cli_refuses_bad_owner(api: Api) -> None:
    env = {**os.environ, **_cli_env(api)}
    done = subprocess.run(
        [sys.executable, "-m", "vidpipe_api.cli", "create-key", "--owner", "Bad Owner!"],
        env=env,
        capture_output=True,
    )
    assert done.returncode != 0


# -- jobs -----------------------------------------------------------------------------------


def test_owner_isolation(api: Api, media: Media, http: httpx.Client) -> None:
    job_id = upload(api, media, owner="alice")
    assert http.get(f"/v1/jobs/{job_id}", headers=api.headers("alice")).status_code == 200
    for method, path in [
        ("GET", f"/v1/jobs/{job_id}"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ]:
        resp = http.request(method, path, headers=api.headers("bob"))
        assert resp.status_code == 404
        assert resp.json()["code"] == "job_not_found"
    listed = http.get("/v1/jobs", headers=api.headers("bob"), params={"limit": 100}).json()
    assert job_id not in {j["id"] for j in listed["items"]}
    assert source_exists(api, job_id)


def test_list_pagination_and_phase_filter(api_factory: Any, media: Media) -> None:
    with api_factory() as api, httpx.Client(base_url=api.url, timeout=60) as http:
        ids = [upload(api, media) for _ in range(5)]
        set_job(api, ids[1], {"phase": "Running", "progress": 40})
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/v1/jobs", headers=api.headers(), params=params).json()
            seen += [j["id"] for j in page["items"]]
            pages += 1
            cursor = page["nextCursor"]
            if not cursor:
                break
        assert pages == 3
        assert seen == list(reversed(ids))  # newest first, each exactly once
        running = http.get("/v1/jobs", headers=api.headers(), params={"phase": "Running"}).json()
        assert [j["id"] for j in running["items"]] == [ids[1]]
        assert running["items"][0]["seedStatus"] == "Processing"
        bad = http.get("/v1/jobs", headers=api.headers(), params={"cursor": "!!garbage"})
        assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"
        bad = http.get("/v1/jobs", headers=api.headers(), params={"phase": "Done"})
        assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"
        stats = http.get("/v1/stats", headers=api.headers()).json()
        assert stats["owner"]["Pending"] == 4 and stats["owner"]["Running"] == 1
        assert stats["total"] is None
        root = http.get("/v1/stats", headers=api.headers("root")).json()
        assert root["total"]["Pending"] == 4


def set_videojob_status(kube: Kube, job_id: str, status: dict[str, Any]) -> dict[str, Any]:
    """Write the VideoJob's status as the operator does (status subresource); returns the
    VideoJob as the API server has it then."""
    kube.custom.patch_namespaced_custom_object_status(
        "media.vidpipe.io", "v1alpha1", kube.namespace, "videojobs", job_id, {"status": status}
    )
    videojob = kube.videojob(job_id)
    assert videojob is not None
    return videojob


def mirror(api: Api, videojob: dict[str, Any]) -> None:
    """Mirror the VideoJob into the record with the operator's own builder and write."""
    update = mirror_update(videojob, videojob["status"], now())
    with api.mongo() as mc:
        jobs = mc[api.settings.mongo_database]["jobs"]
        jobs.update_one({"_id": videojob["spec"]["jobId"]}, update, upsert=True)


def test_downloads_only_for_a_succeeded_job_and_only_its_recorded_outputs(
    api: Api, media: Media, kube: Kube, http: httpx.Client
) -> None:
    # Fails if a running job offers a link to what its Pod has stored so far (a half-uploaded
    # rendition), or if a succeeded job's links are not exactly the outputs its record lists
    # (plus the manifest that listed them): an object under the prefix the manifest does not
    # list is never offered.
    job_id = upload(api, media)
    s3 = api.ctx.storage.client
    bucket = api.settings.s3_bucket
    s3.put_object(Bucket=bucket, Key=output_key(job_id, "720p.mp4"), Body=b"half a rendition")
    running = set_videojob_status(
        kube,
        job_id,
        {"phase": "Running", "progress": 40, "attempts": 1, "startedAt": "2026-01-01T00:00:05Z"},
    )
    mirror(api, running)
    detail = http.get(f"/v1/jobs/{job_id}", headers=api.headers()).json()
    assert detail["phase"] == "Running" and detail["progress"] == 40
    assert detail["downloads"] == {"renditions": {}}

    produced = {
        "poster.jpg": b"jpeg",
        "storyboard.jpg": b"sprite",
        "storyboard.vtt": b"WEBVTT",
        "metadata.json": b"{}",
        "720p.mp4": b"mp4",
        "manifest.json": b"{}",
    }
    for name, body in produced.items():
        s3.put_object(Bucket=bucket, Key=output_key(job_id, name), Body=body)
    s3.put_object(Bucket=bucket, Key=output_key(job_id, "480p.mp4"), Body=b"not in the manifest")
    outputs = sorted(output_key(job_id, n) for n in produced if n != "manifest.json")
    succeeded = set_videojob_status(
        kube,
        job_id,
        {
            "phase": "Succeeded",
            "progress": 100,
            "finishedAt": "2026-01-01T00:01:05Z",
            "outputs": outputs,
        },
    )
    mirror(api, succeeded)
    detail = http.get(f"/v1/jobs/{job_id}", headers=api.headers()).json()
    assert detail["phase"] == "Succeeded" and detail["seedStatus"] == "Processed"
    downloads = detail["downloads"]
    assert set(downloads) == {"poster", "storyboard", "metadata", "manifest", "renditions"}
    assert set(downloads["renditions"]) == {"720p"}
    links = [
        downloads["poster"],
        downloads["storyboard"]["image"],
        downloads["storyboard"]["vtt"],
        downloads["metadata"],
        downloads["manifest"],
        downloads["renditions"]["720p"],
    ]
    assert sorted(urlsplit(u).path.split(f"/{bucket}/", 1)[1] for u in links) == sorted(
        [*outputs, output_key(job_id, "manifest.json")]
    )
    assert httpx.get(downloads["poster"]).content == b"jpeg"
    assert httpx.get(downloads["renditions"]["720p"]).content == b"mp4"
    assert httpx.get(downloads["storyboard"]["vtt"]).content == b"WEBVTT"
    # The guessed seed aliases are gone (the real old paths are in test_compat.py).
    assert http.get(f"/api/tasks/{job_id}", headers=api.headers()).status_code == 404


def test_cancel(api: Api, media: Media, kube: Kube, http: httpx.Client) -> None:
    job_id = upload(api, media)
    resp = http.post(f"/v1/jobs/{job_id}/cancel", headers=api.headers())
    assert resp.status_code == 202, resp.text
    assert resp.json()["cancelRequested"] is True
    vj = kube.videojob(job_id)
    assert vj is not None and vj["spec"]["cancel"] is True
    set_job(api, job_id, {"phase": "Cancelled"})
    resp = http.post(f"/v1/jobs/{job_id}/cancel", headers=api.headers())
    assert resp.status_code == 409
    assert resp.json()["code"] == "job_already_finished"
    missing = http.post("/v1/jobs/vj-doesnotexist/cancel", headers=api.headers())
    assert missing.status_code == 404


def test_delete_keeps_audit_record(api: Api, media: Media, kube: Kube, http: httpx.Client) -> None:
    job_id = upload(api, media)
    s3 = api.ctx.storage.client
    s3.put_object(Bucket=api.settings.s3_bucket, Key=output_key(job_id, "poster.jpg"), Body=b"x")
    set_job(api, job_id, {"phase": "Running"})
    assert http.delete(f"/v1/jobs/{job_id}", headers=api.headers()).status_code == 204
    assert kube.videojob(job_id) is None or kube.videojob(job_id)["metadata"].get(  # type: ignore[index]
        "deletionTimestamp"
    )
    left = s3.list_objects_v2(Bucket=api.settings.s3_bucket, Prefix=f"outputs/{job_id}/")
    assert not left.get("Contents")
    assert not source_exists(api, job_id)
    assert http.get(f"/v1/jobs/{job_id}", headers=api.headers()).status_code == 404
    listed = http.get("/v1/jobs", headers=api.headers(), params={"limit": 100}).json()
    assert job_id not in {j["id"] for j in listed["items"]}
    with api.mongo() as mc:
        doc = mc[api.settings.mongo_database]["jobs"].find_one({"_id": job_id})
    assert doc is not None and doc["deleted"] is True and doc["deleted_at"]
    # The job reached the cluster: its phase is the operator's to record when it sees the
    # VideoJob go. Fails if the API writes it (two writers of one field).
    assert doc["phase"] == "Running"


# -- presigned uploads ----------------------------------------------------------------------


def test_presigned_multipart_upload(
    api_factory: Any, media: Media, kube: Kube, tmp_path: Path
) -> None:
    # 11 MiB of a real video padded at the end (ffprobe ignores trailing bytes after the MP4
    # boxes it knows), so the session has two parts of at least 5 MiB.
    data = media.ok.read_bytes()
    with (
        api_factory(max_upload_bytes=64 * 1024 * 1024, part_size_bytes=8 * 1024 * 1024) as api,
        httpx.Client(base_url=api.url, timeout=60) as http,
    ):
        padded = data + b"\0" * (11 * 1024 * 1024)
        resp = http.post(
            "/v1/uploads",
            headers=api.headers(),
            json={"sizeBytes": len(padded), "filename": "../big film.mp4"},
        )
        assert resp.status_code == 201, resp.text
        session = resp.json()
        assert len(session["parts"]) == 2
        size = session["partSize"]
        etags = []
        for part in session["parts"]:
            n = part["partNumber"]
            put = httpx.put(part["url"], content=padded[(n - 1) * size : n * size])
            assert put.status_code == 200, put.text
            etags.append({"partNumber": n, "etag": put.headers["etag"]})
        other = http.post(session["completeUrl"], headers=api.headers("bob"), json={"parts": etags})
        assert other.status_code == 404 and other.json()["code"] == "upload_not_found"
        wrong = [{"partNumber": 1, "etag": '"0000"'}, etags[1]]
        bad = http.post(session["completeUrl"], headers=api.headers(), json={"parts": wrong})
        assert bad.status_code == 422, bad.text
        done = http.post(session["completeUrl"], headers=api.headers(), json={"parts": etags})
        assert done.status_code == 202, done.text
        job = done.json()
        assert job["id"] == session["jobId"] and job["filename"] == "big film.mp4"
        assert job["sizeBytes"] == len(padded)
        assert kube.videojob(job["id"]) is not None
        # A retry whose first answer was lost gets the same job, never a second one (fails if
        # a retry is refused or records the upload twice).
        again = http.post(session["completeUrl"], headers=api.headers(), json={"parts": etags})
        assert again.status_code == 202 and again.json()["id"] == job["id"], again.text
        assert [d["_id"] for d in job_docs(api)] == [job["id"]]


def test_presigned_upload_of_bad_video_is_removed(
    api: Api, media: Media, http: httpx.Client
) -> None:
    data = media.text.read_bytes()
    session = http.post("/v1/uploads", headers=api.headers(), json={"sizeBytes": len(data)}).json()
    (part,) = session["parts"]
    etag = httpx.put(part["url"], content=data).headers["etag"]
    done = http.post(
        session["completeUrl"],
        headers=api.headers(),
        json={"parts": [{"partNumber": 1, "etag": etag}]},
    )
    assert done.status_code == 422 and done.json()["code"] == "not_a_video"
    assert not source_exists(api, session["jobId"])
    assert http.get(f"/v1/jobs/{session['jobId']}", headers=api.headers()).status_code == 404


def test_presigned_session_limits_and_abort(api: Api, http: httpx.Client) -> None:
    too_big = http.post(
        "/v1/uploads", headers=api.headers(), json={"sizeBytes": api.settings.max_upload_bytes + 1}
    )
    assert too_big.status_code == 413 and too_big.json()["code"] == "upload_too_large"
    invalid = http.post("/v1/uploads", headers=api.headers(), json={"sizeBytes": 0})
    assert invalid.status_code == 422
    session = http.post("/v1/uploads", headers=api.headers(), json={"sizeBytes": 10}).json()
    assert (
        http.delete(f"/v1/uploads/{session['uploadId']}", headers=api.headers()).status_code == 204
    )
    uploads = api.ctx.storage.client.list_multipart_uploads(Bucket=api.settings.s3_bucket)
    assert source_key(session["jobId"]) not in {u["Key"] for u in uploads.get("Uploads", [])}
    assert (
        http.delete(f"/v1/uploads/{session['uploadId']}", headers=api.headers()).status_code == 404
    )


# -- service endpoints ----------------------------------------------------------------------


def test_service_endpoints(api: Api, media: Media, http: httpx.Client) -> None:
    assert http.get("/").json()["name"] == "vidpipe-api"
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/api/health/check").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert {k: v["status"] for k, v in ready.json()["checks"].items()} == {
        "s3": "ok",
        "mongodb": "ok",
        "kubernetes": "ok",
    }
    upload(api, media)
    http.get("/v1/jobs/vj-nope", headers=api.headers())
    # Metrics are served on their own port (`metrics_port`), never on the public one.
    assert http.get("/metrics").status_code == 404
    text = bytes(api.ctx.metrics.exposition().body).decode()
    assert 'vidpipe_api_requests_total{method="POST",route="/v1/videos",status="202"}' in text
    assert 'route="/v1/jobs/{job_id}",status="404"' in text
    assert "vidpipe_api_jobs_created_total" in text
    assert 'vidpipe_api_rejections_total{code="job_not_found"}' in text
    assert "vidpipe_api_upload_bytes_total" in text
    docs = http.get("/openapi.json").json()
    assert "/v1/videos" in docs["paths"] and "/v1/uploads/{upload_id}/complete" in docs["paths"]
    assert http.get("/docs").status_code == 200
    nope = http.get("/no/such/path")
    assert nope.status_code == 404 and nope.json()["code"] == "not_found"
    method = http.patch("/v1/jobs")
    assert method.status_code == 405 and method.json()["code"] == "method_not_allowed"
