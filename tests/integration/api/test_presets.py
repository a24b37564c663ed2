"""Presets end to end (issue 16): created and edited with kubectl in the real cluster, chosen with
`preset=<name>` through the real API, copied into the VideoJob."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import REPO, Api, Kube, Media

pytestmark = pytest.mark.integration

KUBECTL = REPO / "bin" / "kubectl"
PRESET_CRDS = [
    REPO / "crds" / "videopresets.media.vidpipe.io.yaml",
    REPO / "crds" / "clustervideopresets.media.vidpipe.io.yaml",
]


def kubectl(kube: Kube, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kube.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def presets(kube: Kube) -> Iterator[Any]:
    """`presets(kind, name, renditions)` applies a preset with kubectl (cluster-scoped ones get
    deleted after the module; namespaced ones go with the test namespace)."""
    for crd in PRESET_CRDS:
        kubectl(kube, "apply", "--server-side", "--force-conflicts", "-f", str(crd))
        kubectl(kube, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd))
    made: list[str] = []

    def apply(kind: str, name: str, heights: list[int]) -> None:
        manifest: dict[str, Any] = {
            "apiVersion": "media.vidpipe.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": {
                "description": "integration test",
                "outputs": {
                    "renditions": [{"name": f"{h}p", "height": h} for h in heights],
                    "formats": ["mp4"],
                    "poster": False,
                },
            },
        }
        scope = ["-n", kube.namespace] if kind == "VideoPreset" else []
        kubectl(kube, "apply", *scope, "-f", "-", stdin=json.dumps(manifest))
        if kind == "ClusterVideoPreset":
            made.append(name)

    yield apply
    for name in made:
        kubectl(kube, "delete", "clustervideopreset", name, "--ignore-not-found")


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def upload(api: Api, media: Media, **fields: str) -> httpx.Response:
    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers()) as http:
        return http.post(
            "/v1/videos", files={"file": ("a.mp4", media.ok.read_bytes(), "video/mp4")}, data=fields
        )


def spec_of(kube: Kube, resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 202, resp.text
    vj = kube.videojob(resp.json()["id"])
    assert vj is not None
    spec: dict[str, Any] = vj["spec"]
    return spec


def heights(spec: dict[str, Any]) -> list[int]:
    return [r["height"] for r in spec["outputs"]["renditions"]]


def test_a_preset_is_copied_at_submission_and_later_edits_change_only_later_jobs(
    api: Api, media: Media, kube: Kube, presets: Any
) -> None:
    # Fails if the API ignores the preset, records no {name, kind, generation}, or if editing
    # the preset afterwards changes a submitted job (VideoJob or record) or not the next one.
    name = unique("web")
    presets("ClusterVideoPreset", name, [240])
    first = upload(api, media, preset=name, priority="high")
    spec = spec_of(kube, first)
    assert heights(spec) == [240] and spec["outputs"]["poster"] is False
    assert spec["preset"] == {"name": name, "kind": "ClusterVideoPreset", "generation": 1}
    assert spec["priority"] == "high"
    assert first.json()["preset"] == spec["preset"]

    presets("ClusterVideoPreset", name, [360, 480])  # an edit: generation 2
    generation = kubectl(
        kube, "get", "clustervideopreset", name, "-o", "jsonpath={.metadata.generation}"
    )
    assert generation == "2"
    again = spec_of(kube, first)
    assert heights(again) == [240] and again["preset"]["generation"] == 1
    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers()) as http:
        view = http.get(f"/v1/jobs/{first.json()['id']}").json()
    assert [r["height"] for r in view["options"]["renditions"]] == [240]

    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers()) as http:
        raw = http.put(
            "/v1/videos",
            params={"preset": name},
            headers={"Content-Type": "video/mp4"},
            content=media.ok.read_bytes(),
        )
    later = spec_of(kube, raw)
    assert heights(later) == [360, 480] and later["preset"]["generation"] == 2


def test_a_videopreset_in_the_jobs_namespace_wins_over_the_cluster_one(
    api: Api, media: Media, kube: Kube, presets: Any
) -> None:
    # Fails if the resolution order is not namespaced first, or if the cluster-wide preset is
    # not used again once the namespace's own is deleted.
    name = unique("mobile")
    presets("ClusterVideoPreset", name, [240])
    presets("VideoPreset", name, [480])
    spec = spec_of(kube, upload(api, media, preset=name))
    assert heights(spec) == [480] and spec["preset"]["kind"] == "VideoPreset"
    kubectl(kube, "delete", "videopreset", name, "-n", kube.namespace)
    spec = spec_of(kube, upload(api, media, preset=name))
    assert heights(spec) == [240] and spec["preset"]["kind"] == "ClusterVideoPreset"


def test_an_unknown_preset_or_one_with_options_is_refused_before_anything_is_stored(
    api: Api, media: Media, kube: Kube, presets: Any
) -> None:
    # Fails if an unknown preset fell back to the defaults or its 422 did not name it, or if
    # explicit options were combined with a preset instead of refused.
    before = kube.videojob_names()
    missing = unique("nope")
    resp = upload(api, media, preset=missing)
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["code"] == "unknown_preset" and body["details"] == {"preset": missing}
    assert missing in body["message"]
    name = unique("web")
    presets("ClusterVideoPreset", name, [240])
    both = upload(api, media, preset=name, renditions="480p")
    assert both.status_code == 422 and both.json()["details"]["field"] == "preset"
    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers()) as http:
        session = http.post("/v1/uploads", json={"sizeBytes": 10, "preset": missing})
    assert session.status_code == 422 and session.json()["code"] == "unknown_preset"
    assert kube.videojob_names() == before


def test_a_presigned_upload_keeps_the_preset_as_it_was_when_the_session_opened(
    api: Api, media: Media, kube: Kube, presets: Any
) -> None:
    # Fails if the completion re-reads the preset (an edit between the session and its
    # completion would change what the client asked for) or drops the reference.
    name = unique("web")
    presets("ClusterVideoPreset", name, [240])
    data = media.ok.read_bytes()
    with httpx.Client(base_url=api.url, timeout=60, headers=api.headers()) as http:
        session = http.post("/v1/uploads", json={"sizeBytes": len(data), "preset": name})
        assert session.status_code == 201, session.text
        presets("ClusterVideoPreset", name, [360])
        (part,) = session.json()["parts"]
        etag = httpx.put(part["url"], content=data).headers["etag"]
        done = http.post(
            session.json()["completeUrl"], json={"parts": [{"partNumber": 1, "etag": etag}]}
        )
    spec = spec_of(kube, done)
    assert heights(spec) == [240] and spec["preset"]["generation"] == 1


def test_the_api_server_refuses_a_preset_the_models_refuse(kube: Kube, presets: Any) -> None:
    # Fails if the preset CRD lost the outputs' CEL rules (a duplicate rendition name would be
    # stored, then refused by every upload that chose it).
    manifest = {
        "apiVersion": "media.vidpipe.io/v1alpha1",
        "kind": "VideoPreset",
        "metadata": {"name": "dup", "namespace": kube.namespace},
        "spec": {"outputs": {"renditions": [{"name": "a", "height": 240}] * 2}},
    }
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kube.kubeconfig), "apply", "-f", "-"],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "rendition names must be unique" in result.stderr
