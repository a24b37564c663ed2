"""Abuse limits of the upload API against real uvicorn, S3 (versitygw) and FerretDB.

Every test attacks one limit the way a hostile or broken client would (stalling, trickling,
flooding a form, over-sending a presigned part) and asserts the refusal code, that the slot is
given back, and that nothing is left in S3 or MongoDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.integration.api.conftest import TEST_PART_SIZE, Api, Media, base_settings
from tests.integration.api.rawhttp import RawRequest, multipart_head, multipart_tail
from tests.integration.api.test_uploads import all_source_keys, job_docs, post_video
from tests.utils.servers import S3Server
from vidpipe.keys import source_key
from vidpipe_api.db import Database, now
from vidpipe_api.limits import UploadSlots
from vidpipe_api.reaper import claim_round, reap_once
from vidpipe_api.storage import Storage

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
T = TypeVar("T")


def slots(api: Api) -> UploadSlots:
    """The app's slot table (made by the first upload; an empty one before that)."""
    table: UploadSlots | None = getattr(api.app.state, "upload_slots", None)
    return table or UploadSlots(api.settings.max_concurrent_uploads, 1)


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    wait_until(predicate, timeout)


def wait_until(
    check: Callable[[], T | None], timeout: float = 30.0, what: str = "the condition"
) -> T:
    """Poll `check` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return value


def pending_uploads(api: Api) -> list[dict[str, Any]]:
    found = api.ctx.storage.client.list_multipart_uploads(Bucket=api.settings.s3_bucket)
    return [dict(u) for u in found.get("Uploads", []) if u["Key"].startswith("sources/")]


def first_part_stored(api: Api) -> dict[str, Any] | None:
    """The bucket's one multipart upload once S3 holds a part of it (else None): the API has
    authenticated the caller, streamed the body and started a multipart upload."""
    uploads = pending_uploads(api)
    if len(uploads) != 1:
        return None
    upload = uploads[0]
    parts = api.ctx.storage.client.list_parts(
        Bucket=api.settings.s3_bucket, Key=upload["Key"], UploadId=upload["UploadId"]
    )
    return upload if parts.get("Parts") else None


def stalled_raw(api: Api, owner: str, prefix: bytes, total: int = MiB) -> RawRequest:
    """A raw upload that announces `total` bytes, sends `prefix`, then sends nothing more."""
    req = RawRequest(
        api.url,
        "PUT",
        "/v1/videos",
        {**api.headers(owner), "Content-Type": "video/mp4"},
        total,
    )
    req.send(prefix)
    return req


def rate_slots(api: Api) -> int:
    with api.mongo() as mc:
        return mc[api.settings.mongo_database]["rate_slots"].count_documents({})


def session_docs(api: Api, owner: str = "alice") -> list[dict[str, Any]]:
    with api.mongo() as mc:
        return list(mc[api.settings.mongo_database]["upload_sessions"].find({"owner": owner}))


# -- concurrent uploads ---------------------------------------------------------------------


def test_concurrent_upload_caps_per_owner_and_instance(
    offline_api_factory: Any, media: Media
) -> None:
    with (
        offline_api_factory(
            max_concurrent_uploads=3, max_concurrent_uploads_per_owner=2, rate_owner_per_day=100
        ) as api,
        contextlib.ExitStack() as stack,
    ):
        before = all_source_keys(api)
        held = [stack.enter_context(stalled_raw(api, "alice", b"\0" * 1024)) for _ in range(2)]
        wait_for(lambda: slots(api).active == 2 and rate_slots(api) == 2)
        over = post_video(api, media.ok.read_bytes(), owner="alice")
        assert over.status_code == 429, over.text
        body = over.json()
        assert body["code"] == "too_many_concurrent_uploads"
        assert set(body) == {"code", "message", "details"}
        assert body["details"]["scope"] == "owner" and body["details"]["limit"] == 2
        assert int(over.headers["retry-after"]) >= 1
        # The refusal took no rate-limit slot: only real attempts count.
        assert rate_slots(api) == 2
        # Another owner still gets the instance's last slot, then the instance is full.
        held.append(stack.enter_context(stalled_raw(api, "bob", b"\0" * 1024)))
        wait_for(lambda: slots(api).active == 3)
        full = post_video(api, media.ok.read_bytes(), owner="root")
        assert full.status_code == 429
        assert full.json()["details"]["scope"] == "instance"
        # A client that goes away gives its slot back at once.
        held.pop(0).close()
        wait_for(lambda: slots(api).active == 2)
        ok = post_video(api, media.ok.read_bytes(), owner="alice")
        assert ok.status_code == 202, ok.text
        for req in held:
            req.close()
        wait_for(lambda: slots(api).active == 0)
        assert slots(api).by_owner == {}
        # Hanging up is routine, not a server error.
        registry = api.ctx.metrics.registry
        assert (
            registry.get_sample_value("vidpipe_api_rejections_total", {"code": "internal_error"})
            is None
        )
        assert all_source_keys(api) - before == {source_key(ok.json()["id"])}
        assert pending_uploads(api) == []


# -- body timeouts --------------------------------------------------------------------------


def test_idle_body_is_408_and_leaves_nothing(offline_api_factory: Any) -> None:
    with offline_api_factory(
        upload_idle_timeout_seconds=1.5, part_size_bytes=5 * MiB, max_upload_bytes=64 * MiB
    ) as api:
        before = all_source_keys(api)
        # 6 MiB: one 5 MiB part is already in a multipart upload when the client stalls.
        with stalled_raw(api, "alice", b"\0" * (6 * MiB), total=64 * MiB) as req:
            wait_for(lambda: len(pending_uploads(api)) == 1)
            started = time.monotonic()
            status, _, body = req.response(timeout=20)
            waited = time.monotonic() - started
        assert status == 408, body
        assert body["code"] == "upload_timeout"
        assert body["details"] == {"timeout": "idle", "seconds": 1.5}
        assert waited < 10
        wait_for(lambda: slots(api).active == 0)
        assert pending_uploads(api) == []
        assert all_source_keys(api) == before
        assert job_docs(api) == []


def test_trickling_body_hits_the_total_limit(offline_api_factory: Any) -> None:
    with offline_api_factory(
        upload_idle_timeout_seconds=1.0, upload_total_timeout_seconds=2.5
    ) as api:
        before = all_source_keys(api)
        with stalled_raw(api, "alice", b"\0") as req:
            started = time.monotonic()
            # One byte every 0.3 s never trips the idle timeout; the total limit ends it.
            while time.monotonic() - started < 10 and not req.answered() and req.try_send(b"\0"):
                time.sleep(0.3)
            status, _, body = req.response(timeout=10)
        assert status == 408, body
        assert body["details"]["timeout"] == "total"
        assert time.monotonic() - started < 8
        wait_for(lambda: slots(api).active == 0)
        assert all_source_keys(api) == before and pending_uploads(api) == []


# -- size limit -----------------------------------------------------------------------------


def test_over_size_limit_mid_stream_is_413_and_aborts_the_multipart_upload(
    offline_api_factory: Any,
) -> None:
    """Fails if the 413 leaves the multipart upload (seen holding a part before the limit was
    crossed) or any object behind."""
    limit = 8 * MiB
    with offline_api_factory(part_size_bytes=TEST_PART_SIZE, max_upload_bytes=limit) as api:
        before = all_source_keys(api)
        # Declared within the form slack, so only the streamed bytes can cross the limit.
        total = limit + 64 * 1024
        with stalled_raw(api, "alice", b"\0" * (TEST_PART_SIZE + MiB), total=total) as req:
            started = wait_until(lambda: first_part_stored(api))
            req.send(b"\0" * (total - req.sent))
            status, _, body = req.response(timeout=30)
        assert started["Key"].startswith("sources/")
        assert status == 413, body
        assert body["code"] == "upload_too_large"
        wait_for(lambda: slots(api).active == 0)
        assert pending_uploads(api) == []
        assert all_source_keys(api) == before and job_docs(api) == []


# -- multipart form limits ------------------------------------------------------------------


def _form(parts: list[tuple[str, bytes]], boundary: str = "lim1t") -> tuple[bytes, str]:
    body = b""
    for name, value in parts:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        if name == "file":
            body += b'; filename="v.mp4"\r\nContent-Type: video/mp4'
        body += b"\r\n\r\n" + value + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    ("parts", "status", "code", "detail"),
    [
        # Distinct names past the count.
        ([(f"f{i}", b"x") for i in range(5)], 413, "form_limit_exceeded", "fields"),
        # A thousand parts with one name: refused at the first repeat, not stored.
        ([("renditions", b"480p")] * 1000, 422, "validation_failed", "renditions"),
        # Bytes of one field value past the budget.
        ([("options", b"{" + b" " * (80 * 1024) + b"}")], 413, "form_limit_exceeded", "fieldBytes"),
        # A field after the file part (options must come first).
        ([("file", b"\0" * 1024), ("renditions", b"480p")], 422, "validation_failed", "renditions"),
    ],
    ids=["too-many-fields", "repeated-name", "big-value", "field-after-file"],
)
def test_form_limits(
    offline_api_factory: Any,
    parts: list[tuple[str, bytes]],
    status: int,
    code: str,
    detail: str,
) -> None:
    with offline_api_factory(form_max_fields=4, form_max_field_bytes=64 * 1024) as api:
        before = all_source_keys(api)
        body, ctype = _form([*parts, ("file", b"\0" * 4096)] if parts[0][0] != "file" else parts)
        with httpx.Client(base_url=api.url, timeout=30) as c:
            resp = c.post(
                "/v1/videos", headers={**api.headers(), "Content-Type": ctype}, content=body
            )
        assert resp.status_code == status, resp.text
        out = resp.json()
        assert out["code"] == code
        assert detail in (out["details"].get("limit"), out["details"].get("field")), out
        assert all_source_keys(api) == before and pending_uploads(api) == []


def test_options_are_refused_before_the_file_is_stored(offline_api_factory: Any) -> None:
    with offline_api_factory(max_upload_bytes=64 * MiB) as api:
        head = multipart_head("b0und", [("renditions", "huge")])
        total = len(head) + 32 * MiB + len(multipart_tail("b0und"))
        with RawRequest(
            api.url,
            "POST",
            "/v1/videos",
            {**api.headers(), "Content-Type": "multipart/form-data; boundary=b0und"},
            total,
        ) as req:
            # The options and one byte of the file; the other 32 MiB are never sent.
            req.send(head + b"\0")
            status, _, body = req.response(timeout=10)
        assert status == 422, body
        assert body["code"] == "validation_failed"
        assert body["details"]["field"] == "renditions"
        assert pending_uploads(api) == [] and job_docs(api) == []


# -- presigned sessions ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(offline_api_factory: Any) -> Iterator[Api]:
    """The module's app with default limits and no cluster (this module needs none)."""
    with offline_api_factory() as running:
        yield running


