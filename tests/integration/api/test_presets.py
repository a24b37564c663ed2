"""Presets end to end (issue 16): created and edited with kubectl in the real cluster, chosen with
`preset=<name>` through the real API, copied into the VideoJob."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.integration.api.conftest import REPO, Api, ApiFactory, Kube, Media
from vidpipe.models import Outputs
from vidpipe_api.cluster import Cluster
from vidpipe_api.options import JobOptions
from vidpipe_api.presets import resolve

pytestmark = pytest.mark.integration

KUBECTL = REPO / "bin" / "kubectl"
# This tree's CRDs, the VideoJob's too: the shared cluster may hold another tree's VideoJob CRD
# (the kube fixture only creates a missing one), which would prune spec.preset.
CRDS = [
    REPO / "crds" / "videojobs.media.vidpipe.io.yaml",
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
    for crd in CRDS:
        applied = ("apply", "--server-side", "--force-conflicts", "--field-manager=vidpipe-tests")
        kubectl(kube, *applied, "-f", str(crd))
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
    first = upload(api, media, preset=name, priority="low")
    spec = spec_of(kube, first)
    assert heights(spec) == [240] and spec["outputs"]["poster"] is False
    assert spec["preset"] == {"name": name, "kind": "ClusterVideoPreset", "generation": 1}
    assert spec["priority"] == "low"
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


def test_unknown_preset_lookups_count_against_the_owners_rate_limit(
    api_factory: ApiFactory, media: Media, kube: Kube, presets: Any
) -> None:
    # Fails if a preset is looked up (one or two reads of the API server, through the API's
    # own ServiceAccount) before the rate limit is taken: random preset names would then cost
    # the cluster reads without end, each answered 422 and none 429.
    with api_factory(rate_owner_per_minute=3) as api:
        raw = {"Content-Type": "video/mp4"}
        with httpx.Client(base_url=api.url, timeout=60, headers=api.headers()) as http:
            put = [http.put("/v1/videos", params={"preset": unique("nope")}, content=b"x",
                            headers=raw)
                   for _ in range(3)]  # fmt: skip
            session = http.post("/v1/uploads", json={"sizeBytes": 10, "preset": unique("nope")})
            form = upload(api, media, preset=unique("nope"))
    assert [r.status_code for r in put] == [422, 422, 422], [r.text for r in put]
    for refused in (session, form):
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"


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


def test_the_charts_api_rights_are_enough_to_resolve_presets_and_no_more(
    api: Api, kube: Kube, presets: Any, tmp_path: Path
) -> None:
    # Fails if the chart's Role, ClusterRole and bindings for the API (rendered by helm, applied
    # to the API server, used through a real ServiceAccount token) cannot read a VideoPreset in
    # the jobs namespace or a ClusterVideoPreset, or if they let the API change a preset.
    release = unique("rbac")
    rendered = subprocess.run(
        [str(REPO / "bin" / "helm"), "template", release, str(REPO / "deploy/helm/vidpipe"),
         "-n", kube.namespace, "--kube-version", "1.33.0",
         "--set", "s3.endpoint=http://10.88.0.1:9000"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    wanted = {
        ("ServiceAccount", f"{release}-vidpipe-api"),
        ("Role", f"{release}-vidpipe-api"),
        ("RoleBinding", f"{release}-vidpipe-api"),
        ("ClusterRole", f"{release}-vidpipe-api-presets"),
        ("ClusterRoleBinding", f"{release}-vidpipe-api-presets"),
    }
    docs = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and (d["kind"], d["metadata"]["name"]) in wanted
    ]
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == wanted
    kubectl(
        kube,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}),
    )
    try:
        account = f"{release}-vidpipe-api"
        token = kubectl(kube, "create", "token", account, "-n", kube.namespace).strip()
        admin = yaml.safe_load(kube.kubeconfig.read_text())
        as_api = tmp_path / "api.kubeconfig"
        as_api.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
                    "users": [{"name": "api", "user": {"token": token}}],
                    "contexts": [{"name": "api", "context": {"cluster": "c", "user": "api"}}],
                    "current-context": "api",
                }
            )
        )
        cluster = Cluster(api.settings.model_copy(update={"kubeconfig": as_api}))
        name = unique("rights")
        presets("ClusterVideoPreset", name, [240])
        chosen = asyncio.run(resolve(cluster, JobOptions(Outputs(), preset_name=name)))
        assert chosen.preset is not None and chosen.preset.kind == "ClusterVideoPreset"
        presets("VideoPreset", name, [480])
        chosen = asyncio.run(resolve(cluster, JobOptions(Outputs(), preset_name=name)))
        assert chosen.preset is not None and chosen.preset.kind == "VideoPreset"
        with pytest.raises(ApiException) as refused:
            cluster.custom.delete_cluster_custom_object(
                "media.vidpipe.io", "v1alpha1", "clustervideopresets", name
            )
        assert refused.value.status == 403
        cluster.close()
    finally:
        for kind in ("clusterrolebinding", "clusterrole"):
            kubectl(kube, "delete", kind, f"{release}-vidpipe-api-presets", "--ignore-not-found")
