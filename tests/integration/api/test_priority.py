"""`priority` at upload (issue 16): every upload path records it in the job and the VideoJob."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.api.conftest import Api, Kube, Media

pytestmark = pytest.mark.integration


def form_upload(http: httpx.Client, data: bytes, **fields: str) -> httpx.Response:
    return http.post("/v1/videos", files={"file": ("a.mp4", data, "video/mp4")}, data=fields)


def raw_upload(http: httpx.Client, data: bytes, **params: str) -> httpx.Response:
    return http.put(
        "/v1/videos", params=params, headers={"Content-Type": "video/mp4"}, content=data
    )


def test_each_upload_path_records_the_priority_in_the_videojob(
    api: Api, media: Media, kube: Kube
) -> None:
    # Fails if a path drops the priority on its way to the VideoJob or the job view, or if the
    # default is not normal.
    data = media.ok.read_bytes()
    # An admin key: only those may ask for `high` by default (the next test).
    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers("root")) as http:
        form = form_upload(http, data, priority="high")
        raw = raw_upload(http, data, priority="low")
        plain = form_upload(http, data)
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


def test_a_tenant_key_asking_for_high_is_refused_on_every_path_before_anything_is_stored(
    api: Api, media: Media, kube: Kube
) -> None:
    # Fails if a tenant's key could give its jobs `high` (in Kueue mode that preempts other
    # tenants' running jobs), on any path, or if the refusal came after the upload was stored.
    before = kube.videojob_names()
    data = media.ok.read_bytes()
    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers("alice")) as http:
        form = form_upload(http, data, priority="high")
        raw = raw_upload(http, data, priority="HIGH")
        session = http.post("/v1/uploads", json={"sizeBytes": len(data), "priority": "high"})
        normal = http.post("/v1/uploads", json={"sizeBytes": len(data), "priority": "normal"})
    for resp in (form, raw, session):
        assert resp.status_code == 403, resp.text
        assert resp.json()["code"] == "forbidden"
    assert normal.status_code == 201, normal.text
    assert kube.videojob_names() == before