def test_presigned_part_accepts_only_its_signed_length(api: Api) -> None:
    with httpx.Client(base_url=api.url, timeout=60) as http:
        session = http.post("/v1/uploads", headers=api.headers(), json={"sizeBytes": 1}).json()
        (part,) = session["parts"]
        assert "content-length" in part["url"].lower()
        big = httpx.put(part["url"], content=b"\0" * (100 * MiB), timeout=120)
        assert big.status_code == 403, big.text
        assert "SignatureDoesNotMatch" in big.text
        chunked = httpx.put(part["url"], content=iter([b"\0", b"\0"]), timeout=30)
        assert chunked.status_code == 403
        s3 = api.ctx.storage.client
        (doc,) = [d for d in session_docs(api) if d["_id"] == session["uploadId"]]
        s3_upload = doc["s3_upload_id"]
        key = source_key(session["jobId"])
        listed = s3.list_parts(Bucket=api.settings.s3_bucket, Key=key, UploadId=s3_upload)
        assert listed.get("Parts", []) == []
        assert httpx.put(part["url"], content=b"\0").status_code == 200
        listed = s3.list_parts(Bucket=api.settings.s3_bucket, Key=key, UploadId=s3_upload)
        assert [p["Size"] for p in listed["Parts"]] == [1]
        assert (
            http.delete(f"/v1/uploads/{session['uploadId']}", headers=api.headers()).status_code
            == 204
        )


