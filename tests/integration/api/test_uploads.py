"""Uploads end to end: real uvicorn, real S3, real FerretDB, real Kubernetes API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.integration.api.conftest import TEST_PART_SIZE, Api, Kube, Media
from vidpipe.keys import source_key

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def post_video(
    api: Api,
    data: bytes,
    *,
    owner: str = "alice",
    filename: str = "clip.mp4",
    content_type: str = "video/mp4",
    fields: dict[str, str] | None = None,
) -> httpx.Response:
    with httpx.Client(base_url=api.url, timeout=60) as c:
        return c.post(
            "/v1/videos",
            headers=api.headers(owner),
            files={"file": (filename, data, content_type)},
            data=fields or {},
        )


def source_exists(api: Api, job_id: str) -> bool:
    client = api.ctx.storage.client
    found = client.list_objects_v2(Bucket=api.settings.s3_bucket, Prefix=source_key(job_id))
    return bool(found.get("Contents"))


def job_docs(api: Api, owner: str = "alice") -> list[dict[str, Any]]:
    with api.mongo() as mc:
        return list(mc[api.settings.mongo_database]["jobs"].find({"owner": owner}))


def all_source_keys(api: Api) -> set[str]:
    paginator = api.ctx.storage.client.get_paginator("list_objects_v2")
    keys: set[str] = set()
    for page in paginator.paginate(Bucket=api.settings.s3_bucket, Prefix="sources/"):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


def test_multipart_upload_creates_object_record_and_videojob(
    api: Api, media: Media, kube: Kube
) -> None:
    resp = post_video(api, media.ok.read_bytes(), fields={"renditions": "240p,480p"})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    job_id = body["id"]
    assert resp.headers["location"] == f"/v1/jobs/{job_id}"
    assert body["phase"] == "Pending" and body["seedStatus"] == "Saved"
    assert body["filename"] == "clip.mp4"
    assert body["media"]["width"] == 160 and body["media"]["height"] == 120
    assert [r["height"] for r in body["options"]["renditions"]] == [240, 480]
    assert source_exists(api, job_id)
    (doc,) = [d for d in job_docs(api) if d["_id"] == job_id]
    assert doc["cr_created"] is True and doc["phase"] == "Pending"
    assert doc["source"] == {"bucket": api.settings.s3_bucket, "key": source_key(job_id)}
    vj = kube.videojob(job_id)
    assert vj is not None
    assert vj["spec"]["jobId"] == job_id and vj["spec"]["owner"] == "alice"
    assert vj["spec"]["source"]["key"] == source_key(job_id)
    assert vj["metadata"]["labels"]["media.vidpipe.io/owner"] == "alice"
    assert [r["name"] for r in vj["spec"]["outputs"]["renditions"]] == ["240p", "480p"]


@pytest.mark.parametrize("route", ["form", "raw"])
def test_upload_over_several_parts_is_stored_whole(
    api_factory: Any, large_media: Path, kube: Kube, route: str
) -> None:
    """Fails if an upload larger than a part is not stored as one completed multipart upload
    (its ETag counts the parts) holding exactly the bytes sent, or leaves a part upload open."""
    data = large_media.read_bytes()
    with api_factory(
        part_size_bytes=TEST_PART_SIZE, max_upload_bytes=64 * MiB, max_duration_seconds=10
    ) as api:
        if route == "form":
            resp = post_video(api, data)
        else:
            with httpx.Client(base_url=api.url, timeout=60) as c:
                resp = c.put(
                    "/v1/videos",
                    headers={**api.headers(), "Content-Type": "video/mp4"},
                    content=iter([data[i : i + MiB] for i in range(0, len(data), MiB)]),
                )
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        assert resp.json()["sizeBytes"] == len(data)
        s3 = api.ctx.storage.client
        stored = s3.get_object(Bucket=api.settings.s3_bucket, Key=source_key(job_id))
        assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(data).digest()
        # S3 gives a completed multipart object the ETag "<md5 of the part md5s>-<parts>".
        parts = -(-len(data) // TEST_PART_SIZE)
        assert parts >= 3 and stored["ETag"].strip('"').endswith(f"-{parts}")
        uploads = s3.list_multipart_uploads(Bucket=api.settings.s3_bucket).get("Uploads", [])
        assert [u for u in uploads if source_key(job_id) == u["Key"]] == []
        assert kube.videojob(job_id) is not None


def test_multipart_upload_with_options_json(api: Api, media: Media, kube: Kube) -> None:
    options = {"renditions": [{"name": "small", "height": 144}], "poster": False}
    resp = post_video(api, media.ok.read_bytes(), fields={"options": json.dumps(options)})
    assert resp.status_code == 202, resp.text
    vj = kube.videojob(resp.json()["id"])
    assert vj is not None
    assert vj["spec"]["outputs"]["poster"] is False
    assert vj["spec"]["outputs"]["renditions"][0]["name"] == "small"


def test_raw_put_upload(api: Api, media: Media, kube: Kube) -> None:
    name = "Ferien Übersicht 2024.mp4"
    with httpx.Client(base_url=api.url, timeout=60) as c:
        resp = c.put(
            "/v1/videos",
            params={"renditions": "240p", "storyboard": "false"},
            headers={
                **api.headers(),
                "Content-Type": "video/mp4",
                "X-Filename": quote(name),
            },
            content=iter([media.ok.read_bytes()]),  # chunked: no Content-Length
        )
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["filename"] == name
    assert body["options"]["storyboard"]["enabled"] is False
    assert kube.videojob(body["id"]) is not None


def test_raw_put_refuses_non_video_content_type(api: Api, media: Media) -> None:
    with httpx.Client(base_url=api.url, timeout=60) as c:
        resp = c.put(
            "/v1/videos",
            headers={**api.headers(), "Content-Type": "text/plain"},
            content=b"hello",
        )
    assert resp.status_code == 415
    assert resp.json()["code"] == "unsupported_format"


@pytest.mark.parametrize(
    ("fixture", "filename", "status", "code"),
    [
        ("empty", "empty.mp4", 422, "empty_upload"),
        ("text", "notes.mp4", 422, "not_a_video"),
        ("truncated", "cut.mp4", 422, "not_a_video"),
        ("playlist", "list.mp4", 415, "unsupported_format"),
        ("long", "long.mp4", 422, "duration_limit_exceeded"),
        ("big", "big.mp4", 422, "resolution_limit_exceeded"),
    ],
)
def test_bad_uploads_are_rejected_and_leave_nothing(
    api: Api, media: Media, kube: Kube, fixture: str, filename: str, status: int, code: str
) -> None:
    before_keys, before_docs = all_source_keys(api), len(job_docs(api, "bob"))
    before_vjs = kube.videojob_names()
    data = getattr(media, fixture).read_bytes()
    resp = post_video(api, data, owner="bob", filename=filename)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["code"] == code
    assert set(body) <= {"code", "message", "details"}
    assert all_source_keys(api) == before_keys
    assert len(job_docs(api, "bob")) == before_docs
    assert kube.videojob_names() == before_vjs


def test_over_size_limit_by_content_length(api: Api) -> None:
    resp = post_video(api, b"\0" * (api.settings.max_upload_bytes + 300 * 1024))
    assert resp.status_code == 413
    assert resp.json()["code"] == "upload_too_large"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd.mp4", "passwd.mp4"),
        ("..\\..\\windows\\evil.mp4", "evil.mp4"),
        ("видео 🎬.mp4", "видео 🎬.mp4"),
        ("...", None),
    ],
)
def test_hostile_filenames_are_sanitized_metadata_only(
    api: Api, media: Media, filename: str, expected: str | None
) -> None:
    resp = post_video(api, media.ok.read_bytes(), filename=filename)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["filename"] == expected
    head = api.ctx.storage.client.head_object(
        Bucket=api.settings.s3_bucket, Key=source_key(body["id"])
    )
    assert head["ContentLength"] == media.ok.stat().st_size


def test_control_characters_in_raw_filename(api: Api, media: Media) -> None:
    with httpx.Client(base_url=api.url, timeout=60) as c:
        resp = c.put(
            "/v1/videos",
            headers={
                **api.headers(),
                "Content-Type": "video/mp4",
                "X-Filename": quote("../a\x00b\nc.mp4"),
            },
            content=media.ok.read_bytes(),
        )
    assert resp.status_code == 202, resp.text
    assert resp.json()["filename"] == "a_b_c.mp4"


def test_missing_file_field(api: Api) -> None:
    before = all_source_keys(api)
    with httpx.Client(base_url=api.url, timeout=60) as c:
        resp = c.post(
            "/v1/videos",
            headers=api.headers(),
            files={"video": ("x.txt", b"abc", "text/plain")},
        )
        assert resp.status_code == 422
        assert resp.json()["code"] == "validation_failed"
        resp = c.post("/v1/videos", headers=api.headers(), data={"renditions": "480p"})
    assert resp.status_code == 422
    assert resp.json()["code"] in {"missing_file", "validation_failed"}
    assert all_source_keys(api) == before


def test_multipart_without_file_is_missing_file(api: Api) -> None:
    with httpx.Client(base_url=api.url, timeout=60) as c:
        resp = c.post(
            "/v1/videos",
            headers=api.headers(),
            files={"renditions": (None, b"480p")},
        )
    assert resp.status_code == 422
    assert resp.json()["code"] == "missing_file"


def test_invalid_options_rejected(api: Api, media: Media) -> None:
    resp = post_video(api, media.ok.read_bytes(), fields={"renditions": "huge"})
    assert resp.status_code == 422
    assert resp.json()["code"] == "validation_failed"
    resp = post_video(api, media.ok.read_bytes(), fields={"options": "{not json"})
    assert resp.status_code == 422
    with httpx.Client(base_url=api.url, timeout=60) as c:
        resp = c.put(
            "/v1/videos",
            params={"options": json.dumps({"renditions": [{"name": "x", "height": 10}]})},
            headers={**api.headers(), "Content-Type": "video/mp4"},
            content=media.ok.read_bytes(),
        )
    assert resp.status_code == 422
    assert resp.json()["details"]["errors"]
