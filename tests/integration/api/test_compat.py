"""The replaced service's contract, called as its old clients call it: multipart `user_id` and
`video_file`, the old query parameters, the old field names. Real uvicorn, S3, FerretDB and a
Kubernetes API; the operator's status writes are stood in for by `set_job` (the real processor
runs in tests/e2e/test_compat.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import Api, ApiFactory, Kube, Media
from tests.integration.api.test_jobs import set_job
from tests.integration.api.test_uploads import all_source_keys, job_docs
from vidpipe.keys import POSTER_NAME, output_key

pytestmark = pytest.mark.integration

UPLOAD = "/api/video/upload"
OK_UPLOAD_FIELDS = {"status", "task_id", "internal_status_code"}


@pytest.fixture
def http(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=60) as client:
        yield client


def old_upload(
    api: Api,
    data: bytes,
    *,
    user_id: str | None = "alice",
    key: str | None = "alice",
    filename: str = "clip.mp4",
) -> httpx.Response:
    """The old client's call: form field `user_id` then the file as `video_file`."""
    headers = api.headers(key) if key else {}
    fields = {"user_id": user_id} if user_id is not None else {}
    with httpx.Client(base_url=api.url, timeout=60) as client:
        return client.post(
            UPLOAD,
            headers=headers,
            data=fields,
            files={"video_file": (filename, data, "video/mp4")},
        )


def file_first_upload(api: Api, data: bytes, user_id: str) -> httpx.Response:
    """A browser FormData that appended the file first: `user_id` arrives after the video."""
    body = (
        b'--B\r\nContent-Disposition: form-data; name="video_file"; filename="a.mp4"\r\n'
        b"Content-Type: video/mp4\r\n\r\n" + data + b"\r\n"
        b'--B\r\nContent-Disposition: form-data; name="user_id"\r\n\r\n'
        + user_id.encode()
        + b"\r\n--B--\r\n"
    )
    headers = {**api.headers(), "Content-Type": "multipart/form-data; boundary=B"}
    with httpx.Client(base_url=api.url, timeout=60) as client:
        return client.post(UPLOAD, headers=headers, content=body)