def test_presigned_parts_are_signed_with_their_own_lengths(offline_api_factory: Any) -> None:
    size = 12 * MiB + 3
    with (
        offline_api_factory(max_upload_bytes=64 * MiB, part_size_bytes=5 * MiB) as api,
        httpx.Client(base_url=api.url, timeout=60) as http,
    ):
        session = http.post("/v1/uploads", headers=api.headers(), json={"sizeBytes": size}).json()
        urls = [p["url"] for p in session["parts"]]
        assert len(urls) == 3
        # The last part is the remainder; a full-size body does not fit its signature.
        assert httpx.put(urls[2], content=b"\0" * (5 * MiB)).status_code == 403
        assert httpx.put(urls[2], content=b"\0" * (2 * MiB + 3)).status_code == 200
        assert httpx.put(urls[0], content=b"\0" * (2 * MiB + 3)).status_code == 403
        # Completing without every part is refused before S3 assembles anything.
        missing = http.post(
            session["completeUrl"],
            headers=api.headers(),
            json={"parts": [{"partNumber": 3, "etag": '"x"'}]},
        )
        assert missing.status_code == 422
        assert missing.json()["details"]["expectedParts"] == 3
        http.delete(f"/v1/uploads/{session['uploadId']}", headers=api.headers())


def test_complete_after_expiry_is_410_and_discards_the_parts(api: Api) -> None:
    with httpx.Client(base_url=api.url, timeout=60) as http:
        session = http.post("/v1/uploads", headers=api.headers(), json={"sizeBytes": 4}).json()
        (part,) = session["parts"]
        etag = httpx.put(part["url"], content=b"abcd").headers["etag"]
        # Time passing, done to the stored session: the TTL setting's minimum is a minute.
        with api.mongo() as mc:
            mc[api.settings.mongo_database]["upload_sessions"].update_one(
                {"_id": session["uploadId"]}, {"$set": {"expires_at": now() - timedelta(seconds=1)}}
            )
        parts = {"parts": [{"partNumber": 1, "etag": etag}]}
        late = http.post(session["completeUrl"], headers=api.headers(), json=parts)
        assert late.status_code == 410, late.text
        assert late.json()["code"] == "upload_session_expired"
        assert source_key(session["jobId"]) not in {u["Key"] for u in pending_uploads(api)}
        assert source_key(session["jobId"]) not in all_source_keys(api)
        assert session["uploadId"] not in {d["_id"] for d in session_docs(api)}
        again = http.post(session["completeUrl"], headers=api.headers(), json=parts)
        assert again.status_code == 404


