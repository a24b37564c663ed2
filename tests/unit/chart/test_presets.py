"""The chart's presets (issue 16), rendered by the real helm: ClusterVideoPresets that the models
accept, and the API's right to read both preset kinds (nothing more)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart.test_network_and_metrics import LOCAL_S3, by_kind, render
from vidpipe.models import VideoPresetSpec

pytestmark = pytest.mark.unit


def test_the_shipped_presets_are_valid_preset_specs() -> None:
    # Fails if a shipped preset is one the API would refuse (the models are the CRD's source),
    # or `web` stops being 360p/720p/1080p as HLS and MP4.
    presets = by_kind(render(LOCAL_S3), "ClusterVideoPreset")
    assert set(presets) == {"web", "mobile", "archive"}
    specs = {name: VideoPresetSpec.model_validate(p["spec"]) for name, p in presets.items()}
    web = specs["web"].outputs
    assert [r.height for r in web.renditions] == [360, 720, 1080]
    assert sorted(web.formats) == ["hls", "mp4"]
    assert specs["mobile"].outputs.formats == ["hls"]
    assert specs["archive"].outputs.formats == ["mp4"]


def test_presets_can_be_left_to_another_release() -> None:
    # Fails if presets.install=false still installs the cluster-scoped presets (a second
    # release in the same cluster would then fight over them).
    assert by_kind(render(LOCAL_S3, "presets.install=false"), "ClusterVideoPreset") == {}


def _rules(role: dict[str, Any]) -> dict[str, set[str]]:
    return {r: set(rule["verbs"]) for rule in role["rules"] for r in rule["resources"]}


def test_the_api_may_read_presets_and_nothing_else_cluster_wide() -> None:
    # Fails if the API cannot get a VideoPreset in the jobs namespace or a ClusterVideoPreset,
    # or if its cluster-wide grant reaches anything but reading ClusterVideoPresets.
    docs = render(LOCAL_S3)
    role = by_kind(docs, "Role")["rel-vidpipe-api"]
    assert _rules(role)["videopresets"] == {"get", "list"}
    cluster_roles = by_kind(docs, "ClusterRole")
    assert _rules(cluster_roles["rel-vidpipe-api-presets"]) == {
        "clustervideopresets": {"get", "list"}
    }
    binding = by_kind(docs, "ClusterRoleBinding")["rel-vidpipe-api-presets"]
    assert binding["roleRef"]["name"] == "rel-vidpipe-api-presets"
    (subject,) = binding["subjects"]
    assert (subject["kind"], subject["namespace"]) == ("ServiceAccount", "media")
    assert subject["name"] == role_subject(docs)


def role_subject(docs: list[dict[str, Any]]) -> str:
    """The API's ServiceAccount, as its namespaced RoleBinding names it."""
    (subject,) = by_kind(docs, "RoleBinding")["rel-vidpipe-api"]["subjects"]
    name: str = subject["name"]
    return name
