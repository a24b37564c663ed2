"""The console's server side against the real API (FerretDB, versitygw, uvicorn): the job event
streams (SSE) with their caps and resume, and the static console with its security headers.

Job records change here the way the operator changes them (vidpipe.record's update builders on
the real database); the cluster is down (offline factory), so no processor runs.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import Api, ApiFactory, Media
from tests.integration.api.test_uploads import post_video
from vidpipe.constants import JOBS_COLLECTION
from vidpipe.record import deleted_update, progress_update
from vidpipe_api.db import now

pytestmark = pytest.mark.integration

# Fast polls and heartbeats, so a test waits seconds, not the production defaults.
STREAM = {
    "stream_poll_seconds": 0.2,
    "stream_heartbeat_seconds": 0.5,
    "stream_overlap_seconds": 2.0,
    "stream_max_seconds": 120.0,
}
WAIT = 60.0  # generous: the machine's cores are shared with other test runs


@dataclass
class Event:
    event: str
    id: str | None
    data: dict[str, Any]


class Stream:
    """An open SSE response read on a thread, so a test can wait for events with a deadline."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: list[Event] = []
        self.comments = 0
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.comments += 1
                elif line == "":
                    if "data" in fields:
                        event = Event(
                            fields.get("event", "message"),
                            fields.get("id"),
                            json.loads(fields["data"]),
                        )
                        with self._lock:
                            self.events.append(event)
                    fields = {}
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.closed.set()

    def wait(self, predicate: Any, timeout: float = WAIT) -> Event:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with self._lock:
                fresh = self.events[seen:]
                seen = len(self.events)
            for event in fresh:
                if predicate(event):
                    return event
            if self.closed.is_set() and seen == len(self.events):
                break
            time.sleep(0.05)
        raise AssertionError(f"no matching event in {timeout}s; got {self.events}")