def test_open_session_cap_per_owner(offline_api_factory: Any) -> None:
    with offline_api_factory(max_open_sessions_per_owner=3) as api:

        async def create(n: int) -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=api.url, timeout=60) as c:
                return await asyncio.gather(
                    *[
                        c.post("/v1/uploads", headers=api.headers(), json={"sizeBytes": 10})
                        for _ in range(n)
                    ]
                )

        responses = asyncio.run(create(12))
        codes = [r.status_code for r in responses]
        # Racing requests may all back off (each sees the others' inserts), but the cap is
        # never exceeded; the sequential requests below show it is reachable.
        assert codes.count(201) <= 3 and codes.count(201) + codes.count(429) == 12, codes
        refused = next(r for r in responses if r.status_code == 429)
        assert refused.json()["code"] == "too_many_upload_sessions"
        assert int(refused.headers["retry-after"]) >= 1
        docs = session_docs(api)
        assert len(docs) == codes.count(201)
        # The refused requests left no multipart upload behind.
        assert {u["UploadId"] for u in pending_uploads(api)} == {d["s3_upload_id"] for d in docs}
        with httpx.Client(base_url=api.url, timeout=60) as http:
            while len(session_docs(api)) < 3:
                assert (
                    http.post(
                        "/v1/uploads", headers=api.headers(), json={"sizeBytes": 10}
                    ).status_code
                    == 201
                )
            assert (
                http.post("/v1/uploads", headers=api.headers(), json={"sizeBytes": 10}).status_code
                == 429
            )
            # Another owner has its own allowance; ending a session frees one.
            assert (
                http.post(
                    "/v1/uploads", headers=api.headers("bob"), json={"sizeBytes": 10}
                ).status_code
                == 201
            )
            first = session_docs(api)[0]["_id"]
            assert http.delete(f"/v1/uploads/{first}", headers=api.headers()).status_code == 204
            assert (
                http.post("/v1/uploads", headers=api.headers(), json={"sizeBytes": 10}).status_code
                == 201
            )
            for doc in session_docs(api) + session_docs(api, "bob"):
                owner = str(doc["owner"])
                http.delete(f"/v1/uploads/{doc['_id']}", headers=api.headers(owner))
        assert pending_uploads(api) == []


# -- reaper ---------------------------------------------------------------------------------


@pytest.fixture
def replica(
    s3: S3Server, mongo_url: str, bucket: str, dead_kubeconfig: Path
) -> Iterator[tuple[Storage, Database, Any]]:
    """Storage and database of one API replica on a fresh bucket, grace 0, 3 s upload limit."""
    settings = base_settings(
        s3,
        mongo_url,
        bucket,
        dead_kubeconfig,
        "vidpipe-jobs",
        reaper_grace_seconds=0,
        upload_total_timeout_seconds=3,
    )
    db = Database(settings)
    db.ensure_indexes()
    yield Storage(settings), db, settings
    db.close()


