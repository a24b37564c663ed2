"""`priority` at upload (issue 16): every upload path records it in the job and the VideoJob."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import Api, Kube, Media

pytestmark = pytest.mark.integration


def test_each_upload_path_records_the_priority_in_the_videojob(
    api: Api, media: Media, kube: Kube
) -> None:
    # Fails if a path drops the priority on its way to the VideoJob or the job view, or if the
    # default is not normal.
    data = media.ok.read_bytes()
    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers()) as http:
        form = http.post(
            "/v1/videos", files={"file": ("a.mp4", data, "video/mp4")}, data={"priority": "high"}
        )
        raw = http.put(
            "/v1/videos",
            params={"priority": "low"},
            headers={"Content-Type": "video/mp4"},
            content=data,
        )
        plain = http.post("/v1/videos", files={"file": ("a.mp4", data, "video/mp4")})
        session = http.post("/v1/uploads", json={"sizeBytes": len(data), "priority": "high"})
        assert session.status_code == 201, session.text
        (part,) = session.json()["parts"]
        etag = httpx.put(part["url"], content=data).headers["etag"]
        presigned = http.post(
            session.json()["completeUrl"], json={"parts": [{"partNumber": 1, "etag": etag}]}
        )
    expected = {form: "high", raw: "low", plain: "normal", presigned: "high"}
    for resp, priority in expected.items():
        assert resp.status_code == 202, resp.text
        assert resp.json()["priority"] == priority
        vj = kube.videojob(resp.json()["id"])
        assert vj is not None and vj["spec"]["priority"] == priority


def test_an_unknown_priority_is_refused_before_anything_is_stored(
    api: Api, media: Media, kube: Kube
) -> None:
    # Fails if an unknown priority were accepted (or defaulted), or refused without naming it.
    before = kube.videojob_names()
    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers()) as http:
        form = http.post(
            "/v1/videos",
            files={"file": ("a.mp4", media.ok.read_bytes(), "video/mp4")},
            data={"priority": "urgent"},
        )
        session = http.post("/v1/uploads", json={"sizeBytes": 10, "priority": "urgent"})
    for resp in (form, session):
        assert resp.status_code == 422, resp.text
        body = resp.json()
        assert body["code"] == "validation_failed" and body["details"]["field"] == "priority"
    assert kube.videojob_names() == before
