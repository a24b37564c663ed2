"""`formats` through the real API (issue 15): the form field and the raw upload's query parameter
reach the VideoJob's spec.outputs.formats; an unknown name is a 422 from the error catalogue."""

from __future__ import annotations

import httpx

from tests.integration.api.conftest import Api, Kube, Media
from tests.integration.api.test_uploads import post_video


def test_form_and_raw_uploads_carry_formats_to_the_videojob(
    api: Api, media: Media, kube: Kube
) -> None:
    # Fails if the field were dropped on either upload path (the job would get both formats).
    resp = post_video(api, media.ok.read_bytes(), fields={"formats": "hls"})
    assert resp.status_code == 202, resp.text
    assert resp.json()["options"]["formats"] == ["hls"]
    vj = kube.videojob(resp.json()["id"])
    assert vj is not None and vj["spec"]["outputs"]["formats"] == ["hls"]
    with httpx.Client(base_url=api.url, timeout=60) as c:
        resp = c.put(
            "/v1/videos",
            params={"formats": "mp4"},
            headers={**api.headers(), "Content-Type": "video/mp4"},
            content=media.ok.read_bytes(),
        )
    assert resp.status_code == 202, resp.text
    vj = kube.videojob(resp.json()["id"])
    assert vj is not None and vj["spec"]["outputs"]["formats"] == ["mp4"]
    default = post_video(api, media.ok.read_bytes())
    assert default.json()["options"]["formats"] == ["hls", "mp4"]


def test_unknown_format_is_a_validation_error(api: Api, media: Media) -> None:
    # Fails if an unknown packaging were accepted, or refused with another code or status.
    resp = post_video(api, media.ok.read_bytes(), fields={"formats": "hls,dash"})
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "validation_failed"
    assert body["details"] == {"field": "formats", "value": "dash"}