def test_reaper_removes_only_what_was_abandoned(
    replica: tuple[Storage, Database, Any],
) -> None:
    storage, db, settings = replica
    s3, b = storage.client, storage.bucket
    # Abandoned: an orphaned multipart upload, a source with no job record, an expired session.
    orphan_upload = s3.create_multipart_upload(Bucket=b, Key=source_key("vj-orphanupload"))
    s3.put_object(Bucket=b, Key=source_key("vj-norecord"), Body=b"x")
    expired = s3.create_multipart_upload(Bucket=b, Key=source_key("vj-expired"))
    db.uploads.insert_one(
        {
            "_id": "vj-expired",
            "owner": "alice",
            "key": source_key("vj-expired"),
            "s3_upload_id": expired["UploadId"],
            "expires_at": now() - timedelta(seconds=5),
        }
    )
    # Kept: a durable job's source, a live session, a foreign key, and (below) young objects.
    s3.put_object(Bucket=b, Key=source_key("vj-durable"), Body=b"x")
    db.jobs.insert_one({"_id": "vj-durable", "owner": "alice"})
    live = s3.create_multipart_upload(Bucket=b, Key=source_key("vj-live"))
    db.uploads.insert_one(
        {
            "_id": "vj-live",
            "owner": "alice",
            "key": source_key("vj-live"),
            "s3_upload_id": live["UploadId"],
            "expires_at": now() + timedelta(hours=1),
        }
    )
    s3.put_object(Bucket=b, Key="sources/readme.txt", Body=b"x")
    time.sleep(5)  # past the 3 s upload limit (S3 times have one-second precision)
    young_upload = s3.create_multipart_upload(Bucket=b, Key=source_key("vj-young"))
    s3.put_object(Bucket=b, Key=source_key("vj-youngsource"), Body=b"x")

    report = asyncio.run(reap_once(storage, db, settings))

    assert (report.sessions, report.uploads, report.sources) == (1, 1, 1)
    uploads = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])}
    assert uploads == {live["UploadId"], young_upload["UploadId"]}
    assert orphan_upload["UploadId"] not in uploads
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])}
    assert keys == {
        source_key("vj-durable"),
        source_key("vj-youngsource"),
        "sources/readme.txt",
    }
    assert {d["_id"] for d in db.uploads.find()} == {"vj-live"}
    # A second round (or a second replica) finds nothing left to do.
    assert asyncio.run(reap_once(storage, db, settings)) == type(report)()


def test_reaper_respects_a_running_completion_but_not_a_stale_lock(
    replica: tuple[Storage, Database, Any],
) -> None:
    storage, db, settings = replica
    s3, b = storage.client, storage.bucket
    for name in ("vj-completing", "vj-crashed"):
        up = s3.create_multipart_upload(Bucket=b, Key=source_key(name))
        db.uploads.insert_one(
            {
                "_id": name,
                "owner": "alice",
                "key": source_key(name),
                "s3_upload_id": up["UploadId"],
                "expires_at": now() - timedelta(seconds=1),
            }
        )
    db.locks.insert_one({"_id": "upload:vj-completing", "at": now() + timedelta(minutes=5)})
    db.locks.insert_one({"_id": "upload:vj-crashed", "at": now() - timedelta(hours=1)})
    report = asyncio.run(reap_once(storage, db, settings))
    assert report.sessions == 1
    assert {d["_id"] for d in db.uploads.find()} == {"vj-completing"}
    assert db.locks.find_one({"_id": "upload:vj-crashed"}) is None
    left = {u["Key"] for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", [])}
    assert left == {source_key("vj-completing")}


def test_reaper_replicas_race_harmlessly(
    replica: tuple[Storage, Database, Any],
) -> None:
    storage, db, settings = replica
    s3, b = storage.client, storage.bucket
    for i in range(20):
        s3.put_object(Bucket=b, Key=source_key(f"vj-gone{i}"), Body=b"x")
        s3.create_multipart_upload(Bucket=b, Key=source_key(f"vj-left{i}"))
    time.sleep(5)
    other_db = Database(settings)
    other = Storage(settings)

    async def both() -> list[Any]:
        return list(
            await asyncio.gather(
                reap_once(storage, db, settings), reap_once(other, other_db, settings)
            )
        )

    reports = asyncio.run(both())
    other_db.close()
    # Each object went once or twice (a delete of a gone object is a no-op), never an error.
    assert all(r.sources <= 20 and r.uploads <= 20 for r in reports)
    assert sum(r.sources for r in reports) >= 20 and sum(r.uploads for r in reports) >= 20
    assert s3.list_objects_v2(Bucket=b).get("Contents", []) == []
    assert s3.list_multipart_uploads(Bucket=b).get("Uploads", []) == []

    async def claims() -> list[bool]:
        return list(await asyncio.gather(*[claim_round(db, 3600) for _ in range(5)]))

    assert sorted(asyncio.run(claims())) == [False, False, False, False, True]