def accepted(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == OK_UPLOAD_FIELDS, body
    assert body["status"] == "ok" and body["internal_status_code"] == 1
    task_id: str = body["task_id"]
    assert isinstance(task_id, str) and task_id
    return task_id


def refused(resp: httpx.Response, old_code: int, ours: str, http_status: int = 200) -> None:
    assert resp.status_code == http_status, resp.text
    body = resp.json()
    assert body["status"] == "error" and body["task_id"] is None, body
    assert body["internal_status_code"] == old_code and body["code"] == ours, body


def progress(http: httpx.Client, api: Api, task_id: str) -> dict[str, Any]:
    resp = http.get(
        "/api/video/task", params={"type": "progress", "task_id": task_id}, headers=api.headers()
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def thumbnail(http: httpx.Client, api: Api, task_id: str) -> httpx.Response:
    return http.get(
        "/api/video/task", params={"type": "thumbnail", "task_id": task_id}, headers=api.headers()
    )


def test_old_client_uploads_lists_and_follows_a_task(
    api: Api, media: Media, kube: Kube, http: httpx.Client
) -> None:
    # Fails if the upload is not the v1 path (no VideoJob, no record), if any field of the old
    # shapes is renamed or missing, if the statuses do not follow the phases, or if the
    # thumbnail is not the poster's bytes.
    task_id = accepted(old_upload(api, media.ok.read_bytes()))
    vj = kube.videojob(task_id)
    assert vj is not None and vj["spec"]["owner"] == "alice"
    (doc,) = [d for d in job_docs(api) if d["_id"] == task_id]
    assert doc["uploaded_via"] == "compat" and doc["filename"] == "clip.mp4"

    listed = http.get("/api/video/tasks", params={"user_id": "alice"}, headers=api.headers())
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert {k: body[k] for k in ("status", "internal_status_code", "user_id", "truncated")} == {
        "status": "ok",
        "internal_status_code": 1,
        "user_id": "alice",
        "truncated": False,
    }
    mine = [t for t in body["tasks"] if t["task_id"] == task_id]
    assert len(mine) == 1 and mine[0]["task_status"] == "Saved" and mine[0]["progress"] == 0
    assert set(mine[0]) == {
        "task_id",
        "task_status",
        "progress",
        "file_name",
        "created_at",
        "updated_at",
        "error",
    }

    one = http.get(
        "/api/video/tasks", params={"user_id": "alice", "task_id": task_id}, headers=api.headers()
    ).json()
    assert one["status"] == "ok" and one["task_id"] == task_id and one["task_status"] == "Saved"
    assert one["file_name"] == "clip.mp4"

    assert progress(http, api, task_id) == {
        "status": "ok",
        "internal_status_code": 1,
        "task_id": task_id,
        "task_status": "Saved",
        "progress": 0,
    }
    early = thumbnail(http, api, task_id)
    assert early.status_code == 200 and early.json()["internal_status_code"] == 7
    assert early.json()["status"] == "error" and early.json()["task_id"] == task_id

    set_job(api, task_id, {"phase": "Running", "progress": 40})
    now = progress(http, api, task_id)
    assert now["task_status"] == "Processing" and now["progress"] == 40
    assert thumbnail(http, api, task_id).json()["internal_status_code"] == 7

    poster = b"\xff\xd8\xff" + b"poster" * 20_000  # > one 64 KiB chunk
    s3 = api.ctx.storage.client
    s3.put_object(Bucket=api.settings.s3_bucket, Key=output_key(task_id, POSTER_NAME), Body=poster)
    assert thumbnail(http, api, task_id).json()["internal_status_code"] == 7  # still Running
    outputs = [output_key(task_id, POSTER_NAME)]
    set_job(api, task_id, {"phase": "Succeeded", "progress": 100, "outputs": outputs})
    assert progress(http, api, task_id)["task_status"] == "Processed"
    thumb = thumbnail(http, api, task_id)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content == poster

    set_job(api, task_id, {"phase": "Failed", "error": {"code": "corrupt_media", "message": "x"}})
    failed = thumbnail(http, api, task_id).json()
    assert failed["internal_status_code"] == 8 and failed["code"] == "corrupt_media"
    assert progress(http, api, task_id)["task_status"] == "Failed"


def test_user_id_after_the_file_is_accepted_and_checked(api: Api, media: Media) -> None:
    # Fails if a trailing `user_id` is refused, or if a wrong one (only known after the video
    # was streamed) leaves the video in S3 or a job behind.
    accepted(file_first_upload(api, media.ok.read_bytes(), "alice"))
    before_keys, before_jobs = all_source_keys(api), len(job_docs(api))
    wrong = file_first_upload(api, media.ok.read_bytes(), "bob")
    refused(wrong, 2, "forbidden", http_status=403)
    assert all_source_keys(api) == before_keys and len(job_docs(api)) == before_jobs


def test_user_id_must_be_the_keys_owner(api: Api, media: Media, http: httpx.Client) -> None:
    # Fails if `user_id` is used to pick whose data is read or written, instead of being checked
    # against the key: alice's key must never upload as, list, or read bob's tasks.
    bobs = accepted(old_upload(api, media.ok.read_bytes(), user_id="bob", key="bob"))
    before = all_source_keys(api)
    refused(old_upload(api, media.ok.read_bytes(), user_id="bob"), 2, "forbidden", 403)
    assert all_source_keys(api) == before
    as_bob = http.get("/api/video/tasks", params={"user_id": "bob"}, headers=api.headers())
    refused(as_bob, 2, "forbidden", 403)
    other = http.get(
        "/api/video/tasks", params={"user_id": "alice", "task_id": bobs}, headers=api.headers()
    )
    refused(other, 2, "job_not_found")
    for kind in ("progress", "thumbnail"):
        peek = http.get(
            "/api/video/task", params={"type": kind, "task_id": bobs}, headers=api.headers()
        )
        refused(peek, 2, "job_not_found")
    listed = http.get("/api/video/tasks", params={"user_id": "alice"}, headers=api.headers())
    assert bobs not in {t["task_id"] for t in listed.json()["tasks"]}


def test_every_route_but_root_and_health_needs_a_key(api: Api, media: Media) -> None:
    # Fails if a compatibility route answers without a key (the old service had none; we keep
    # ours), or if root and health stop answering anonymous load balancers.
    with httpx.Client(base_url=api.url, timeout=60) as anonymous:
        root = anonymous.get("/")
        assert root.status_code == 200 and {"message", "version"} <= set(root.json())
        assert anonymous.get("/api/health/check").status_code == 200
        calls = [
            ("GET", "/api/video/tasks", {"user_id": "alice"}),
            ("GET", "/api/video/task", {"type": "progress", "task_id": "vj-x"}),
            ("GET", "/api/video/analytics/queue", {}),
            ("GET", "/api/video/analytics/system", {}),
        ]
        for method, path, params in calls:
            refused(anonymous.request(method, path, params=params), 2, "unauthenticated", 401)
        assert anonymous.head(UPLOAD).status_code == 401
        bad_key = {"Authorization": "Bearer vpk_000000000000_" + "A" * 43}
        assert anonymous.get("/api/video/analytics/queue", headers=bad_key).status_code == 401
    refused(old_upload(api, media.ok.read_bytes(), key=None), 2, "unauthenticated", 401)
    with httpx.Client(base_url=api.url, timeout=60) as client:
        assert client.head(UPLOAD, headers=api.headers()).status_code == 200


@pytest.mark.parametrize(
    ("which", "old_code", "ours"),
    [
        ("text", 3, "not_a_video"),
        ("playlist", 3, "unsupported_format"),
        ("long", 2, "duration_limit_exceeded"),
        ("big", 2, "resolution_limit_exceeded"),
        ("empty", 2, "empty_upload"),
        ("oversize", 4, "upload_too_large"),
    ],
)
def test_refusals_answer_the_old_codes(
    api: Api, media: Media, which: str, old_code: int, ours: str
) -> None:
    # Fails if a refusal is not a 200 with its old code (what old clients parse), or if a
    # refused upload leaves its object or a job behind.
    data = (
        media.ok.read_bytes() + b"\0" * (3 * 1024 * 1024)
        if which == "oversize"
        else getattr(media, which).read_bytes()
    )
    before_keys, before_jobs = all_source_keys(api), len(job_docs(api))
    refused(old_upload(api, data), old_code, ours)
    assert all_source_keys(api) == before_keys and len(job_docs(api)) == before_jobs
    text = bytes(api.ctx.metrics.exposition().body).decode()
    assert f'vidpipe_api_rejections_total{{code="{ours}"}}' in text


def _until_refused(api: Api, media: Media, key: str) -> httpx.Response:
    """Attempts count whether or not they are accepted, so a text file spends one cheaply.

    The limits under test are per day: a window can only turn over between two attempts at
    midnight UTC, so one attempt more than the limit is allowed for.
    """
    for _ in range(4):
        resp = old_upload(api, media.text.read_bytes(), user_id=key, key=key)
        assert resp.status_code == 200, resp.text
        if resp.json()["code"] == "rate_limited":
            return resp
    raise AssertionError("no rate limit reached")


def test_user_and_global_rate_limits_answer_6_and_5(api_factory: ApiFactory, media: Media) -> None:
    # Fails if the user's own limit and the service-wide one are not told apart (6 vs 5), or if
    # Retry-After is lost.
    with api_factory(rate_owner_per_day=2) as api:
        resp = _until_refused(api, media, "alice")
        assert resp.json()["internal_status_code"] == 6
        assert int(resp.headers["retry-after"]) > 0
    with api_factory(rate_global_per_day=2) as api:
        old_upload(api, media.text.read_bytes(), user_id="bob", key="bob")
        resp = _until_refused(api, media, "alice")
        assert resp.json()["internal_status_code"] == 5
        assert resp.json()["details"]["scope"] == "global"


def test_missing_or_unknown_parameters_are_fastapis_422(
    api: Api, media: Media, http: httpx.Client
) -> None:
    # Fails if a missing required parameter or an unknown `type` is not a 422 with FastAPI's
    # `detail` list naming it, as the old service answered.
    def detail(resp: httpx.Response) -> list[tuple[str, ...]]:
        assert resp.status_code == 422, resp.text
        assert resp.json()["internal_status_code"] == 2
        return [tuple(d["loc"]) for d in resp.json()["detail"]]

    h = api.headers()
    bad_type = http.get("/api/video/task", params={"type": "poster", "task_id": "x"}, headers=h)
    assert detail(bad_type) == [("query", "type")]
    assert bad_type.json()["detail"][0]["type"] == "enum"
    assert detail(http.get("/api/video/task", params={"type": "progress"}, headers=h)) == [
        ("query", "task_id")
    ]
    assert detail(http.get("/api/video/tasks", headers=h)) == [("query", "user_id")]
    assert detail(old_upload(api, media.ok.read_bytes(), user_id=None)) == [("body", "user_id")]
    only_user = b'--B\r\nContent-Disposition: form-data; name="user_id"\r\n\r\nalice\r\n--B--\r\n'
    form = {**h, "Content-Type": "multipart/form-data; boundary=B"}
    with httpx.Client(base_url=api.url, timeout=60) as client:
        no_file = client.post(UPLOAD, headers=form, content=only_user)
    assert detail(no_file) == [("body", "video_file")]


def test_thumbnail_of_a_job_made_without_a_poster(
    api: Api, media: Media, http: httpx.Client
) -> None:
    # Fails if a processed task without a poster answers anything but "invalid input" (2), or
    # serves a poster.jpg its manifest (the record's outputs) does not list.
    task_id = accepted(old_upload(api, media.ok.read_bytes()))
    stray = output_key(task_id, POSTER_NAME)
    api.ctx.storage.client.put_object(Bucket=api.settings.s3_bucket, Key=stray, Body=b"\xff\xd8")
    set_job(api, task_id, {"phase": "Succeeded", "progress": 100, "outputs": []})
    refused_body = thumbnail(http, api, task_id).json()
    assert refused_body["internal_status_code"] == 2 and refused_body["code"] == "not_found"


def test_analytics_queue_and_system(api_factory: ApiFactory, media: Media) -> None:
    # Fails if the queue figures are not the owner's own counts (or everyone's for an admin
    # key), or if the system answer leaks a credential or misreports a dependency.
    with api_factory() as api, httpx.Client(base_url=api.url, timeout=60) as http:
        ids = [accepted(old_upload(api, media.ok.read_bytes())) for _ in range(3)]
        set_job(api, ids[0], {"phase": "Running", "progress": 10})
        set_job(api, ids[1], {"phase": "Cancelled"})
        accepted(old_upload(api, media.ok.read_bytes(), user_id="bob", key="bob"))
        mine = http.get("/api/video/analytics/queue", headers=api.headers()).json()
        assert mine["status"] == "ok" and mine["internal_status_code"] == 1
        assert mine["scope"] == "user" and mine["queue_depth"] == 1 and mine["processing"] == 1
        assert mine["tasks_by_status"] == {
            "Saved": 1,
            "Processing": 1,
            "Processed": 0,
            "Failed": 1,
        }
        everyone = http.get("/api/video/analytics/queue", headers=api.headers("root")).json()
        assert everyone["scope"] == "all" and everyone["queue_depth"] == 2

        system = http.get("/api/video/analytics/system", headers=api.headers())
        assert system.status_code == 200, system.text
        body = system.json()
        assert body["dependencies"] == {"s3": "ok", "mongodb": "ok", "kubernetes": "ok"}
        assert body["limits"]["max_upload_bytes"] == api.settings.max_upload_bytes
        text = system.text
        secrets = [
            api.settings.mongo_url.get_secret_value(),
            api.settings.s3_credentials()[1] or "",
        ]
        assert all(s and s not in text for s in secrets)


def test_openapi_marks_the_layer_deprecated_with_examples(http: httpx.Client) -> None:
    # Fails if a compatibility operation is not deprecated, lacks examples, or if the guessed
    # `/api/tasks` aliases come back.
    paths = http.get("/openapi.json").json()["paths"]
    old = {p: ops for p, ops in paths.items() if p.startswith("/api/")}
    assert set(old) == {
        "/api/health/check",
        "/api/video/upload",
        "/api/video/tasks",
        "/api/video/task",
        "/api/video/analytics/queue",
        "/api/video/analytics/system",
    }
    assert set(old["/api/video/upload"]) == {"post", "head"}
    for ops in old.values():
        assert all(op.get("deprecated") is True for op in ops.values())
    upload = old["/api/video/upload"]["post"]
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form["required"]) == {"user_id", "video_file"}
    examples = upload["responses"]["200"]["content"]["application/json"]["examples"]
    assert {e["value"]["internal_status_code"] for e in examples.values()} >= {1, 3, 4, 5, 6}


def test_switched_off_the_old_paths_are_gone(api_factory: ApiFactory, media: Media) -> None:
    # Fails if `compat_enabled=False` leaves any old path answering, or takes /v1 or root along.
    with api_factory(compat_enabled=False) as api, httpx.Client(base_url=api.url) as http:
        assert old_upload(api, media.ok.read_bytes()).status_code == 404
        assert http.get("/api/health/check").status_code == 404
        tasks = http.get("/api/video/tasks", params={"user_id": "alice"}, headers=api.headers())
        assert tasks.status_code == 404
        assert http.get("/").status_code == 200
        assert http.get("/v1/jobs", headers=api.headers()).status_code == 200
        assert not [p for p in http.get("/openapi.json").json()["paths"] if p.startswith("/api")]
