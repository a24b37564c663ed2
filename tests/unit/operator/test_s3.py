"""Reading the processor's manifest into status.outputs."""

from __future__ import annotations

from typing import Any

import pytest

from vidpipe_operator.s3 import manifest_facts, manifest_keys

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "manifest",
    [
        {"outputs": [{"key": "outputs/j/720p.mp4", "size": 1}, {"name": "poster.jpg"}]},
        {"outputs": ["outputs/j/720p.mp4", "poster.jpg"]},
        ["poster.jpg", "720p.mp4"],
        {"outputs": {"720p.mp4": {"size": 1}, "poster.jpg": {}}},
        {"files": [{"key": "outputs/j/720p.mp4"}, {"key": "outputs/j/poster.jpg"}]},
    ],
)
def test_manifest_shapes(manifest: Any) -> None:
    assert manifest_keys("j", manifest) == ["outputs/j/720p.mp4", "outputs/j/poster.jpg"]


def test_foreign_keys_and_the_manifest_itself_are_ignored() -> None:
    manifest = {
        "outputs": [
            "outputs/other/720p.mp4",
            "../x",
            "manifest.json",
            "outputs/j/a.mp4",
            "outputs/j/a.mp4",
            7,
            {},
        ]
    }
    assert manifest_keys("j", manifest) == ["outputs/j/a.mp4"]


def test_garbage_gives_nothing() -> None:
    assert manifest_keys("j", "not a manifest") == []
    assert manifest_keys("j", {"outputs": 3}) == []


def test_manifest_facts_take_only_well_typed_fields() -> None:
    # Fails if a manifest field of the wrong type (a string size, a bool width, a non-list)
    # reached the job.succeeded event, or if the renditions' sizes were lost.
    manifest = {
        "durationSeconds": 12.5,
        "outputs": [
            {
                "key": "outputs/j/720p.mp4",
                "rendition": "720p",
                "width": 1280,
                "height": 720,
                "size": 9,
            },
            {
                "key": "outputs/j/480p.mp4",
                "rendition": "480p",
                "width": "854",
                "height": 480,
                "size": 5,
            },
            {"key": "outputs/j/poster.jpg", "size": 3},
            {"rendition": "360p", "width": True, "height": 360, "size": 1},
        ],
    }
    assert manifest_facts(manifest) == {
        "durationSeconds": 12.5,
        "renditions": [{"name": "720p", "width": 1280, "height": 720, "size": 9}],
    }
    assert manifest_facts(["poster.jpg"]) == {}
    assert manifest_facts({"durationSeconds": "12", "outputs": "x"}) == {}
