"""The API's side of the event log (issue 14): the client's metadata and the events it writes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import Api, Kube, Media
from tests.integration.api.test_uploads import job_docs, post_video
from vidpipe.events import EVENTS_COLLECTION, TERMINAL_SEQUENCE

pytestmark = pytest.mark.integration


def _events(api: Api, job_id: str) -> list[dict[str, Any]]:
    with api.mongo() as mc:
        found = mc[api.settings.mongo_database][EVENTS_COLLECTION].find({"job_id": job_id})
        return list(found.sort("seq", 1))


def test_metadata_reaches_the_job_the_videojob_and_its_events(
    api: Api, media: Media, kube: Kube
) -> None:
    # Fails if the client's metadata is dropped on the way to the job view, the VideoJob spec
    # (which the operator echoes in its events) or the job.submitted event, or if a delete
    # logs no job.deleted event.
    metadata = {"order": "42", "customer_id": "c-7"}
    resp = post_video(api, media.ok.read_bytes(), fields={"metadata": json.dumps(metadata)})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["metadata"] == metadata
    videojob = kube.videojob(job["id"])
    assert videojob is not None and videojob["spec"]["userMetadata"] == metadata
    (submitted,) = _events(api, job["id"])
    assert (submitted["type"], submitted["seq"]) == ("job.submitted", 1)
    assert submitted["metadata"] == metadata and submitted["owner"] == "alice"
    assert submitted["data"]["filename"] == "clip.mp4"
    with httpx.Client(base_url=api.url, timeout=60) as http:
        assert http.get(f"/v1/jobs/{job['id']}", headers=api.headers()).json()["metadata"] == (
            metadata
        )
        assert http.delete(f"/v1/jobs/{job['id']}", headers=api.headers()).status_code == 204
    deleted = _events(api, job["id"])[-1]
    assert (deleted["type"], deleted["seq"]) == ("job.deleted", TERMINAL_SEQUENCE + 1)
    assert deleted["metadata"] == metadata


def test_bad_metadata_is_refused_before_the_upload_is_stored(api: Api, media: Media) -> None:
    # Fails if metadata that events could not carry (a number) is accepted, or is refused only
    # after the video was stored (no job may exist for the refused request).
    before = len(job_docs(api, owner="bob"))
    resp = post_video(api, media.ok.read_bytes(), owner="bob", fields={"metadata": '{"n": 1}'})
    assert resp.status_code == 422 and resp.json()["code"] == "validation_failed"
    assert "metadata" in resp.json()["message"]
    assert len(job_docs(api, owner="bob")) == before
