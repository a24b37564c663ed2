"""Reading the processor's manifest into status.outputs."""

from __future__ import annotations

from typing import Any

import pytest

from vidpipe_operator.s3 import manifest_keys

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