@contextmanager
def stream(api: Api, path: str, owner: str = "alice", **headers: str) -> Iterator[Stream]:
    with (
        httpx.Client(base_url=api.url, timeout=httpx.Timeout(WAIT, read=WAIT)) as http,
        http.stream("GET", path, headers={**api.headers(owner), **headers}) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


def open_status(api: Api, path: str, owner: str) -> httpx.Response:
    """The answer to opening a stream, read up to its headers only."""
    with (
        httpx.Client(base_url=api.url, timeout=WAIT) as http,
        http.stream("GET", path, headers=api.headers(owner)) as response,
    ):
        if response.status_code != 200:
            response.read()  # an error body is short; a stream's is never read here
        return response


def set_progress(api: Api, job_id: str, percent: int) -> None:
    """What the operator writes when a processor reports progress."""
    query, update = progress_update(percent, now())
    with api.mongo() as mc:
        mc[api.settings.mongo_database][JOBS_COLLECTION].update_one(
            {"_id": job_id, **query}, update
        )


def end_job(api: Api, job_id: str) -> None:
    """What the operator writes for a job whose VideoJob was deleted unfinished: Cancelled."""
    with api.mongo() as mc:
        jobs = mc[api.settings.mongo_database][JOBS_COLLECTION]
        doc = jobs.find_one({"_id": job_id})
        assert doc is not None
        jobs.update_one({"_id": job_id}, deleted_update(doc, now()))


def is_job(job_id: str, **want: Any) -> Any:
    return lambda e: (
        e.event == "job"
        and e.data["id"] == job_id
        and all(e.data.get(k) == v for k, v in want.items())
    )


@pytest.fixture(scope="module")
def live(offline_api_factory: ApiFactory) -> Iterator[Api]:
    with offline_api_factory(**STREAM) as api:
        yield api


def test_stream_sends_changes_of_own_jobs_and_resumes_after_the_last_id(
    live: Api, media: Media
) -> None:
    # Fails if an upload or an operator-style progress write is not streamed, if another
    # owner's job leaks into the stream, or if a reconnect with Last-Event-ID misses the
    # change made while disconnected or repeats the version the client already had.
    with stream(live, "/v1/jobs/stream") as s:
        upload = post_video(live, media.ok.read_bytes())
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["id"]
        other = post_video(live, media.ok.read_bytes(), owner="bob").json()["id"]
        first = s.wait(is_job(job_id, phase="Pending"))
        assert first.data["filename"] == "clip.mp4" and "downloads" not in first.data
        set_progress(live, job_id, 40)
        seen = s.wait(is_job(job_id, progress=40))
        assert seen.id is not None and seen.id.endswith("_" + job_id)
        assert all(e.data.get("id") != other for e in s.events)

    set_progress(live, job_id, 70)  # while no stream is open
    with stream(live, "/v1/jobs/stream", **{"Last-Event-ID": seen.id}) as resumed:
        again = resumed.wait(lambda e: e.event == "job" and e.data["id"] == job_id)
        assert again.data["progress"] == 70, again.data


def test_one_job_stream_starts_with_its_state_and_ends_when_it_finishes(
    live: Api, media: Media
) -> None:
    # Fails if the per-job stream does not open with the job's current state, does not end
    # once the job is Cancelled (as the operator records a VideoJob deleted unfinished), or
    # makes a reconnecting EventSource loop (204 stops it).
    job_id = post_video(live, media.ok.read_bytes()).json()["id"]
    with stream(live, f"/v1/jobs/{job_id}/events") as s:
        s.wait(is_job(job_id, phase="Pending"))
        end_job(live, job_id)
        last = s.wait(is_job(job_id, phase="Cancelled"))
        end = s.wait(lambda e: e.event == "end")
        assert end.data["reason"] == "finished"
        assert s.closed.wait(WAIT), "the stream stayed open after its job finished"
    assert last.id is not None
    with httpx.Client(base_url=live.url, timeout=WAIT) as http:
        headers = {**live.headers(), "Last-Event-ID": last.id}
        assert http.get(f"/v1/jobs/{job_id}/events", headers=headers).status_code == 204
        # Another owner's job is not found, as everywhere else.
        other = http.get(f"/v1/jobs/{job_id}/events", headers=live.headers("bob"))
        assert other.status_code == 404 and other.json()["code"] == "job_not_found"


def test_a_burst_larger_than_one_poll_arrives_whole_and_once(live: Api, media: Media) -> None:
    # Fails if jobs changed in the same millisecond beyond one poll's batch are lost, sent
    # twice, or keep the stream re-reading the same batch (bounded polls must still progress).
    job_id = post_video(live, media.ok.read_bytes(), owner="bob").json()["id"]
    count = 3 * live.settings.stream_poll_batch + 1
    with live.mongo() as mc, stream(live, "/v1/jobs/stream", owner="bob") as s:
        jobs = mc[live.settings.mongo_database][JOBS_COLLECTION]
        template = jobs.find_one({"_id": job_id})
        assert template is not None
        at = now() + timedelta(milliseconds=1)
        ids = [f"{job_id}-b{n:04d}" for n in range(count)]
        jobs.insert_many([{**template, "_id": i, "updated_at": at} for i in ids])
        s.wait(lambda e: e.event == "job" and e.data["id"] == ids[-1])
        time.sleep(3 * live.settings.stream_poll_seconds)  # a repeat would show up by now
        got = [e.data["id"] for e in s.events if e.event == "job" and e.data["id"] in ids]
    assert sorted(got) == ids, (len(got), len(set(got)))


def test_stream_caps_per_key_and_per_instance_and_a_closed_stream_frees_its_slot(
    offline_api_factory: ApiFactory,
) -> None:
    # Fails if a key can hold more streams than `stream_max_per_key`, if all keys together can
    # exceed `stream_max_total`, if a refusal is not a 429 with the catalogue code and
    # Retry-After, if a key is not needed, or if a closed stream's slot is never given back.
    with offline_api_factory(**STREAM, stream_max_per_key=2, stream_max_total=3) as api:
        with httpx.Client(base_url=api.url, timeout=WAIT) as http:
            assert http.get("/v1/jobs/stream").status_code == 401
        with stream(api, "/v1/jobs/stream"), stream(api, "/v1/jobs/stream"):
            refused = open_status(api, "/v1/jobs/stream", "alice")
            assert refused.status_code == 429
            body = refused.json()
            assert body["code"] == "too_many_event_streams"
            assert body["details"]["scope"] == "key" and refused.headers["Retry-After"]
            with stream(api, "/v1/jobs/stream", owner="bob"):
                full = open_status(api, "/v1/jobs/stream", "root")
                assert full.status_code == 429 and full.json()["details"]["scope"] == "instance"
        # Both of alice's streams are closed: her slots come back once the server notices.
        deadline = time.monotonic() + WAIT
        while open_status(api, "/v1/jobs/stream", "alice").status_code == 429:
            assert time.monotonic() < deadline, "closed streams kept their slots"
            time.sleep(0.2)


def test_stream_ends_at_its_maximum_age_with_heartbeats_before(
    offline_api_factory: ApiFactory,
) -> None:
    # Fails if an idle stream sends no heartbeat (proxies would cut it), or outlives
    # `stream_max_seconds` (a client could hold a slot forever), or ends without telling where
    # to resume.
    with offline_api_factory(**{**STREAM, "stream_max_seconds": 2.0}) as api:
        with stream(api, "/v1/jobs/stream") as s:
            end = s.wait(lambda e: e.event == "end")
            assert s.closed.wait(WAIT)
        assert end.data["reason"] == "max_age" and "lastEventId" in end.data
        assert s.comments >= 1


def test_console_is_served_with_a_strict_policy_and_no_inline_code(live: Api) -> None:
    # Fails if the console is missing from the API package, if its policy allows inline or
    # foreign scripts, framing, or leaves out the S3 origin that uploads and posters need, if
    # its page carries inline script or handlers, or if a path outside its files is served.
    with httpx.Client(base_url=live.url, timeout=WAIT) as http:
        root = http.get("/ui")
        assert root.status_code == 308 and root.headers["location"] == "/ui/"
        page = http.get("/ui/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        policy = dict([*d.split(" ", 1), ""][:2] for d in (p.strip() for p in csp.split(";")) if d)
        assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'" and policy["style-src"] == "'self'"
        assert "unsafe" not in csp
        assert live.settings.s3_endpoint_url is not None
        s3 = live.settings.s3_endpoint_url.rstrip("/")
        assert s3 in policy["connect-src"] and s3 in policy["img-src"]
        assert page.headers["x-content-type-options"] == "nosniff"
        html = page.text
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
        assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
        assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
        js = http.get("/ui/console.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "sessionStorage" in js.text and "localStorage" not in js.text
        assert js.headers["content-security-policy"] == csp
        for bad in ("/ui/../settings.py", "/ui/%2e%2e/settings.py", "/ui/nope.js"):
            missing = http.get(bad)
            assert missing.status_code == 404, bad
