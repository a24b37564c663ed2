"""The replaced service's contract against the installed chart, called as its old clients call it:
`POST /api/video/upload` with form fields `user_id` and `video_file`, the old query parameters,
the old bodies. A real upload is transcoded by the real processor until its task is Processed.

The release has its own MongoDB database and the module its own owners, so per-day rate limits
and task counts see only this run's uploads (a VideoJob left in the namespace by an earlier run
is mirrored into the new database by the operator, under its old owner); a window can only turn
over between two attempts at midnight UTC, and the loops that wait for a limit allow one
attempt more for that.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_platform import make_video
from tests.utils.cluster import LocalCluster
from tests.utils.platform import Platform, installed

pytestmark = pytest.mark.e2e

RELEASE = "vidpipe-compat"
MAX_UPLOAD = 4 * 1024 * 1024
OWNER_PER_DAY = 4
GLOBAL_PER_DAY = 7
UPLOAD = "/api/video/upload"


@pytest.fixture(scope="module")
def platform(cluster: LocalCluster) -> Iterator[Platform]:
    with installed(
        cluster, RELEASE,
        "--set", f"mongo.database=compat{secrets.token_hex(4)}",
        "--set", f"limits.maxUploadBytes={MAX_UPLOAD}",
        "--set", f"rateLimits.ownerPerDay={OWNER_PER_DAY}",
        "--set", f"rateLimits.globalPerDay={GLOBAL_PER_DAY}",
    ) as platform:  # fmt: skip
        yield platform
        # While the operator still runs to release them, so the next run starts empty.
        platform.kubectl("delete", "vj", "--all", "--timeout=120s", check=False)


@dataclass(frozen=True)
class User:
    """An owner of this run only, as an old client knows it: its `user_id`, plus our key."""

    user_id: str
    key: str


@pytest.fixture(scope="module")
def users(platform: Platform) -> list[User]:
    run = secrets.token_hex(3)
    return [User(f"compat-{run}-{n}", platform.create_key(f"compat-{run}-{n}")) for n in "abc"]


def old_upload(http: httpx.Client, user_id: str, data: bytes, name: str = "a.mp4") -> Any:
    resp = http.post(UPLOAD, data={"user_id": user_id}, files={"video_file": (name, data)})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_old_client_follows_a_task_to_processed(
    platform: Platform, users: list[User], tmp_path: Path
) -> None:
    # Fails if any old path, field or status is wrong against the deployed chart, if the upload
    # does not reach the real processor, or if the thumbnail is not the poster's JPEG bytes.
    video = make_video(tmp_path / "old.mp4", seconds=2, size="320x240").read_bytes()
    me = users[0]
    with platform.client(me.key) as http:
        body = old_upload(http, me.user_id, video)
        assert set(body) == {"status", "task_id", "internal_status_code"}
        assert body["status"] == "ok" and body["internal_status_code"] == 1
        task_id = body["task_id"]

        deadline = time.monotonic() + 600
        seen: list[str] = []
        while True:
            now = http.get("/api/video/task", params={"type": "progress", "task_id": task_id})
            assert now.status_code == 200 and now.json()["status"] == "ok", now.text
            seen.append(now.json()["task_status"])
            if seen[-1] in {"Processed", "Failed"} or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert seen[-1] == "Processed" and now.json()["progress"] == 100, now.text
        assert set(seen) <= {"Saved", "Processing", "Processed"}

        thumb = http.get("/api/video/task", params={"type": "thumbnail", "task_id": task_id})
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert thumb.content[:3] == b"\xff\xd8\xff"  # JPEG magic

        listed = http.get("/api/video/tasks", params={"user_id": me.user_id}).json()
        assert [t["task_status"] for t in listed["tasks"] if t["task_id"] == task_id] == [
            "Processed"
        ]
        one = http.get("/api/video/tasks", params={"user_id": me.user_id, "task_id": task_id})
        assert one.json()["task_status"] == "Processed" and one.json()["file_name"] == "a.mp4"

        queue = http.get("/api/video/analytics/queue").json()
        assert queue["status"] == "ok" and queue["scope"] == "user"
        assert queue["tasks_by_status"]["Processed"] == 1
        system = http.get("/api/video/analytics/system").json()
        assert system["dependencies"] == {"s3": "ok", "mongodb": "ok", "kubernetes": "ok"}
        assert system["limits"]["max_upload_bytes"] == MAX_UPLOAD
    with httpx.Client(base_url=platform.base_url, timeout=60) as anonymous:
        assert anonymous.get("/api/health/check").status_code == 200
        assert anonymous.get("/api/video/analytics/queue").status_code == 401


def _until_code(http: httpx.Client, user_id: str, code: int) -> dict[str, Any]:
    for _ in range(OWNER_PER_DAY + 2):
        body: dict[str, Any] = old_upload(http, user_id, b"not a video\n" * 100)
        if body["code"] == "rate_limited":
            assert body["internal_status_code"] == code, body
            return body
    raise AssertionError(f"{user_id} never reached a rate limit")


def test_old_client_refusals_carry_the_old_codes(
    platform: Platform, users: list[User], tmp_path: Path
) -> None:
    # Fails if unsupported type (3), oversize (4), the user's limit (6) or the service-wide limit
    # (5) answer anything but a 200 with that code, or if a wrong user_id is not refused.
    video = make_video(tmp_path / "pad.mp4", seconds=1, size="160x120").read_bytes()
    me, *others = users
    with platform.client(me.key) as http:
        wrong = http.post(UPLOAD, data={"user_id": others[0].user_id}, files={"video_file": video})
        assert wrong.status_code == 403 and wrong.json()["internal_status_code"] == 2
        text = old_upload(http, me.user_id, b"this is not a video\n" * 100, "fake.mp4")
        assert (text["status"], text["internal_status_code"]) == ("error", 3), text
        big = old_upload(http, me.user_id, video + b"\0" * (MAX_UPLOAD + 1024 * 1024))
        assert (big["status"], big["internal_status_code"]) == ("error", 4), big
        _until_code(http, me.user_id, 6)
    # The two others, taking turns, fill the service-wide day before either fills their own.
    clients = {user.user_id: platform.client(user.key) for user in others}
    try:
        for _ in range(GLOBAL_PER_DAY + 1):
            for user_id, http in clients.items():
                body = old_upload(http, user_id, b"not a video\n" * 100)
                if body["code"] == "rate_limited":
                    assert body["internal_status_code"] == 5, body
                    return
        raise AssertionError("the global limit was never reached")
    finally:
        for http in clients.values():
            http.close()
